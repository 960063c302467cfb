//! The command line: `dialplane [--config FILE] [serve | migrate | users create …]`.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::{auth, store};

/// Dialplane, a telephony orchestration engine.
#[derive(Debug, Parser)]
#[command(name = "dialplane", version, about)]
pub struct Cli {
    /// A TOML file with the same keys as the environment (the environment wins).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serves the API (the default).
    Serve,
    /// Brings the database schema up to date and exits.
    Migrate,
    /// Manages users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Creates an active, verified user with a workspace of their own.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "member", value_parser = ["superuser", "admin", "developer", "member"])]
        role: String,
    },
}

/// Runs the command line with the process environment.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = Config::load(&env, cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .map_err(|e| anyhow::anyhow!("DIALPLANE_BIND: cannot listen on {}: {e}", config.bind))?;
            println!("dialplane listening on http://{} (log in with POST /api/login)", listener.local_addr()?);
            crate::run(config, listener, shutdown_signal()).await
        }
        Command::Migrate => {
            store::connect(&config.database_url, config.db_acquire_timeout).await?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Users { command: UsersCommand::Create { email, password, role } } => {
            if !auth::is_valid_email(&email) {
                anyhow::bail!("--email: not an email address");
            }
            if password.len() < 8 {
                anyhow::bail!("--password: must be at least 8 characters long");
            }
            let db = store::connect(&config.database_url, config.db_acquire_timeout).await?;
            if store::users::find_by_email(&db, &email).await?.is_some() {
                anyhow::bail!("--email: a user with this email already exists");
            }
            let hash = auth::hash_password(&password)?;
            let user = store::users::create(&db, &email, &hash, &role).await?;
            println!("created user {} ({}) in workspace {}", user.email, user.role, user.workspace_id);
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
