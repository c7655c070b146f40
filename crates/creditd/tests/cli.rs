//! The admin commands of the `creditd` binary, run as a person would, on a fresh
//! database: what they print and what they change.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

struct Cli {
    database: String,
    _dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("cli.db").display());
        Cli {
            database,
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_creditd"))
            .args(args)
            .env("CREDITD_DATABASE_URL", &self.database)
            .env("CREDITD_ADMIN_KEY", "cli-test-admin")
            .env_remove("CREDITD_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns what it printed.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "creditd {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }
}

#[test]
fn grant_adjust_then_read_balance_and_ledger() {
    let cli = Cli::new();
    assert!(cli.ok(&["migrate"]).contains("schema up to date"));
    let granted = cli.ok(&[
        "grant",
        "alice",
        "--amount",
        "30",
        "--valid-for",
        "P7D",
        "--note",
        "welcome",
    ]);
    assert!(
        granted.contains("Granted 30 general credits (promotion) to alice"),
        "{granted}"
    );
    let adjusted = cli.ok(&[
        "adjust", "alice", "--amount", "-5", "--kind", "general", "--reason", "typo",
    ]);
    assert!(
        adjusted.contains("Adjusted alice by -5 general credits"),
        "{adjusted}"
    );

    let balance = cli.ok(&["balance", "alice"]);
    assert!(balance.contains("total 25"), "{balance}");
    assert!(balance.contains("promotion"), "{balance}");
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
        lines[1].starts_with("e2,") && lines[1].contains(",adjust,-5,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("e1,") && lines[2].contains(",grant,+30,"),
        "{csv}"
    );
    let table = cli.ok(&["ledger", "alice", "--type", "grant"]);
    assert!(
        table.contains("welcome") && !table.contains("adjust"),
        "{table}"
    );
}

#[test]
fn refusals_and_unknown_accounts_fail_with_a_clear_message() {
    let cli = Cli::new();
    let refused = cli.run(&[
        "adjust", "bob", "--amount", "-5", "--kind", "general", "--reason", "x",
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("insufficient credits") && said.contains("insufficient_credits"),
        "{said}"
    );
    let missing = cli.run(&["balance", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no account nobody"));
}

#[test]
fn keys_are_created_listed_and_revoked() {
    let cli = Cli::new();
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
    assert!(cli.ok(&["keys", "revoke", id]).contains("Revoked"));
    let bad = cli.run(&["keys", "create", "--name", "x", "--role", "root"]);
    assert!(!bad.status.success());
}
