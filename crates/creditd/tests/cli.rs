//! The admin commands of the `creditd` binary, run as a person would against a real
//! `creditd serve`: what they print, what they change, and the one sentence they say
//! when something is wrong.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};

use common::{ADMIN, Server, free_addr};

/// A server on a fresh SQLite database, and the CLI pointed at it.
struct Cli {
    addr: SocketAddr,
    database: String,
    server: Option<Server>,
    dir: tempfile::TempDir,
}

impl Cli {
    async fn start() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("cli.db").display());
        let addr = free_addr();
        let server = Server::start(addr, &database);
        server.wait_ready(addr).await;
        Cli {
            addr,
            database,
            server: Some(server),
            dir,
        }
    }

    /// Runs `creditd ARGS` with `key` (none if empty).
    fn run_with(&self, key: &str, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_creditd"));
        command
            .args(args)
            .env("CREDITD_URL", format!("http://{}", self.addr))
            .env_remove("CREDITD_DATABASE_URL")
            .env_remove("CREDITD_ADMIN_KEY")
            .env("RUST_LOG", "warn")
            .current_dir(self.dir.path());
        if key.is_empty() {
            command.env_remove("CREDITD_KEY");
        } else {
            command.env("CREDITD_KEY", key);
        }
        command.output().unwrap()
    }

    /// Runs a command as the admin that must succeed; returns what it printed.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run_with(ADMIN, args);
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "creditd {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// Runs a command with `key` that must fail; returns the one line it said.
    fn fails_with(&self, key: &str, args: &[&str]) -> String {
        let output = self.run_with(key, args);
        assert!(!output.status.success(), "creditd {args:?} succeeded");
        let said = String::from_utf8(output.stderr).unwrap();
        assert_eq!(said.lines().count(), 1, "one line, no backtrace: {said}");
        assert!(said.starts_with("creditd: "), "{said}");
        said
    }

    fn fails(&self, args: &[&str]) -> String {
        self.fails_with(ADMIN, args)
    }

    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }
}

/// A POST as the admin through the API: (status, JSON answer).
async fn post(addr: SocketAddr, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    common::call(addr, hyper::Method::POST, path, Some(body), None)
        .await
        .unwrap()
}

impl Drop for Cli {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn writes_say_what_they_did_and_reads_print_tables_json_and_csv() {
    let cli = Cli::start().await;
    let typo = cli.fails(&["grant", "alice", "--amount", "30"]);
    assert!(
        typo.contains("there is no account \"alice\"") && typo.contains("--create"),
        "{typo}"
    );
    let granted = cli.ok(&[
        "grant",
        "alice",
        "--amount",
        "30",
        "--valid-for",
        "P7D",
        "--note",
        "welcome",
        "--create",
    ]);
    assert!(
        granted.starts_with("+30 general credits (promotion) to alice: bucket b1; they expire "),
        "{granted}"
    );
    let adjusted = cli.ok(&[
        "adjust", "alice", "--amount", "-5", "--kind", "general", "--reason", "typo",
    ]);
    assert_eq!(
        adjusted.trim(),
        "\u{2212}5 general credits from alice, reason: typo (ledger e2)."
    );

    // Sent again under the same key (as after a timeout), it applies once.
    let once = [
        "grant",
        "alice",
        "--amount",
        "7",
        "--idempotency-key",
        "retry-1",
    ];
    assert!(cli.ok(&once).starts_with("+7 general credits"));
    let again = cli.ok(&once);
    assert!(
        again.starts_with("Done before under this Idempotency-Key"),
        "{again}"
    );
    cli.ok(&[
        "adjust",
        "alice",
        "--amount",
        "-7",
        "--kind",
        "general",
        "--reason",
        "retry test",
    ]);

    let balance = cli.ok(&["balance", "alice"]);
    assert!(balance.contains("total 25"), "{balance}");
    assert!(balance.contains("promotion"), "{balance}");
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["balance", "alice", "--json"])).unwrap();
    assert_eq!(json["total"], 25);
    let shown = cli.ok(&["account", "show", "alice"]);
    assert!(
        shown.contains("membership") && shown.contains("none"),
        "{shown}"
    );

    let csv = cli.ok(&["ledger", "alice", "--csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,at,type,amount,kind,source,bucket,hold,description"
    );
    assert!(
        lines[1].starts_with("e4,") && lines[1].contains(",adjust,-7,"),
        "{csv}"
    );
    assert!(
        lines[3].starts_with("e2,") && lines[3].contains(",adjust,-5,"),
        "{csv}"
    );
    assert!(
        lines[4].starts_with("e1,") && lines[4].contains(",grant,+30,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 5, "the replayed grant made no entry: {csv}");
    let table = cli.ok(&["ledger", "alice", "--type", "grant"]);
    assert!(
        table.contains("welcome") && !table.contains("adjust"),
        "{table}"
    );
}

#[tokio::test]
async fn accounts_holds_and_purchases_are_found() {
    let cli = Cli::start().await;
    for account in ["team-b", "team-a", "solo"] {
        cli.ok(&["grant", account, "--amount", "100", "--create"]);
    }
    let found = cli.ok(&["account", "search", "team-"]);
    assert!(
        found.contains("2 account(s) starting with \"team-\""),
        "{found}"
    );
    assert!(found.contains("team-a") && found.contains("team-b") && !found.contains("solo"));
    let csv = cli.ok(&["account", "search", "team-", "--csv"]);
    let ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["team-a", "team-b"]);

    // A hold and a purchase made through the API, looked up by support.
    let addr = cli.addr;
    let (status, hold) = post(
        addr,
        "/v1/accounts/solo/holds",
        serde_json::json!({"feature": "ai_background", "reference": "job-9"}),
    )
    .await;
    assert_eq!(status, 201);
    let hold_id = hold["id"].as_str().unwrap();
    let shown = cli.ok(&["hold", "show", hold_id]);
    assert!(
        shown.contains("ai_background") && shown.contains("pending") && shown.contains("job-9"),
        "{shown}"
    );
    assert!(
        cli.fails(&["hold", "show", "h99_solo"])
            .contains("there is no hold")
    );

    let end = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30)).to_string();
    let (status, _) = post(
        addr,
        "/v1/accounts/solo/membership",
        serde_json::json!({"action": "activate", "period_end": end}),
    )
    .await;
    assert_eq!(status, 200);
    let purchase = |order: &str| {
        serde_json::json!({"order_id": order, "package": "credits_100",
                           "paid": {"amount_minor": 499, "currency": "USD"}})
    };
    let path = "/v1/accounts/solo/purchases";
    let (status, _) = post(addr, path, purchase("ord/1 #2")).await;
    assert_eq!(status, 422, "order ids hold no spaces");
    let (status, _) = post(addr, path, purchase("ord/1#2?")).await;
    assert_eq!(status, 201);
    let purchase = cli.ok(&["purchase", "show", "ord/1#2?"]);
    assert!(
        purchase.contains("solo") && purchase.contains("499 USD"),
        "{purchase}"
    );
    let odd = cli.fails(&["purchase", "show", ".."]);
    assert!(odd.contains("no id creditd has"), "{odd}");
    let missing = cli.fails(&["purchase", "show", "ord-404"]);
    assert!(missing.contains("no purchase is recorded"), "{missing}");
}

#[tokio::test]
async fn refusals_and_unreachable_servers_get_one_plain_sentence() {
    let cli = Cli::start().await;
    let refused = cli.fails(&[
        "adjust", "bob", "--amount", "-5", "--kind", "general", "--reason", "x", "--create",
    ]);
    assert!(
        refused.contains("insufficient credits") && refused.contains("insufficient_credits"),
        "{refused}"
    );
    let missing = cli.fails(&["balance", "nobody"]);
    assert!(
        missing.contains("account nobody does not exist"),
        "{missing}"
    );

    let nobody = cli.fails(&["balance", "x", "--url", "http://127.0.0.1:9"]);
    assert!(
        nobody.contains("cannot reach creditd at http://127.0.0.1:9"),
        "{nobody}"
    );
    let no_key = cli.fails_with("", &["balance", "x"]);
    assert!(no_key.contains("needs an API key"), "{no_key}");
    let wrong_key = cli.fails_with("cdk_nope_nope", &["balance", "x"]);
    assert!(wrong_key.contains("refused the key"), "{wrong_key}");
    let created = cli.ok(&["keys", "create", "--name", "reader", "--role", "viewer"]);
    let viewer = created
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("cdk_"))
        .unwrap();
    let narrow = cli.fails_with(viewer, &["grant", "x", "--amount", "1", "--create"]);
    assert!(narrow.contains("this key may not do that"), "{narrow}");
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_through_the_api() {
    let cli = Cli::start().await;
    let created = cli.ok(&["keys", "create", "--name", "backend", "--role", "service"]);
    let key = created
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("cdk_"))
        .unwrap();
    let id = key.split('_').nth(1).unwrap();
    let listed = cli.ok(&["keys", "list"]);
    assert!(listed.contains(id) && listed.contains("backend") && listed.contains("service"));
    assert!(!listed.contains(key), "the list shows no secret");
    let revoked = cli.ok(&["keys", "revoke", id]);
    assert!(revoked.contains("Revoked service key") && revoked.contains("stops working"));
    let bad = cli.fails(&["keys", "create", "--name", "x", "--role", "root"]);
    assert!(bad.contains("root"), "{bad}");
}

#[tokio::test]
async fn key_names_entry_types_and_catalogs_are_checked_before_anything_is_sent() {
    let mut cli = Cli::start().await;
    for name in ["", "   ", "two\nlines", "a\ttab", &"n".repeat(101)] {
        let said = cli.fails(&["keys", "create", "--name", name, "--role", "service"]);
        assert!(
            said.contains("--name must say what the key is for in 1 to 100"),
            "{said}"
        );
    }
    let listed = cli.ok(&["keys", "list", "--json"]);
    assert!(!listed.contains("two"), "{listed}");
    let wrong = cli.run_with(ADMIN, &["ledger", "a1", "--type", "bogus"]);
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("--type") && said.contains("grant, debit, refund"),
        "{said}"
    );
    cli.stop();

    let catalog = cli.dir.path().join("catalog.toml");
    let text =
        include_str!("../../ledger/src/default_catalog.toml").replacen("block = 1", "block = 0", 1);
    std::fs::write(&catalog, text).unwrap();
    let said = cli.fails(&[
        "migrate",
        "--database",
        &cli.database,
        "--config",
        catalog.to_str().unwrap(),
    ]);
    assert!(said.contains("block: 0 is not in 1"), "{said}");
}

#[test]
fn a_short_admin_key_is_refused_at_start_with_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("short.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_creditd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .env("CREDITD_ADMIN_KEY", "sixsix")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("at least 16"), "{said}");
    assert!(
        !dir.path().join("short.db").exists(),
        "refused before any database"
    );
}

#[tokio::test]
async fn only_migrate_and_the_break_glass_key_open_the_database() {
    let mut cli = Cli::start().await;
    // While the server has the database open, nothing else may write it.
    let in_use = cli.fails(&[
        "keys",
        "create",
        "--name",
        "ops",
        "--role",
        "admin",
        "--database",
        &cli.database,
    ]);
    assert!(
        in_use.contains("open in another creditd process"),
        "{in_use}"
    );
    cli.stop();

    let made = cli.ok(&[
        "keys",
        "create",
        "--name",
        "ops",
        "--role",
        "admin",
        "--database",
        &cli.database,
    ]);
    assert!(made.contains("Created admin key"), "{made}");
    let elsewhere = format!("sqlite://{}", cli.dir.path().join("typo.db").display());
    let typo = cli.fails(&["migrate", "--database", &elsewhere]);
    assert!(
        typo.contains("there is no SQLite database") && typo.contains("--create"),
        "{typo}"
    );
    let typo = cli.fails(&[
        "keys",
        "create",
        "--name",
        "ops",
        "--role",
        "admin",
        "--database",
        &elsewhere,
    ]);
    assert!(typo.contains("--create"), "{typo}");
    assert!(
        cli.ok(&["migrate", "--database", &elsewhere, "--create"])
            .contains("schema up to date")
    );
    assert!(
        cli.ok(&["migrate", "--database", &cli.database])
            .contains("schema up to date")
    );
}

#[tokio::test]
async fn reconcile_reports_then_applies_the_missing_orders_once_and_writes_every_rows_status() {
    let cli = Cli::start().await;
    let end = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30)).to_string();
    let (status, _) = post(
        cli.addr,
        "/v1/accounts/m1/membership",
        serde_json::json!({"action": "activate", "period_end": end}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(
        cli.addr,
        "/v1/accounts/m1/purchases",
        serde_json::json!({"order_id": "ord-1", "package": "credits_100"}),
    )
    .await;
    assert_eq!(status, 201);
    let paid = jiff::Timestamp::now().to_string();
    let file = cli.dir.path().join("paid.csv");
    std::fs::write(
        &file,
        format!(
            "order_id,account_id,credits,package,paid_at\n\
             ord-1,m1,,credits_100,{paid}\n\
             ord-2,m1,40,,{paid}\n\
             ord-3,nobody,40,,{paid}\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let dry = cli.ok(&["reconcile", file]);
    assert!(
        dry.contains("missing") && dry.contains("run again with --apply"),
        "{dry}"
    );
    let applied = cli.ok(&["reconcile", file, "--apply", "--report", "report.csv"]);
    assert!(
        applied.contains("1 missing orders recorded now."),
        "{applied}"
    );
    let report = std::fs::read_to_string(cli.dir.path().join("report.csv")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "line,order_id,status,detail");
    assert_eq!(lines[1], "2,ord-1,credited,");
    assert_eq!(lines[2], "3,ord-2,missing,recorded now");
    assert!(lines[3].starts_with("4,ord-3,invalid,"), "{report}");
    let again = cli.ok(&["reconcile", file, "--apply"]);
    assert!(again.contains("0 missing orders recorded now."), "{again}");
    let unexplained = cli.fails(&["grant", "m1", "--amount", "5", "--source", "compensation"]);
    assert!(unexplained.contains("--reason"), "{unexplained}");
    let explained = cli.ok(&[
        "grant",
        "m1",
        "--amount",
        "5",
        "--source",
        "compensation",
        "--reason",
        "ticket 9",
    ]);
    assert!(
        explained.starts_with("+5 general credits (compensation)"),
        "{explained}"
    );
    let missing_file = cli.fails(&["reconcile", "nothing-here.csv"]);
    assert!(missing_file.contains("nothing-here.csv"), "{missing_file}");
}
