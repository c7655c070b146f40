//! What the binary's tests share: real `creditd serve` processes, and HTTP calls to them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The admin key every test server is started with.
pub const ADMIN: &str = "creditd-test-admin";

/// One HTTP exchange on a fresh connection: (status, JSON body), or `None` if the
/// server was not there or went away before answering.
pub async fn call(
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

pub struct Server {
    child: Child,
}

impl Server {
    pub fn start(addr: SocketAddr, database: &str) -> Server {
        Server::spawn(
            &mut Command::new(env!("CARGO_BIN_EXE_creditd")),
            addr,
            database,
            &[],
        )
    }

    /// `creditd serve` with `extra` arguments under an open-files limit (soft and hard)
    /// of `open_files`, set by the shell before it runs creditd.
    pub fn start_limited(
        addr: SocketAddr,
        database: &str,
        open_files: u32,
        extra: &[&str],
    ) -> Server {
        let mut shell = Command::new("sh");
        shell.args([
            "-c",
            &format!("ulimit -n {open_files} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_creditd"),
        ]);
        Server::spawn(&mut shell, addr, database, extra)
    }

    fn spawn(command: &mut Command, addr: SocketAddr, database: &str, extra: &[&str]) -> Server {
        let child = command
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--database",
                database,
            ])
            .args(extra)
            .env("CREDITD_ADMIN_KEY", ADMIN)
            .env_remove("CREDITD_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server { child }
    }

    pub async fn wait_ready(&self, addr: SocketAddr) {
        for _ in 0..200 {
            if let Some((200, _)) = call(addr, Method::GET, "/healthz", None, None).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("creditd did not become ready");
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no graceful shutdown, no flush
        self.child.wait().unwrap();
    }
}

/// A server whose test ends, by failing too, is killed: none is left running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Every ledger entry of `account`, newest first, page after page.
pub async fn ledger(addr: SocketAddr, account: &str) -> Vec<Value> {
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
            None => return entries,
        }
    }
}

/// A local webhook receiver: every request's `webhook-id` goes to `received`; it answers
/// 200, or never while `hang` is set (a receiver that is down mid-request).
pub struct Receiver {
    pub url: String,
    pub received: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let (sent, received) = tokio::sync::mpsc::unbounded_channel();
        let hang = Arc::new(AtomicBool::new(false));
        let hanging = Arc::clone(&hang);
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let (sent, hanging) = (sent.clone(), Arc::clone(&hanging));
                async move {
                    let id = headers["webhook-id"].to_str().unwrap().to_owned();
                    let _ = sent.send(id);
                    if hanging.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            url,
            received,
            hang,
        }
    }

    /// The next `webhook-id` received (a hang guard of 60 s, not a timing claim).
    pub async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(60), self.received.recv())
            .await
            .expect("a delivery within 60 s")
            .unwrap()
    }
}

/// Registers a webhook endpoint for `url` on the server at `addr`.
pub async fn webhook_endpoint(addr: SocketAddr, url: &str) -> Value {
    let body = serde_json::json!({"url": url});
    let (status, endpoint) = call(
        addr,
        Method::POST,
        "/v1/webhook-endpoints",
        Some(body),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{endpoint}");
    endpoint
}
