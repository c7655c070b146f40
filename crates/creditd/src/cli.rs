//! The command line (clap): what each command takes. What the commands do is in
//! `admin.rs` (through the API) and `local.rs` (serve, and what opens the database).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use strum::VariantArray;

#[derive(Parser)]
#[command(
    name = "creditd",
    version,
    about = "The credits service of an AI creative platform",
    after_help = "The admin commands talk to a running creditd over its HTTP API \
                  (--url, --key). Only `migrate` and `keys create --database` open the \
                  database."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

/// Where the database is.
#[derive(Args, Clone)]
pub struct Database {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "CREDITD_DATABASE_URL",
        default_value = "sqlite://creditd.db"
    )]
    pub database: String,
}

/// The running creditd the admin commands talk to.
#[derive(Args, Clone)]
pub struct Remote {
    /// The server's base URL.
    #[arg(long, env = "CREDITD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key (admin for keys and adjustments; service for other writes; viewer for
    /// reads).
    #[arg(long, env = "CREDITD_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// What every write on an account takes besides its own fields.
#[derive(Args, Clone)]
pub struct Write {
    /// Open the account if it does not exist (without this, an unknown id is refused:
    /// it is more often a typo than a new user).
    #[arg(long)]
    pub create: bool,
    /// The request's Idempotency-Key (default: a new one). Give the key a failed run
    /// printed to retry it: the change applies once however often it is sent.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// How a read prints what it found.
#[derive(Args, Clone, Copy)]
pub struct Output {
    /// JSON as the API answers it, instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV (a header, then one line per row), instead of a table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Subcommand)]
pub enum Commands {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Bring the database's schema up to date (with --create, make a new SQLite file
    /// first), then exit.
    Migrate {
        #[command(flatten)]
        db: Database,
        /// Create the SQLite file if it does not exist.
        #[arg(long)]
        create: bool,
        /// Also check this catalog file (TOML), as `serve --config` would read it.
        #[arg(long, env = "CREDITD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeyCommands,
    },
    /// Show and find accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommands,
    },
    /// An account's balance and buckets.
    Balance {
        /// The account id.
        account: String,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        output: Output,
    },
    /// An account's ledger, newest first.
    Ledger(LedgerArgs),
    /// Grant promotion or compensation credits.
    Grant(GrantArgs),
    /// Adjust a balance (admin, with a reason).
    Adjust(AdjustArgs),
    /// Show holds.
    Hold {
        #[command(subcommand)]
        command: HoldCommands,
    },
    /// Check the payment provider's paid orders (CSV) against the purchases recorded,
    /// and with --apply record the missing ones (admin).
    Reconcile(ReconcileArgs),
    /// Show purchases.
    Purchase {
        #[command(subcommand)]
        command: PurchaseCommands,
    },
}

#[derive(Args)]
pub struct ReconcileArgs {
    /// The file: a header `order_id,account_id,credits,package,paid_at`, then one paid
    /// order per line (credits or package; paid_at RFC 3339).
    pub file: PathBuf,
    /// Record the missing orders now (without it, only report).
    #[arg(long)]
    pub apply: bool,
    /// Why, for the audit trail (default: "reconciliation").
    #[arg(long)]
    pub reason: Option<String>,
    /// Write every row's status to this CSV (line, order_id, status, detail).
    #[arg(long, value_name = "OUT.csv")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CREDITD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: Database,
    /// Catalog file (TOML); default: the built-in catalog.
    #[arg(long, env = "CREDITD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Run on a test clock that only an admin moves (POST /v1/test-clock).
    #[arg(long)]
    pub test_clock: bool,
    /// How the writer commits: many requests per transaction, or one each (to measure
    /// the difference).
    #[arg(long, value_enum, default_value_t = Commit::Group)]
    pub commit: Commit,
    /// Where webhook endpoints may point: any http(s) URL, or only this machine
    /// (`localhost`, 127.0.0.0/8, ::1), as for tests and API fuzzing.
    #[arg(
        long,
        env = "CREDITD_WEBHOOK_DESTINATIONS",
        value_enum,
        default_value_t = Destinations::Any
    )]
    pub webhook_destinations: Destinations,
    /// Mark the credits page's session cookie `Secure`: set it when users reach creditd
    /// over HTTPS (as they should), directly or through a proxy.
    #[arg(long, env = "CREDITD_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Who may show `/app/badge` in a frame: a CSP `frame-ancestors` source list, such
    /// as the platform's origin (`https://app.example.com`). Other pages are never framed.
    #[arg(long, env = "CREDITD_BADGE_FRAME_ANCESTORS", default_value = "'self'")]
    pub badge_frame_ancestors: String,
    /// Origins whose pages may call the API with account tokens (CORS), comma-separated,
    /// such as `https://app.example.com`. None by default.
    #[arg(long, env = "CREDITD_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Most client connections open at once; kept under the open-files limit (which
    /// creditd raises to its hard limit at start) less 256 for the database and webhooks.
    /// Over it, a new connection closes the oldest idle one.
    #[arg(long, env = "CREDITD_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a request's head may take to arrive, and a keep-alive connection may stay
    /// idle, before the connection is closed.
    #[arg(long, env = "CREDITD_IDLE_TIMEOUT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
}

/// Where webhook endpoints may point.
#[derive(Clone, Copy, ValueEnum)]
pub enum Destinations {
    /// Any http or https URL.
    Any,
    /// Only loopback hosts.
    Loopback,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Commit {
    Group,
    PerRequest,
}

#[derive(Subcommand)]
pub enum KeyCommands {
    /// Create a key and print its secret (shown only now).
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// admin, service or viewer.
        #[arg(long)]
        role: String,
        /// Break glass: write the key into this database directly, for an operator who
        /// lost every admin key (a SQLite database must not be open in a running
        /// creditd).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// With --database: create the SQLite file if it does not exist.
        #[arg(long, requires = "database")]
        create: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the keys (without secrets).
    List {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a key by id; it stops working at once.
    Revoke {
        /// The key's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum AccountCommands {
    /// An account and its membership.
    Show {
        /// The account id.
        account: String,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        output: Output,
    },
    /// Accounts whose id starts with PREFIX, in id order.
    Search {
        /// The start of the id ("" lists every account).
        prefix: String,
        /// Accounts to show (1 … 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Subcommand)]
pub enum HoldCommands {
    /// A hold: what it reserved, from which buckets, and how it settled.
    Show {
        /// The hold's id (h{n}_{account}).
        hold: String,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Subcommand)]
pub enum PurchaseCommands {
    /// The purchase recorded under the platform's order id.
    Show {
        /// The order id.
        order_id: String,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        output: Output,
    },
}

/// The ledger's entry types, as `--type` accepts them (clap lists them when refusing).
fn entry_types() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        creditd_ledger::EntryType::VARIANTS
            .iter()
            .map(|entry_type| <&'static str>::from(*entry_type)),
    )
}

#[derive(Args)]
pub struct LedgerArgs {
    /// The account id.
    pub account: String,
    /// Entries to show (1 … 500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only this entry type.
    #[arg(long = "type", value_parser = entry_types())]
    pub entry_type: Option<String>,
    /// Entries at or after this instant (RFC 3339).
    #[arg(long)]
    pub since: Option<Timestamp>,
    /// Entries before this instant (RFC 3339).
    #[arg(long)]
    pub until: Option<Timestamp>,
    #[command(flatten)]
    pub remote: Remote,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct GrantArgs {
    /// The account id.
    pub account: String,
    /// Credits.
    #[arg(long)]
    pub amount: i64,
    /// general or agent.
    #[arg(long, default_value = "general")]
    pub kind: String,
    /// promotion or compensation.
    #[arg(long, default_value = "promotion")]
    pub source: String,
    /// How long they last (ISO 8601, e.g. P30D); default: never expire.
    #[arg(long, conflicts_with = "expires_at")]
    pub valid_for: Option<String>,
    /// When they expire (RFC 3339).
    #[arg(long)]
    pub expires_at: Option<Timestamp>,
    /// The campaign.
    #[arg(long)]
    pub campaign: Option<String>,
    /// A note for the ledger.
    #[arg(long)]
    pub note: Option<String>,
    /// Why, for the audit trail (never shown to the user); required for compensation.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub write: Write,
}

#[derive(Args)]
pub struct AdjustArgs {
    /// The account id.
    pub account: String,
    /// Signed credits: +n adds, -n takes.
    #[arg(long, allow_hyphen_values = true)]
    pub amount: i64,
    /// general or agent.
    #[arg(long)]
    pub kind: String,
    /// Why (kept in the ledger).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub write: Write,
}
