//! The HTTP API through the router (`oneshot`), endpoint by endpoint: every problem code,
//! and each role's allowed and refused calls. Each test gets a fresh SQLite database and
//! a test clock.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

mod audit;
mod auth;
mod console;
mod credits;
mod events;
mod idempotency;
mod pages;
mod reads;
mod reconciliation;
mod requests;
mod service;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use creditd_ledger::Catalog;
use creditd_server::clock::Clock;
use creditd_server::{CommitMode, Core, Service};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The admin key every test app is started with (`CREDITD_ADMIN_KEY`).
const ADMIN: &str = "test-admin-key";

struct App {
    service: Service,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers, JSON body (`Null` when empty).
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    /// Asserts the status and returns the body.
    #[track_caller]
    fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "answer: {}", self.body);
        self.body
    }

    /// Asserts a problem with this status and code; returns its body.
    #[track_caller]
    fn problem(self, status: u16, code: &str) -> Value {
        let content_type = self.headers["content-type"].to_str().unwrap().to_owned();
        assert_eq!(content_type, "application/problem+json", "{}", self.body);
        let body = self.expect(status);
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status);
        body
    }
}

/// An answer's body as text (a page, a CSV); empty if it was JSON.
fn html(reply: &Reply) -> &str {
    reply.body.as_str().unwrap_or("")
}

/// An answer's header, empty if absent.
fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn app() -> App {
    app_with(Clock::test()).await
}

async fn app_with(clock: Clock) -> App {
    app_configured(clock, |_| {}).await
}

/// An app whose core `configure` changes before the service starts.
async fn app_configured(clock: Clock, configure: impl FnOnce(&mut Core)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = creditd_store::open(&url).await.unwrap();
    let (mut core, _) = Core::open(store.into(), Catalog::default(), clock, Some(ADMIN))
        .await
        .unwrap();
    configure(&mut core);
    let service = Service::start(core, CommitMode::Group);
    let router = service.router();
    App {
        service,
        router,
        _dir: dir,
    }
}

impl App {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request with `key` (none if empty) and a JSON body if given.
    async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Reply {
        self.call_with(method, path, key, body, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if !key.is_empty() {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, ADMIN, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, ADMIN, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, ADMIN, Some(body)).await
    }

    /// A new key of `role`, made by the admin.
    async fn key(&self, role: &str) -> String {
        let body = self
            .post("/v1/api-keys", json!({"name": role, "role": role}))
            .await
            .expect(201);
        body["key"].as_str().unwrap().to_owned()
    }

    /// Grants `amount` general promotion credits to `account`; returns the bucket.
    async fn grant(&self, account: &str, amount: u64) -> Value {
        self.post(
            &format!("/v1/accounts/{account}/grants"),
            json!({"kind": "general", "amount": amount, "source": "promotion"}),
        )
        .await
        .expect(201)
    }

    async fn balance(&self, account: &str) -> Value {
        self.get(&format!("/v1/accounts/{account}/balance"))
            .await
            .expect(200)
    }

    async fn now(&self) -> jiff::Timestamp {
        let body = self.get("/v1/test-clock").await.expect(200);
        body["now"].as_str().unwrap().parse().unwrap()
    }

    async fn advance(&self, seconds: i64) {
        self.post("/v1/test-clock", json!({"advance_seconds": seconds}))
            .await
            .expect(200);
    }

    async fn stop(self) {
        drop(self.router);
        self.service.stop().await;
    }
}
