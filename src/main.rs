//! The `dialplane` binary: parses the command line and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    dialplane::allocator::return_freed_memory_promptly();
    dialplane::telemetry::init_logging();
    let cli = dialplane::cli::Cli::parse();
    if let Err(e) = dialplane::cli::main(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
