//! Crash test: `kill -9` the server again and again in the middle of a load of charges,
//! restart it on the same database, and check that every acknowledged charge is there
//! exactly once and the ledger invariant holds (SPEC §5: a 2xx answer means durable).
//!
//! Clients retry every charge with its own `Idempotency-Key` until it is acknowledged,
//! as a careful client would across a crash: so each charge must end up applied exactly
//! once, whether its first attempt was lost before the commit, or committed with the
//! answer lost.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const ADMIN: &str = "crash-test-admin";
const ACCOUNTS: usize = 8;
const CLIENTS: usize = 16;
const CHARGES_PER_CLIENT: usize = 60;
const KILLS: usize = 5;
const START_CREDITS: u64 = 1_000_000;

/// One HTTP exchange on a fresh connection: (status, JSON body), or `None` if the
/// server was not there or went away before answering.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Option<(u16, Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {ADMIN}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let body = Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default()));
    let response = sender.send_request(request.body(body).ok()?).await.ok()?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Some((status, value))
}

struct Server {
    child: Child,
}

impl Server {
    fn start(addr: SocketAddr, database: &str) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_creditd"))
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--database",
                database,
            ])
            .env("CREDITD_ADMIN_KEY", ADMIN)
            .env_remove("CREDITD_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server { child }
    }

    async fn wait_ready(&self, addr: SocketAddr) {
        for _ in 0..200 {
            if let Some((200, _)) = call(addr, Method::GET, "/healthz", None, None).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("creditd did not become ready");
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no graceful shutdown, no flush
        self.child.wait().unwrap();
    }
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_charge_survives_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("crash.db").display());
    let addr = free_addr();
    let mut server = Server::start(addr, &database);
    server.wait_ready(addr).await;
    for n in 0..ACCOUNTS {
        let grant = json!({"kind": "general", "amount": START_CREDITS, "source": "promotion"});
        let (status, _) = call(
            addr,
            Method::POST,
            &format!("/v1/accounts/c{n}/grants"),
            Some(grant),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 201);
    }

    let done = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let interrupted = Arc::clone(&interrupted);
        clients.spawn(async move {
            // (account, idempotency key) -> the hold id of the acknowledged charge
            let mut acknowledged = HashMap::new();
            for n in 0..CHARGES_PER_CLIENT {
                let account = format!("c{}", (client + n) % ACCOUNTS);
                let key = format!("client{client}-charge{n}");
                let body = json!({"feature": "ai_extender", "quantity": 1 + n % 3});
                loop {
                    let path = format!("/v1/accounts/{account}/charges");
                    match call(addr, Method::POST, &path, Some(body.clone()), Some(&key)).await {
                        Some((201, hold)) => {
                            acknowledged.insert((account.clone(), key.clone()), hold);
                            break;
                        }
                        Some((status, answer)) if status < 500 => {
                            panic!("charge refused: {status} {answer}")
                        }
                        _ => {
                            interrupted.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
            acknowledged
        });
    }
    let killer = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            for _ in 0..KILLS {
                tokio::time::sleep(Duration::from_millis(300)).await;
                server.kill();
                server = Server::start(addr, &database);
                server.wait_ready(addr).await;
            }
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            server
        })
    };
    let mut acknowledged: HashMap<(String, String), Value> = HashMap::new();
    while let Some(answers) = clients.join_next().await {
        acknowledged.extend(answers.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let server = killer.await.unwrap();
    assert_eq!(acknowledged.len(), CLIENTS * CHARGES_PER_CLIENT);
    assert!(
        interrupted.load(Ordering::SeqCst) > 0,
        "the kills must interrupt requests in flight"
    );

    for n in 0..ACCOUNTS {
        let account = format!("c{n}");
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = cursor
                .as_ref()
                .map_or("limit=500".to_owned(), |c| format!("limit=500&cursor={c}"));
            let (status, page) = call(
                addr,
                Method::GET,
                &format!("/v1/accounts/{account}/ledger?{query}"),
                None,
                None,
            )
            .await
            .unwrap();
            assert_eq!(status, 200);
            entries.extend(page["entries"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let debits: Vec<&Value> = entries.iter().filter(|e| e["type"] == "debit").collect();
        let debited_holds: HashSet<&str> = debits
            .iter()
            .map(|e| e["hold_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            debited_holds.len(),
            debits.len(),
            "one debit per hold on {account}"
        );
        let mine: Vec<&Value> = acknowledged
            .iter()
            .filter(|((a, _), _)| *a == account)
            .map(|(_, hold)| hold)
            .collect();
        for hold in &mine {
            assert!(
                debited_holds.contains(hold["id"].as_str().unwrap()),
                "acknowledged charge {} lost",
                hold["id"]
            );
        }
        assert_eq!(
            debits.len(),
            mine.len(),
            "every charge applied exactly once on {account}"
        );
        let charged: u64 = mine
            .iter()
            .map(|hold| hold["amount"].as_u64().unwrap())
            .sum();
        let (_, balance) = call(
            addr,
            Method::GET,
            &format!("/v1/accounts/{account}/balance"),
            None,
            None,
        )
        .await
        .unwrap();
        assert_eq!(balance["total"].as_u64().unwrap(), START_CREDITS - charged);
        let ledger_sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
        assert_eq!(
            ledger_sum,
            (START_CREDITS - charged) as i64,
            "ledger invariant on {account}"
        );
    }
    server.kill();
}
