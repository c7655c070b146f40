//! The `creditd` binary (SPEC §7): `serve` runs the HTTP API; the other commands
//! administer the database directly, through the same writer and rules as the API, for
//! support staff at a terminal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use creditd_ledger::{
    AccountId, Adjustment, Amount, Catalog, CreditKind, EntryType, Expiry, Grant, GrantSource,
    LedgerQuery, parse_duration,
};
use creditd_server::auth::Role;
use creditd_server::writer::{Command, Op};
use creditd_server::{CommitMode, Core, Service, clock::Clock};
use creditd_store::redacted;
use jiff::Timestamp;
use serde_json::Value;

/// mimalloc instead of the system allocator: a request allocates many small buffers
/// (headers, JSON, ledger changes), and glibc's malloc and free were a tenth of the
/// server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "creditd",
    version,
    about = "The credits service of an AI creative platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Args, Clone)]
struct Database {
    /// Database URL: sqlite://PATH (created on first use) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "CREDITD_DATABASE_URL",
        default_value = "sqlite://creditd.db"
    )]
    database: String,
    /// Catalog file (TOML); default: the built-in catalog.
    #[arg(long, env = "CREDITD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Create the database or bring its schema up to date, then exit.
    Migrate {
        #[command(flatten)]
        db: Database,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeyCommands,
        #[command(flatten)]
        db: Database,
    },
    /// Show accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommands,
        #[command(flatten)]
        db: Database,
    },
    /// An account's balance and buckets.
    Balance {
        /// The account id.
        account: String,
        #[command(flatten)]
        db: Database,
    },
    /// An account's ledger, newest first.
    Ledger(LedgerArgs),
    /// Grant promotion or compensation credits.
    Grant(GrantArgs),
    /// Adjust a balance (audited, with a reason).
    Adjust(AdjustArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CREDITD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    db: Database,
    /// Run on a test clock that only an admin moves (POST /v1/test-clock).
    #[arg(long)]
    test_clock: bool,
    /// How the writer commits: many requests per transaction, or one each (to measure
    /// the difference).
    #[arg(long, value_enum, default_value_t = Commit::Group)]
    commit: Commit,
}

#[derive(Clone, Copy, ValueEnum)]
enum Commit {
    Group,
    PerRequest,
}

#[derive(Subcommand)]
enum KeyCommands {
    /// Create a key and print its secret (shown only now).
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// admin, service or viewer.
        #[arg(long)]
        role: String,
    },
    /// List the keys (without secrets).
    List,
    /// Revoke a key by id; it stops working at once.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum AccountCommands {
    /// An account and its membership.
    Show {
        /// The account id.
        account: String,
    },
}

#[derive(Args)]
struct LedgerArgs {
    /// The account id.
    account: String,
    /// Entries to show (1 … 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only this entry type (grant, debit, refund, expire, adjust, freeze, unfreeze).
    #[arg(long = "type")]
    entry_type: Option<String>,
    /// Entries at or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<Timestamp>,
    /// Entries before this instant (RFC 3339).
    #[arg(long)]
    until: Option<Timestamp>,
    /// CSV instead of a table.
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    db: Database,
}

#[derive(Args)]
struct GrantArgs {
    /// The account id.
    account: String,
    /// Credits.
    #[arg(long)]
    amount: u64,
    /// general or agent.
    #[arg(long, default_value = "general")]
    kind: String,
    /// promotion or compensation.
    #[arg(long, default_value = "promotion")]
    source: String,
    /// How long they last (ISO 8601, e.g. P30D); default: never expire.
    #[arg(long, conflicts_with = "expires_at")]
    valid_for: Option<String>,
    /// When they expire (RFC 3339).
    #[arg(long)]
    expires_at: Option<Timestamp>,
    /// The campaign.
    #[arg(long)]
    campaign: Option<String>,
    /// A note for the ledger.
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    db: Database,
}

#[derive(Args)]
struct AdjustArgs {
    /// The account id.
    account: String,
    /// Signed credits: +n adds, -n takes.
    #[arg(long, allow_hyphen_values = true)]
    amount: i64,
    /// general or agent.
    #[arg(long)]
    kind: String,
    /// Why (kept in the ledger).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    db: Database,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // PostgreSQL's notices (such as "relation already exists, skipping" on every
            // start) are not news to an operator.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Commands) -> anyhow::Result<()> {
    match command {
        Commands::Serve(args) => serve(args).await,
        Commands::Migrate { db } => {
            let store = creditd_store::open(&db.database)
                .await
                .with_context(|| format!("opening {}", redacted(&db.database)))?;
            store.close().await;
            println!("{}: schema up to date", redacted(&db.database));
            Ok(())
        }
        Commands::Keys { command, db } => keys(command, &db).await,
        Commands::Account {
            command: AccountCommands::Show { account },
            db,
        } => {
            let service = open_service(&db, Clock::System).await?;
            let id = account_id(&account)?;
            let result = show_account(&service, &id).await;
            service.stop().await;
            result
        }
        Commands::Balance { account, db } => {
            let service = open_service(&db, Clock::System).await?;
            let id = account_id(&account)?;
            let result = show_balance(&service, &id).await;
            service.stop().await;
            result
        }
        Commands::Ledger(args) => {
            let service = open_service(&args.db, Clock::System).await?;
            let result = show_ledger(&service, &args).await;
            service.stop().await;
            result
        }
        Commands::Grant(args) => grant(args).await,
        Commands::Adjust(args) => adjust(args).await,
    }
}

fn load_catalog(db: &Database) -> anyhow::Result<Catalog> {
    match &db.config {
        None => Ok(Catalog::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the catalog {}", path.display()))?;
            Catalog::from_toml(&text).with_context(|| format!("in {}", path.display()))
        }
    }
}

async fn open_core(db: &Database, clock: Clock) -> anyhow::Result<(Core, Option<String>)> {
    let catalog = load_catalog(db)?;
    let store = creditd_store::open(&db.database)
        .await
        .with_context(|| format!("opening {}", redacted(&db.database)))?;
    let env_admin = std::env::var("CREDITD_ADMIN_KEY")
        .ok()
        .filter(|key| !key.is_empty());
    let (core, first) = Core::open(Arc::from(store), catalog, clock, env_admin.as_deref())
        .await
        .context("preparing the service")?;
    Ok((core, first.admin_key))
}

async fn open_service(db: &Database, clock: Clock) -> anyhow::Result<Service> {
    let (core, admin_key) = open_core(db, clock).await?;
    if let Some(key) = admin_key {
        print_first_admin_key(&key);
    }
    Ok(Service::start(core, CommitMode::Group))
}

fn print_first_admin_key(key: &str) {
    println!("No API key existed, so creditd created an admin key. It is shown only now:");
    println!();
    println!("    {key}");
    println!();
    println!("Keep it safe; create narrower keys with POST /v1/api-keys or `creditd keys create`.");
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let clock = if args.test_clock {
        Clock::test()
    } else {
        Clock::System
    };
    let (core, admin_key) = open_core(&args.db, clock).await?;
    if let Some(key) = admin_key {
        print_first_admin_key(&key);
    }
    let mode = match args.commit {
        Commit::Group => CommitMode::Group,
        Commit::PerRequest => CommitMode::PerRequest,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        database = %redacted(&args.db.database),
        test_clock = args.test_clock,
        "creditd is ready"
    );
    Service::start(core, mode)
        .serve(listener, shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("creditd stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn keys(command: KeyCommands, db: &Database) -> anyhow::Result<()> {
    let service = open_service(db, Clock::System).await?;
    let result = async {
        match command {
            KeyCommands::Create { name, role } => {
                let role = Role::parse(&role)
                    .with_context(|| format!("role {role:?} is none of admin, service, viewer"))?;
                let body = apply(&service, Op::CreateKey(name, role)).await?;
                println!(
                    "Created {} key {} ({}).",
                    text(&body["role"]),
                    text(&body["id"]),
                    text(&body["name"])
                );
                println!("Its secret is shown only now:");
                println!();
                println!("    {}", text(&body["key"]));
            }
            KeyCommands::List => {
                let keys = service.core.store.api_keys().await?;
                let mut table = table(&["id", "name", "role", "created", "revoked"]);
                for key in keys {
                    table.add_row(vec![
                        key.id,
                        key.name,
                        key.role,
                        key.created_at.to_string(),
                        key.revoked_at.map(|at| at.to_string()).unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
            KeyCommands::Revoke { id } => {
                let record = service
                    .core
                    .store
                    .api_key(&id)
                    .await?
                    .with_context(|| format!("no API key {id:?}"))?;
                apply(&service, Op::RevokeKey(record)).await?;
                println!("Revoked key {id}.");
            }
        }
        Ok(())
    }
    .await;
    service.stop().await;
    result
}

async fn show_account(service: &Service, id: &AccountId) -> anyhow::Result<()> {
    let (account, _) = service
        .core
        .account_now(id)
        .await?
        .with_context(|| format!("no account {id}"))?;
    let membership = account.membership();
    let when = |at: Option<Timestamp>| at.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    let mut table = table(&["field", "value"]);
    table.add_row(vec!["account".to_owned(), id.to_string()]);
    table.add_row(vec![
        "time zone".to_owned(),
        account.time_zone().iana_name().unwrap_or("UTC").to_owned(),
    ]);
    table.add_row(vec!["created".to_owned(), account.created_at().to_string()]);
    table.add_row(vec![
        "membership".to_owned(),
        membership.status().as_str().to_owned(),
    ]);
    table.add_row(vec![
        "plan".to_owned(),
        membership.plan().unwrap_or("-").to_owned(),
    ]);
    table.add_row(vec![
        "period start".to_owned(),
        when(membership.period_start()),
    ]);
    table.add_row(vec!["period end".to_owned(), when(membership.period_end())]);
    table.add_row(vec!["trial end".to_owned(), when(membership.trial_end())]);
    println!("{table}");
    Ok(())
}

async fn show_balance(service: &Service, id: &AccountId) -> anyhow::Result<()> {
    let (account, _) = service
        .core
        .account_now(id)
        .await?
        .with_context(|| format!("no account {id}"))?;
    let balance = account.balance();
    println!("Balance of {id} as of {}", balance.as_of);
    println!(
        "  total {}   general {} available, {} held, {} frozen   agent {} available, {} held",
        balance.total(),
        balance.general.available,
        balance.general.held,
        balance.general.frozen,
        balance.agent.available,
        balance.agent.held
    );
    if let Some(next) = balance.next_expiry {
        println!("  next expiry: {} credits at {}", next.amount, next.at);
    }
    let mut table = table(&[
        "bucket",
        "kind",
        "source",
        "remaining",
        "granted",
        "granted at",
        "expires",
        "frozen",
    ]);
    for b in &balance.buckets {
        let bucket = &b.bucket;
        table.add_row(vec![
            bucket.id().to_string(),
            bucket.kind().as_str().to_owned(),
            bucket.source().as_str().to_owned(),
            bucket.remaining().to_string(),
            bucket.granted().to_string(),
            bucket.granted_at().to_string(),
            bucket
                .expires_at()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "never".into()),
            if b.frozen { "yes" } else { "" }.to_owned(),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn show_ledger(service: &Service, args: &LedgerArgs) -> anyhow::Result<()> {
    let id = account_id(&args.account)?;
    let entry_type = args
        .entry_type
        .as_deref()
        .map(|t| t.parse::<EntryType>())
        .transpose()?;
    let query = LedgerQuery::new(Some(args.limit), entry_type, args.since, args.until)?;
    if service.core.account_now(&id).await?.is_none() {
        bail!("no account {id}");
    }
    apply(service, Op::CatchUp(id.clone())).await?;
    let page = service.core.store.ledger_page(&id, &query, None).await?;
    let header = [
        "id",
        "at",
        "type",
        "amount",
        "kind",
        "source",
        "bucket",
        "hold",
        "description",
    ];
    let rows = page.iter().map(|stored| {
        let e = &stored.entry;
        vec![
            format!("e{}", stored.seq),
            e.at.to_string(),
            e.entry_type.as_str().to_owned(),
            format!("{:+}", e.amount),
            e.kind.as_str().to_owned(),
            e.source.as_str().to_owned(),
            e.bucket_id.to_string(),
            e.hold_id.map(|h| h.to_string()).unwrap_or_default(),
            e.description(),
        ]
    });
    if args.csv {
        let mut out = csv::Writer::from_writer(std::io::stdout());
        out.write_record(header)?;
        for row in rows {
            out.write_record(row)?;
        }
        out.flush()?;
    } else {
        let mut table = table(&header);
        for row in rows {
            table.add_row(row);
        }
        println!("{table}");
    }
    Ok(())
}

async fn grant(args: GrantArgs) -> anyhow::Result<()> {
    let service = open_service(&args.db, Clock::System).await?;
    let result = async {
        let id = account_id(&args.account)?;
        let source = match args.source.as_str() {
            "promotion" => GrantSource::Promotion,
            "compensation" => GrantSource::Compensation,
            other => bail!("source {other:?} is neither promotion nor compensation"),
        };
        let expiry = match (&args.valid_for, args.expires_at) {
            (Some(text), _) => Expiry::ValidFor(parse_duration(text)?),
            (None, Some(at)) => Expiry::At(at),
            (None, None) => Expiry::Never,
        };
        let grant = Grant {
            kind: args.kind.parse::<CreditKind>()?,
            amount: Amount::new(args.amount)?,
            source,
            expiry,
            campaign: args.campaign.clone(),
            note: args.note.clone(),
        };
        let body = apply(&service, Op::Grant(id.clone(), grant)).await?;
        println!(
            "Granted {} {} credits ({}) to {id}: bucket {}, expires {}.",
            body["granted"],
            text(&body["kind"]),
            text(&body["source"]),
            text(&body["id"]),
            body["expires_at"].as_str().unwrap_or("never")
        );
        Ok(())
    }
    .await;
    service.stop().await;
    result
}

async fn adjust(args: AdjustArgs) -> anyhow::Result<()> {
    let service = open_service(&args.db, Clock::System).await?;
    let result = async {
        let id = account_id(&args.account)?;
        let adjustment = Adjustment {
            amount: args.amount,
            kind: args.kind.parse::<CreditKind>()?,
            reason: args.reason.clone(),
        };
        let body = apply(&service, Op::Adjust(id.clone(), adjustment)).await?;
        println!(
            "Adjusted {id} by {} {} credits ({} ledger entries): {}",
            body["amount"],
            text(&body["kind"]),
            body["entries"].as_array().map_or(0, Vec::len),
            text(&body["description"])
        );
        Ok(())
    }
    .await;
    service.stop().await;
    result
}

/// Applies `op` through the writer; a problem becomes an error with its detail.
async fn apply(service: &Service, op: Op) -> anyhow::Result<Value> {
    let answer = service
        .writer
        .submit(Command {
            op,
            idempotency: None,
        })
        .await;
    let body: Value = if answer.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&answer.body)?
    };
    if answer.status.is_client_error() || answer.status.is_server_error() {
        bail!("{} ({})", text(&body["detail"]), text(&body["code"]));
    }
    Ok(body)
}

fn account_id(text: &str) -> anyhow::Result<AccountId> {
    Ok(AccountId::parse(text)?)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(header.to_vec());
    table
}
