//! `kill -9` between an event's commit and its delivery: the event is delivered after
//! the restart (SPEC §9: a crash can neither lose nor invent an event).
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

mod common;

use std::sync::atomic::Ordering;

use common::{Receiver, Server, call, free_addr, webhook_endpoint};
use hyper::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_delivery_was_cut_by_kill_9_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("hooks.db").display());
    let addr = free_addr();
    let server = Server::start(addr, &database);
    server.wait_ready(addr).await;
    let mut receiver = Receiver::start().await;
    receiver.hang.store(true, Ordering::SeqCst);
    webhook_endpoint(addr, &receiver.url).await;
    let grant = json!({"kind": "general", "amount": 5, "source": "promotion"});
    let (status, _) = call(
        addr,
        Method::POST,
        "/v1/accounts/k9/grants",
        Some(grant),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    // The delivery is on its way (claimed, the receiver holding it) when the server dies.
    let first = receiver.next().await;
    server.kill();

    receiver.hang.store(false, Ordering::SeqCst);
    let server = Server::start(addr, &database);
    server.wait_ready(addr).await;
    let again = receiver.next().await;
    assert_eq!(again, first, "the same event, by its webhook-id");
    assert_eq!(first, "ev1_k9");
    // Recorded as delivered: the endpoint's attempts end with a 2xx.
    let (_, endpoints) = call(addr, Method::GET, "/v1/webhook-endpoints", None, None)
        .await
        .unwrap();
    let id = endpoints["endpoints"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhook-endpoints/{id}/deliveries");
    loop {
        let (_, page) = call(addr, Method::GET, &path, None, None).await.unwrap();
        if page["deliveries"][0]["status_code"] == 200 {
            assert_eq!(page["deliveries"][0]["event_id"], "ev1_k9");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.kill();
}
