//! `creditd-load`: N concurrent HTTP clients, each on its own keep-alive connection,
//! running a mix of charges, balance reads and grants over M accounts of a running
//! creditd, then reporting throughput and p50 / p99 / p99.9 latency per operation.
//!
//! Setup first opens the accounts with a large never-expiring grant. During the run,
//! grants are small and expire in 30 days, so charges (earliest expiry first) spend them
//! and an account's live buckets stay few however long the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng;
use sqlx::{Connection, PgConnection};
use tokio::net::TcpStream;

/// The same allocator as the server: the generator shares the machine, so what it
/// spends on malloc the server does not get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Clone)]
#[command(name = "creditd-load", about = "Load generator for creditd")]
struct Args {
    /// The server; given more than once (several nodes), client i uses the i-th
    /// modulo their number.
    #[arg(long = "addr", default_value = "127.0.0.1:8080", num_args = 1)]
    addrs: Vec<SocketAddr>,
    /// A key of the admin role: the generator makes a service key with it
    /// (`POST /v1/api-keys`) and runs the load with that one, as a platform's backend
    /// would (an admin key's changes are audited as a person's: one more row per
    /// change). With `--as-admin`, the load runs with this key itself.
    #[arg(long, env = "CREDITD_ADMIN_KEY", required_unless_present = "plain_sql")]
    key: Option<String>,
    /// Run the load with the admin key itself (every change audited).
    #[arg(long)]
    as_admin: bool,
    /// Instead of creditd, run the same mix as plain SQL on this PostgreSQL database,
    /// each client on its own connection, one transaction per request (charge: `SELECT
    /// … FOR UPDATE`, `UPDATE`, `INSERT`): the baseline group commit is measured
    /// against. Makes tables `plain_accounts` and `plain_ledger` if missing.
    #[arg(long, value_name = "POSTGRES_URL", conflicts_with = "addrs")]
    plain_sql: Option<String>,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Accounts the load is spread over (1: a single hot account).
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Percent of charges, balance reads and grants.
    #[arg(long, default_value = "70,20,10")]
    mix: String,
    /// Send no Idempotency-Key with writes (by default every write has one, as a
    /// careful client's would).
    #[arg(long)]
    no_idempotency_keys: bool,
    /// Prefix of the account ids (default: a fresh random one per run).
    #[arg(long)]
    prefix: Option<String>,
}

impl Args {
    /// The node client `index` talks to.
    fn node(&self, index: usize) -> SocketAddr {
        self.addrs[index.checked_rem(self.addrs.len()).unwrap_or(0)]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Charge,
    Balance,
    Grant,
}

impl Operation {
    const ALL: [Operation; 3] = [Operation::Charge, Operation::Balance, Operation::Grant];

    fn name(self) -> &'static str {
        match self {
            Operation::Charge => "charge",
            Operation::Balance => "balance",
            Operation::Grant => "grant",
        }
    }
}

/// One client's tally.
struct Tally {
    latency: [Histogram<u64>; 3],
    failures: [u64; 3],
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
        Ok(Tally {
            latency: [histogram()?, histogram()?, histogram()?],
            failures: [0; 3],
        })
    }

    fn merge(&mut self, other: &Tally) -> anyhow::Result<()> {
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            mine.add(theirs)?;
        }
        for (mine, theirs) in self.failures.iter_mut().zip(other.failures) {
            *mine = mine.saturating_add(theirs);
        }
        Ok(())
    }
}

struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    auth: String,
}

impl Client {
    async fn connect(addr: SocketAddr, key: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Client {
            sender,
            host: addr.to_string(),
            auth: format!("Bearer {key}"),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        idempotency_key: Option<String>,
    ) -> anyhow::Result<StatusCode> {
        Ok(self
            .send_reading(method, path, body, idempotency_key)
            .await?
            .0)
    }

    /// Sends a request; its status and body.
    async fn send_reading(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        idempotency_key: Option<String>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::AUTHORIZATION, &self.auth);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// What a client drives: creditd over HTTP, or the plain-SQL baseline.
enum Target {
    Http(Client),
    PlainSql(PgConnection),
}

impl Target {
    async fn connect(args: &Args, index: usize) -> anyhow::Result<Target> {
        Ok(match (&args.plain_sql, &args.key) {
            (Some(url), _) => Target::PlainSql(PgConnection::connect(url).await?),
            (None, Some(key)) => Target::Http(Client::connect(args.node(index), key).await?),
            (None, None) => bail!("--key (or CREDITD_ADMIN_KEY) is needed to call creditd"),
        })
    }

    /// Opens `account` with a large never-expiring grant.
    async fn open_account(&mut self, account: &str) -> anyhow::Result<()> {
        match self {
            Target::Http(client) => {
                let body = r#"{"kind":"general","amount":1000000000,"source":"promotion"}"#;
                let status = client
                    .send(
                        Method::POST,
                        &format!("/v1/accounts/{account}/grants"),
                        Some(body.to_owned()),
                        None,
                    )
                    .await?;
                if status != StatusCode::CREATED {
                    bail!("setup grant for {account}: {status}");
                }
            }
            Target::PlainSql(db) => {
                sqlx::query(
                    "INSERT INTO plain_accounts (id, balance) VALUES ($1, 1000000000)
                     ON CONFLICT (id) DO UPDATE SET balance = plain_accounts.balance + 1000000000",
                )
                .bind(account)
                .execute(db)
                .await?;
            }
        }
        Ok(())
    }

    /// Runs one operation; whether it was answered as expected.
    async fn run(
        &mut self,
        operation: Operation,
        account: &str,
        idempotency_key: Option<String>,
    ) -> anyhow::Result<bool> {
        match self {
            Target::Http(client) => {
                let (method, path, body, expected) = match operation {
                    Operation::Charge => (
                        Method::POST,
                        format!("/v1/accounts/{account}/charges"),
                        Some(r#"{"feature":"ai_extender"}"#),
                        StatusCode::CREATED,
                    ),
                    Operation::Balance => (
                        Method::GET,
                        format!("/v1/accounts/{account}/balance"),
                        None,
                        StatusCode::OK,
                    ),
                    Operation::Grant => (
                        Method::POST,
                        format!("/v1/accounts/{account}/grants"),
                        Some(
                            r#"{"kind":"general","amount":5,"source":"promotion","valid_for":"P30D"}"#,
                        ),
                        StatusCode::CREATED,
                    ),
                };
                let body = body.map(str::to_owned);
                Ok(client.send(method, &path, body, idempotency_key).await? == expected)
            }
            Target::PlainSql(db) => Ok(plain_sql(db, operation, account).await?),
        }
    }
}

/// One request of the baseline: what a plain implementation does in SQL, one
/// transaction per request. A charge takes 1 credit, a grant gives 5.
async fn plain_sql(
    db: &mut PgConnection,
    operation: Operation,
    account: &str,
) -> Result<bool, sqlx::Error> {
    if operation == Operation::Balance {
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM plain_accounts WHERE id = $1")
                .bind(account)
                .fetch_optional(&mut *db)
                .await?;
        return Ok(balance.is_some());
    }
    let amount: i64 = if operation == Operation::Charge {
        -1
    } else {
        5
    };
    let mut tx = db.begin().await?;
    let balance: i64 =
        sqlx::query_scalar("SELECT balance FROM plain_accounts WHERE id = $1 FOR UPDATE")
            .bind(account)
            .fetch_one(&mut *tx)
            .await?;
    if balance.saturating_add(amount) < 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE plain_accounts SET balance = balance + $2 WHERE id = $1")
        .bind(account)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO plain_ledger (account_id, amount) VALUES ($1, $2)")
        .bind(account)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The baseline's tables.
async fn plain_tables(url: &str) -> anyhow::Result<()> {
    let mut db = PgConnection::connect(url).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS plain_accounts (id text PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS plain_ledger (
             id bigserial PRIMARY KEY, account_id text NOT NULL, amount bigint NOT NULL,
             at timestamptz NOT NULL DEFAULT now());",
    )
    .execute(&mut db)
    .await?;
    Ok(())
}

/// A new service key, made with the admin key.
async fn service_key(addr: SocketAddr, admin: &str) -> anyhow::Result<String> {
    let mut client = Client::connect(addr, admin).await?;
    let body = r#"{"name":"creditd-load","role":"service"}"#;
    let (status, answer) = client
        .send_reading(Method::POST, "/v1/api-keys", Some(body.to_owned()), None)
        .await?;
    if status != StatusCode::CREATED {
        bail!("making a service key: {status}");
    }
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    answer["key"]
        .as_str()
        .map(str::to_owned)
        .context("the new key's answer has no `key`")
}

fn parse_mix(text: &str) -> anyhow::Result<[u32; 3]> {
    let parts: Vec<u32> = text
        .split(',')
        .map(|p| p.trim().parse())
        .collect::<Result<_, _>>()
        .context("--mix takes three percentages: charges,balance,grants")?;
    match parts.as_slice() {
        [c, b, g] if c.saturating_add(*b).saturating_add(*g) == 100 => Ok([*c, *b, *g]),
        _ => bail!("--mix takes three percentages that add up to 100"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mix = parse_mix(&args.mix)?;
    if args.clients == 0 || args.accounts == 0 {
        bail!("--clients and --accounts must be at least 1");
    }
    if let Some(url) = &args.plain_sql {
        plain_tables(url).await?;
    }
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("load-{:08x}", rand::random::<u32>()));
    let accounts: Arc<Vec<String>> = Arc::new(
        (0..args.accounts)
            .map(|n| format!("{prefix}-{n}"))
            .collect(),
    );

    let args = match (&args.key, args.as_admin || args.plain_sql.is_some()) {
        (Some(admin), false) => Args {
            key: Some(service_key(args.node(0), admin).await?),
            ..args
        },
        _ => args,
    };
    eprintln!(
        "setup: opening {} accounts with 1,000,000,000 credits each",
        accounts.len()
    );
    let started = Instant::now();
    let mut setup = tokio::task::JoinSet::new();
    for client_index in 0..args.clients {
        let accounts = Arc::clone(&accounts);
        let args = args.clone();
        setup.spawn(async move {
            let mut client = Target::connect(&args, client_index).await?;
            for account in accounts.iter().skip(client_index).step_by(args.clients) {
                client.open_account(account).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = setup.join_next().await {
        done??;
    }
    eprintln!("setup: done in {:.1} s", started.elapsed().as_secs_f64());

    eprintln!(
        "run: {} clients, {} accounts, mix {}/{}/{} (charge/balance/grant), {} s",
        args.clients, args.accounts, mix[0], mix[1], mix[2], args.seconds
    );
    let deadline = Instant::now()
        .checked_add(Duration::from_secs(args.seconds))
        .context("--seconds is too large")?;
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client_index in 0..args.clients {
        let accounts = Arc::clone(&accounts);
        let args = args.clone();
        clients.spawn(async move {
            let mut client = Target::connect(&args, client_index).await?;
            let mut tally = Tally::new()?;
            let mut sequence = 0_u64;
            while Instant::now() < deadline {
                let (roll, pick) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..100_u32),
                        rng.random_range(0..accounts.len()),
                    )
                };
                let operation = if roll < mix[0] {
                    Operation::Charge
                } else if roll < mix[0].saturating_add(mix[1]) {
                    Operation::Balance
                } else {
                    Operation::Grant
                };
                let account = &accounts[pick];
                sequence = sequence.saturating_add(1);
                let key = (!args.no_idempotency_keys && operation != Operation::Balance)
                    .then(|| format!("{account}-{client_index}-{sequence}"));
                let sent = Instant::now();
                let ok = client.run(operation, account, key).await?;
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                let index = operation as usize;
                tally.latency[index].saturating_record(micros.max(1));
                if !ok {
                    tally.failures[index] = tally.failures[index].saturating_add(1);
                }
            }
            anyhow::Ok(tally)
        });
    }
    let mut total = Tally::new()?;
    while let Some(done) = clients.join_next().await {
        total.merge(&done??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    report(&total, elapsed);
    Ok(())
}

fn report(total: &Tally, elapsed: f64) {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{:<8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "op", "count", "per s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failed"
    );
    let mut all = Histogram::<u64>::new(3).ok();
    for op in Operation::ALL {
        let h = &total.latency[op as usize];
        if let Some(all) = all.as_mut() {
            let _ = all.add(h);
        }
        println!(
            "{:<8} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8}",
            op.name(),
            h.len(),
            h.len() as f64 / elapsed,
            ms(h, 0.5),
            ms(h, 0.99),
            ms(h, 0.999),
            h.max() as f64 / 1000.0,
            total.failures[op as usize]
        );
    }
    if let Some(all) = all {
        println!(
            "{:<8} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8}",
            "all",
            all.len(),
            all.len() as f64 / elapsed,
            ms(&all, 0.5),
            ms(&all, 0.99),
            ms(&all, 0.999),
            all.max() as f64 / 1000.0,
            total.failures.iter().sum::<u64>()
        );
    }
}
