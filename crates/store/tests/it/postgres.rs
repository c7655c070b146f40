//! A fresh PostgreSQL database per test, or a loud skip. Shared by the store's
//! conformance tests and the binary's two-node test (included by path).

use std::io::Write;

use sqlx::{Connection, Executor, PgConnection};

/// Where the PostgreSQL tests make their databases.
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test on the test server, dropped by [`TestDatabase::drop`].
pub struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops it (a failed test leaves it, to look at).
    pub async fn drop(self) {
        let mut admin = PgConnection::connect(&self.server).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin.execute(drop.as_str()).await.unwrap();
    }
}

/// A fresh database on the PostgreSQL server at `CREDITD_TEST_POSTGRES` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`), or `None` when none is reachable: the
/// test is then SKIPPED, said on the terminal whatever cargo captures, unless
/// `CREDITD_REQUIRE_POSTGRES=1` (as in CI), which makes it fail.
pub async fn postgres_or_skip() -> Option<TestDatabase> {
    postgres_created_with_or_skip("").await
}

/// As [`postgres_or_skip`], the database made with `options` after its name in
/// `CREATE DATABASE` (a collation, say).
pub async fn postgres_created_with_or_skip(options: &str) -> Option<TestDatabase> {
    let server = std::env::var("CREDITD_TEST_POSTGRES").unwrap_or(DEFAULT_POSTGRES.to_owned());
    let mut admin = match PgConnection::connect(&server).await {
        Ok(connection) => connection,
        Err(error) => {
            if std::env::var("CREDITD_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("CREDITD_REQUIRE_POSTGRES=1 and no PostgreSQL at {server}: {error}");
            }
            // Straight to the terminal: cargo test captures only the print macros.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL test, no PostgreSQL at {server}: {error} ***"
            );
            return None;
        }
    };
    let name = format!("creditd_test_{:016x}", rand_suffix());
    admin
        .execute(format!("CREATE DATABASE {name} {options}").as_str())
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    Some(TestDatabase { server, name, url })
}

/// A name no other test of this run or another uses.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish()
}
