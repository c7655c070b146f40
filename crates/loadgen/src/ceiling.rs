//! `creditd-ceiling`: what a plain HTTP handler costs on this machine, the ceiling
//! creditd's throughput is measured against (docs/BENCHMARKS.md).
//!
//! It answers the routes `creditd-load` calls as creditd would, on the same stack
//! (tokio, hyper, axum, serde_json, mimalloc): it checks the bearer key, parses the
//! request's JSON body into the same fields creditd's would take, and answers 201 with
//! a body of the size and shape of creditd's answer (a captured hold for a charge, a
//! bucket for a grant; 200 and a balance for a read). It stores nothing, so what it
//! answers per second is the most any service on this stack and machine could, with
//! the same load generator beside it: the distance between the two is what creditd's
//! own work costs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "creditd-ceiling",
    about = "A server that answers like creditd and stores nothing"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The bearer key every request must carry.
    #[arg(long, env = "CREDITD_ADMIN_KEY")]
    key: String,
}

struct Ceiling {
    authorization: String,
    /// Numbers the answers, as creditd numbers holds and buckets.
    next: AtomicU64,
}

impl Ceiling {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .is_some_and(|value| value.as_bytes() == self.authorization.as_bytes())
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// The fields of creditd's charge body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    feature: String,
    quantity: Option<i64>,
    tier: Option<String>,
    reference: Option<String>,
}

/// The fields of creditd's grant body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    kind: String,
    amount: i64,
    source: String,
    expires_at: Option<String>,
    valid_for: Option<String>,
}

/// The shape of creditd's hold answer, settled (a charge).
#[derive(Serialize)]
struct Hold<'a> {
    id: String,
    account_id: &'a str,
    feature: String,
    tier: &'static str,
    quantity: u32,
    amount: u64,
    status: &'static str,
    created_at: &'static str,
    expires_at: &'static str,
    allocations: [Allocation; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    captured_quantity: u32,
    captured_amount: u64,
    refunded_amount: u64,
    settled_at: &'static str,
}

#[derive(Serialize)]
struct Allocation {
    bucket_id: String,
    kind: &'static str,
    source: &'static str,
    amount: u64,
}

/// The shape of creditd's bucket answer.
#[derive(Serialize)]
struct Bucket {
    id: String,
    kind: String,
    source: String,
    granted: i64,
    remaining: i64,
    granted_at: &'static str,
    expires_at: Option<String>,
    frozen: bool,
}

/// The shape of creditd's balance answer for an account with one bucket.
#[derive(Serialize)]
struct Balance<'a> {
    account_id: &'a str,
    as_of: &'static str,
    total: u64,
    general: General,
    agent: Agent,
    next_expiry: Option<()>,
    buckets: [Bucket; 1],
    buckets_not_listed: u64,
}

#[derive(Serialize)]
struct General {
    available: u64,
    held: u64,
    frozen: u64,
}

#[derive(Serialize)]
struct Agent {
    available: u64,
    held: u64,
}

const AT: &str = "2026-12-03T21:40:00.123456Z";
const EXPIRES: &str = "2026-12-03T21:55:00.123456Z";

/// The body as `T`, or a 400 saying why not.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

async fn charge(
    State(ceiling): State<Arc<Ceiling>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !ceiling.authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let request: ChargeRequest = match parse(&body) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let quantity = request.quantity.unwrap_or(1).clamp(1, 1_000) as u32;
    let number = ceiling.next();
    let hold = Hold {
        id: format!("h{number}_{account}"),
        account_id: &account,
        feature: request.feature,
        tier: if request.tier.is_some() {
            "premium"
        } else {
            "general"
        },
        quantity,
        amount: u64::from(quantity),
        status: "captured",
        created_at: AT,
        expires_at: EXPIRES,
        allocations: [Allocation {
            bucket_id: "b1".to_owned(),
            kind: "general",
            source: "promotion",
            amount: u64::from(quantity),
        }],
        reference: request.reference,
        captured_quantity: quantity,
        captured_amount: u64::from(quantity),
        refunded_amount: 0,
        settled_at: AT,
    };
    (StatusCode::CREATED, axum::Json(hold)).into_response()
}

async fn grant(
    State(ceiling): State<Arc<Ceiling>>,
    Path(_account): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !ceiling.authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let request: GrantRequest = match parse(&body) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    if request
        .valid_for
        .as_ref()
        .is_some_and(|period| !period.starts_with('P'))
    {
        return (
            StatusCode::BAD_REQUEST,
            "valid_for must be an ISO 8601 duration",
        )
            .into_response();
    }
    let bucket = Bucket {
        id: format!("b{}", ceiling.next()),
        kind: request.kind,
        source: request.source,
        granted: request.amount,
        remaining: request.amount,
        granted_at: AT,
        expires_at: request
            .expires_at
            .or(request.valid_for.map(|_| EXPIRES.to_owned())),
        frozen: false,
    };
    (StatusCode::CREATED, axum::Json(bucket)).into_response()
}

/// `POST /v1/api-keys`: the load generator makes a service key for its load; the
/// ceiling answers with its own key.
async fn api_key(
    State(ceiling): State<Arc<Ceiling>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !ceiling.authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Err(refused) = parse::<serde_json::Value>(&body) {
        return refused.into_response();
    }
    let key = ceiling.authorization.trim_start_matches("Bearer ");
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"id": "k1", "key": key})),
    )
        .into_response()
}

async fn balance(
    State(ceiling): State<Arc<Ceiling>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !ceiling.authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let balance = Balance {
        account_id: &account,
        as_of: AT,
        total: 1_000_000_000,
        general: General {
            available: 1_000_000_000,
            held: 0,
            frozen: 0,
        },
        agent: Agent {
            available: 0,
            held: 0,
        },
        next_expiry: None,
        buckets: [Bucket {
            id: "b1".to_owned(),
            kind: "general".to_owned(),
            source: "promotion".to_owned(),
            granted: 1_000_000_000,
            remaining: 1_000_000_000,
            granted_at: AT,
            expires_at: None,
            frozen: false,
        }],
        buckets_not_listed: 0,
    };
    (StatusCode::OK, axum::Json(balance)).into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ceiling = Arc::new(Ceiling {
        authorization: format!("Bearer {}", args.key),
        next: AtomicU64::new(1),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/accounts/{id}/charges", post(charge))
        .route("/v1/accounts/{id}/grants", post(grant))
        .route("/v1/accounts/{id}/balance", get(balance))
        .route("/v1/api-keys", post(api_key))
        .with_state(ceiling);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("creditd-ceiling listening on {}", args.listen);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
