//! The `creditd` binary (SPEC §7, §12). `serve` runs the service. The admin commands
//! talk to a running creditd over its HTTP API (`--url`, `--key`), so every change goes
//! through the one writer and its rules, and the server's process is the only one that
//! writes the database; only `migrate` and the break-glass `keys create --database`
//! open it themselves.
//!
//! `cli.rs` is the command line, `admin.rs` the commands through the API (`client.rs`,
//! printed by `render.rs`), `local.rs` what runs here.

mod admin;
mod cli;
mod client;
mod local;
mod reconcile;
mod render;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, Commands};

/// mimalloc instead of the system allocator: a request allocates many small buffers
/// (headers, JSON, ledger changes), and glibc's malloc and free were a tenth of the
/// server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = tracing_subscriber::fmt()
        .with_env_filter(
            // PostgreSQL's notices (such as "relation already exists, skipping" on every
            // start) are not news to an operator.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into()),
        )
        .with_writer(std::io::stderr);
    // One JSON object per line for a log collector; text for a person at a terminal.
    if std::env::var("CREDITD_LOG_FORMAT").is_ok_and(|format| format == "json") {
        log.json().init();
    } else {
        log.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line a person can act on; the causes follow it on the same line.
            eprintln!("creditd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Commands) -> anyhow::Result<()> {
    match command {
        Commands::Serve(args) => local::serve(args).await,
        Commands::Migrate { db, create, config } => {
            local::migrate(&db.database, create, config.as_deref()).await
        }
        Commands::Keys { command } => admin::keys(command).await,
        Commands::Account { command } => admin::account(command).await,
        Commands::Balance {
            account,
            remote,
            output,
        } => admin::balance(&account, &remote, output).await,
        Commands::Ledger(args) => admin::ledger(&args).await,
        Commands::Grant(args) => admin::grant(args).await,
        Commands::Adjust(args) => admin::adjust(args).await,
        Commands::Hold { command } => admin::hold(command).await,
        Commands::Purchase { command } => admin::purchase(command).await,
        Commands::Reconcile(args) => reconcile::reconcile(args).await,
    }
}
