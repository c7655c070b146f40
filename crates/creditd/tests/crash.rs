//! Crash test: `kill -9` the server again and again in the middle of a load of charges,
//! restart it on the same database, and check that every acknowledged charge is there
//! exactly once and the ledger invariant holds (SPEC §5: a 2xx answer means durable).
//!
//! Clients retry every charge with its own `Idempotency-Key` until it is acknowledged,
//! as a careful client would across a crash: so each charge must end up applied exactly
//! once, whether its first attempt was lost before the commit, or committed with the
//! answer lost.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, call, free_addr, ledger};
use hyper::Method;
use serde_json::{Value, json};

const ACCOUNTS: usize = 8;
const CLIENTS: usize = 16;
const CHARGES_PER_CLIENT: usize = 60;
const KILLS: usize = 5;
const START_CREDITS: u64 = 1_000_000;

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
        let entries = ledger(addr, &account).await;
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
