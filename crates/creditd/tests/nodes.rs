//! Two `creditd serve` processes on one PostgreSQL database, driven at once on the same
//! accounts, as two nodes behind a load balancer would be: each account changes in one
//! order (no overdraft), a request sent to both nodes with one `Idempotency-Key` applies
//! once, an order id is one purchase, a daily login counts once, each account's ledger
//! sums to its balance, and one node runs the background jobs.
//!
//! Skipped, loudly, without a reachable PostgreSQL (`CREDITD_TEST_POSTGRES`); CI sets
//! `CREDITD_REQUIRE_POSTGRES=1`, which makes that a failure.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

mod common;
#[path = "../../store/tests/it/postgres.rs"]
mod postgres;

use std::collections::{HashMap, HashSet};

use common::{Server, call, free_addr, ledger};
use hyper::Method;
use serde_json::{Value, json};

const ACCOUNTS: usize = 4;
const CLIENTS: usize = 16;
const CHARGES_PER_CLIENT: usize = 20;
/// `private_model` costs 20: ten charges per account, against 80 tried on each.
const START_CREDITS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_apply_each_change_once_and_never_overdraw() {
    let Some(database) = postgres::postgres_or_skip().await else {
        return;
    };
    let nodes = [free_addr(), free_addr()];
    let servers = nodes.map(|addr| Server::start(addr, database.url()));
    for (server, addr) in servers.iter().zip(nodes) {
        server.wait_ready(addr).await;
    }
    for n in 0..ACCOUNTS {
        let grant = json!({"kind": "general", "amount": START_CREDITS, "source": "promotion"});
        let path = format!("/v1/accounts/n{n}/grants");
        let (status, _) = call(nodes[n % 2], Method::POST, &path, Some(grant), None)
            .await
            .unwrap();
        assert_eq!(status, 201);
    }

    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        clients.spawn(async move {
            let mut acknowledged: Vec<(String, Value)> = Vec::new();
            for n in 0..CHARGES_PER_CLIENT {
                let account = format!("n{}", (client + n) % ACCOUNTS);
                let path = format!("/v1/accounts/{account}/charges");
                let key = format!("client{client}-charge{n}");
                let body = json!({"feature": "private_model"});
                // The same request through both nodes at once, as a client retrying on
                // the other node would.
                let (first, second) = tokio::join!(
                    call(
                        nodes[0],
                        Method::POST,
                        &path,
                        Some(body.clone()),
                        Some(&key)
                    ),
                    call(nodes[1], Method::POST, &path, Some(body), Some(&key)),
                );
                let (first, second) = (first.unwrap(), second.unwrap());
                assert_eq!(first, second, "one answer for {key} from both nodes");
                match first {
                    (201, hold) => acknowledged.push((account, hold)),
                    (402, _) => {}
                    (status, answer) => panic!("charge answered {status}: {answer}"),
                }
            }
            acknowledged
        });
    }
    let logins = async {
        let mut granted = 0;
        for n in 0..ACCOUNTS {
            let path = format!("/v1/accounts/n{n}/daily-login");
            let (first, second) = tokio::join!(
                call(nodes[0], Method::POST, &path, None, None),
                call(nodes[1], Method::POST, &path, None, None),
            );
            for (status, login) in [first.unwrap(), second.unwrap()] {
                assert_eq!(status, 200, "{login}");
                granted += usize::from(login["granted"].as_u64().unwrap() > 0);
            }
        }
        granted
    };
    let granted = logins.await;
    assert_eq!(
        granted, ACCOUNTS,
        "one daily login per account, not one per node"
    );
    one_purchase_per_order_id_across_nodes(nodes).await;

    let mut acknowledged: HashMap<String, Vec<Value>> = HashMap::new();
    while let Some(answers) = clients.join_next().await {
        for (account, hold) in answers.unwrap() {
            acknowledged.entry(account).or_default().push(hold);
        }
    }
    for n in 0..ACCOUNTS {
        let account = format!("n{n}");
        let mine = acknowledged.remove(&account).unwrap_or_default();
        let entries = ledger(nodes[n % 2], &account).await;
        let debits: Vec<&Value> = entries.iter().filter(|e| e["type"] == "debit").collect();
        let debited: HashSet<&str> = debits
            .iter()
            .map(|e| e["hold_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            debited.len(),
            debits.len(),
            "one debit per hold on {account}"
        );
        assert_eq!(debits.len(), mine.len(), "each charge once on {account}");
        for hold in &mine {
            assert!(debited.contains(hold["id"].as_str().unwrap()));
        }
        let charged: u64 = mine.iter().map(|h| h["amount"].as_u64().unwrap()).sum();
        assert_eq!(
            charged, START_CREDITS,
            "{account}: exactly what it had was charged, never more"
        );
        let (_, balance) = call(
            nodes[(n + 1) % 2],
            Method::GET,
            &format!("/v1/accounts/{account}/balance"),
            None,
            None,
        )
        .await
        .unwrap();
        assert_eq!(balance["general"]["available"], 0, "{balance}");
        let sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
        assert_eq!(
            sum,
            balance["total"].as_i64().unwrap(),
            "ledger invariant on {account}"
        );
    }
    assert_eq!(
        jobs_sessions(database.url()).await,
        1,
        "one node runs the background jobs"
    );
    for server in servers {
        server.kill();
    }
    database.drop().await;
}

/// Sessions holding the lock of the node that runs the background jobs (the two-key
/// advisory lock `("cred", 1)`) in the database of `url`: the tests of this file run at
/// once, each with nodes of its own on a database of its own.
async fn jobs_sessions(url: &str) -> i64 {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
         AND classid = x'63726564'::int::oid AND objid = 1 AND objsubid = 2
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap()
}

/// The same order, without an idempotency key, through both nodes at once: one purchase
/// (201), and the other node answers it back (200).
async fn one_purchase_per_order_id_across_nodes(nodes: [std::net::SocketAddr; 2]) {
    const ORDERS: usize = 8;
    let end = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 40);
    let activate = json!({"action": "activate", "period_end": end.to_string()});
    let (status, answer) = call(
        nodes[0],
        Method::POST,
        "/v1/accounts/member/membership",
        Some(activate),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    for n in 0..ORDERS {
        let body = json!({"order_id": format!("order-{n}"), "package": "credits_100"});
        let path = "/v1/accounts/member/purchases";
        let (first, second) = tokio::join!(
            call(nodes[0], Method::POST, path, Some(body.clone()), None),
            call(nodes[1], Method::POST, path, Some(body), None),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        let mut statuses = [first.0, second.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "{first:?} {second:?}");
        assert_eq!(first.1, second.1, "both nodes answer the one purchase");
    }
    let purchases = ledger(nodes[1], "member")
        .await
        .into_iter()
        .filter(|e| e["source"] == "purchase")
        .count();
    assert_eq!(purchases, ORDERS, "one purchase per order id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_once() {
    const EVENTS: usize = 40;
    let Some(database) = postgres::postgres_or_skip().await else {
        return;
    };
    let nodes = [free_addr(), free_addr()];
    let servers = nodes.map(|addr| Server::start(addr, database.url()));
    for (server, addr) in servers.iter().zip(nodes) {
        server.wait_ready(addr).await;
    }
    let mut receiver = common::Receiver::start().await;
    let endpoint = common::webhook_endpoint(nodes[0], &receiver.url).await;
    // Each grant records one credits.granted event, on one node or the other.
    for n in 0..EVENTS {
        let grant = json!({"kind": "general", "amount": 1, "source": "promotion"});
        let path = format!("/v1/accounts/w{n}/grants");
        let (status, _) = call(nodes[n % 2], Method::POST, &path, Some(grant), None)
            .await
            .unwrap();
        assert_eq!(status, 201);
    }
    let mut received = HashSet::new();
    while received.len() < EVENTS {
        received.insert(receiver.next().await);
    }
    // Every attempt is recorded once the receiver has answered: as many as events.
    let path = format!(
        "/v1/webhook-endpoints/{}/deliveries?limit=500",
        endpoint["id"].as_str().unwrap()
    );
    let attempts = loop {
        let (_, page) = call(nodes[1], Method::GET, &path, None, None)
            .await
            .unwrap();
        let attempts = page["deliveries"].as_array().unwrap().clone();
        if attempts.len() >= EVENTS {
            break attempts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let ids: HashSet<&str> = attempts
        .iter()
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(attempts.len(), EVENTS, "one attempt per event");
    assert_eq!(ids.len(), EVENTS);
    assert!(receiver.received.try_recv().is_err(), "no event sent twice");
    for server in servers {
        server.kill();
    }
    database.drop().await;
}
