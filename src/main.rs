//! The `dialplane` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    dialplane::allocator::return_freed_memory_promptly();
    dialplane::telemetry::init_logging();
    let cli = dialplane::cli::Cli::parse();
    let runtime = match dialplane::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(dialplane::cli::main(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
