//! What runs here rather than through the API: `serve`, and the two commands that open
//! the database (SPEC §12): `migrate`, and `keys create --database` for the operator
//! who lost every admin key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use creditd_ledger::Catalog;
use creditd_server::auth::{Role, key_name, new_api_key};
use creditd_server::dto::ApiKeyDto;
use creditd_server::pages::PageSettings;
use creditd_server::{
    CommitMode, ConnectionLimits, Core, Service, WebhookDestinations, clock::Clock,
};
use creditd_store::{Changes, redacted};

use crate::admin::print_new_key;
use crate::cli::{Commit, Destinations, ServeArgs};
use crate::render::say;

/// `creditd serve`: creates a SQLite database on the first start (README).
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let catalog = load_catalog(args.config.as_deref())?;
    let clock = if args.test_clock {
        Clock::test()
    } else {
        Clock::System
    };
    let env_admin = std::env::var("CREDITD_ADMIN_KEY")
        .ok()
        .filter(|key| !key.is_empty());
    if let Some(key) = &env_admin {
        creditd_server::auth::check_admin_key(key).map_err(anyhow::Error::msg)?;
    }
    let cors_origins =
        creditd_server::http::parse_cors_origins(&args.cors_origins).map_err(anyhow::Error::msg)?;
    let database = &args.db.database;
    let store = creditd_store::open(database)
        .await
        .with_context(|| format!("opening {}", redacted(database)))?;
    let (mut core, first) = Core::open(Arc::from(store), catalog, clock, env_admin.as_deref())
        .await
        .context("preparing the service")?;
    core.webhook_destinations = match args.webhook_destinations {
        Destinations::Any => WebhookDestinations::Any,
        Destinations::Loopback => WebhookDestinations::Loopback,
    };
    core.pages = PageSettings::new(args.secure_cookies, &args.badge_frame_ancestors)
        .map_err(anyhow::Error::msg)?;
    core.cors_origins = cors_origins;
    if let Some(key) = first.admin_key {
        println!("No API key existed, so creditd created an admin key. It is shown only now:");
        println!();
        println!("    {key}");
        println!();
        println!(
            "Keep it safe; create narrower keys with POST /v1/api-keys or `creditd keys create`."
        );
    }
    let mode = match args.commit {
        Commit::Group => CommitMode::Group,
        Commit::PerRequest => CommitMode::PerRequest,
    };
    let limits = connection_limits(&args);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        database = %redacted(database),
        test_clock = args.test_clock,
        max_connections = limits.max_connections,
        "creditd is ready"
    );
    Service::start(core, mode)
        .serve(listener, limits, shutdown_signal())
        .await;
    tracing::info!("creditd stopped");
    Ok(())
}

/// The connection limits: the open-files limit is raised to its hard limit first (a
/// soft limit of 1,024 is common), and the cap kept under what it allows.
fn connection_limits(args: &ServeArgs) -> ConnectionLimits {
    let wanted = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-files limit; assuming 1,024");
            1_024
        }
    };
    let limits = ConnectionLimits::within_open_files(
        wanted,
        open_files,
        Duration::from_secs(args.idle_timeout),
    );
    if limits.max_connections < wanted {
        tracing::warn!(
            open_files,
            max_connections = limits.max_connections,
            "the open-files limit caps connections below --max-connections: raise it (LimitNOFILE= in a systemd unit, ulimit -n in a shell)"
        );
    }
    limits
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

/// Opens the database for a command that is not the server: a SQLite file that does
/// not exist is refused unless `create` (a mistyped path would otherwise make a new,
/// empty database).
async fn open(database: &str, create: bool) -> anyhow::Result<Box<dyn creditd_store::Store>> {
    let opened = if create {
        creditd_store::open(database).await
    } else {
        creditd_store::open_existing(database).await
    };
    opened.with_context(|| {
        let hint = if create {
            ""
        } else {
            " (pass --create to create it)"
        };
        format!("opening {}{hint}", redacted(database))
    })
}

/// The catalog of `--config`, checked; the built-in one without it.
fn load_catalog(path: Option<&Path>) -> anyhow::Result<Catalog> {
    let Some(path) = path else {
        return Ok(Catalog::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the catalog {}", path.display()))?;
    Catalog::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

/// `creditd migrate`: checks the catalog `serve` would read, then the schema.
pub async fn migrate(database: &str, create: bool, config: Option<&Path>) -> anyhow::Result<()> {
    load_catalog(config)?;
    let store = open(database, create).await?;
    store.close().await;
    let catalog = config.map_or_else(String::new, |path| {
        format!("; catalog {} checked", path.display())
    });
    say(&format!(
        "{}: schema up to date{catalog}",
        redacted(database)
    ))
}

/// `creditd keys create --database URL`: writes a new key straight into the database,
/// for when no admin key is left to ask the API with.
pub async fn break_glass_key(
    database: &str,
    create: bool,
    name: &str,
    role: &str,
) -> anyhow::Result<()> {
    let Some(role) = Role::parse(role) else {
        bail!("role {role:?} is none of admin, service, viewer");
    };
    let name = key_name(name).map_err(|why| anyhow::anyhow!("--name {why}"))?;
    let store = open(database, create).await?;
    let new = new_api_key(name, role, jiff::Timestamp::now());
    let changes = Changes {
        new_api_keys: vec![new.record.clone()],
        ..Changes::default()
    };
    let written = async { store.begin().await?.commit(&changes).await }.await;
    store.close().await;
    written.context("writing the key")?;
    print_new_key(&ApiKeyDto::new(&new.record, Some(new.key)))
}
