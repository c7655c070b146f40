//! Slow and idle clients cannot stop the service (issue 15): under a low open-files
//! limit, a crowd of connections that send nothing, or only half a request head, leaves
//! `/healthz` and grants answering; a request head that never completes is cut off.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Server, call, free_addr};
use hyper::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A guard against a hang, not a timing claim: a healthy server answers in milliseconds.
const ANSWER_GUARD: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_leave_the_service_answering() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("creditd.db").display());
    let addr = free_addr();
    // 512 files: creditd keeps 256 for itself and serves at most 256 connections.
    let server = Server::start_limited(addr, &database, 512, &[]);
    server.wait_ready(addr).await;

    let mut crowd = Vec::new();
    for _ in 0..500 {
        crowd.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..100 {
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /v1/accounts/slow HTTP/1.1\r\nHost: creditd\r\n")
            .await
            .unwrap();
        crowd.push(slow);
    }

    let health = tokio::time::timeout(
        ANSWER_GUARD,
        call(addr, Method::GET, "/healthz", None, None),
    )
    .await
    .expect("/healthz answers with 600 idle connections open");
    assert_eq!(health.map(|(status, _)| status), Some(200));
    let created = tokio::time::timeout(
        ANSWER_GUARD,
        call(
            addr,
            Method::PUT,
            "/v1/accounts/busy",
            Some(json!({})),
            None,
        ),
    )
    .await
    .expect("a change answers with 600 idle connections open");
    assert_eq!(created.map(|(status, _)| status), Some(201));
    drop(crowd);
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_completes_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("creditd.db").display());
    let addr = free_addr();
    let server = Server::start_limited(addr, &database, 4096, &["--idle-timeout", "1"]);
    server.wait_ready(addr).await;

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: creditd\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    for stream in [&mut slow, &mut idle] {
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(ANSWER_GUARD, stream.read_to_end(&mut buffer))
            .await
            .expect("the server closes the connection");
        assert!(read.is_ok(), "closed, not reset");
    }

    let mut trickle = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v1/accounts/trickle HTTP/1.1\r\nHost: creditd\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        common::ADMIN
    );
    trickle.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(ANSWER_GUARD, trickle.read_to_end(&mut answer))
        .await
        .expect("a stalled body ends its request")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    server.kill();
}
