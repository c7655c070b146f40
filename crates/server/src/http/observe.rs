//! What every request leaves behind: its id, its access-log line and its metrics.
//!
//! Support finds a request by its id: the client's `x-request-id` if it sent a sane one
//! (1 to [`MAX_REQUEST_ID_LEN`] letters, digits, `-`, `_`, `.`, `:`), otherwise a new
//! random one. The id is echoed in `x-request-id`, written into every problem body
//! (`request_id`) except when the request has an `Idempotency-Key` (its answer is
//! replayed byte for byte, so it stays as stored), and logged once per request with the method, route template, status,
//! latency and the key id that authenticated it (never a secret) at target
//! `creditd::access`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::answer::PROBLEM_JSON;
use crate::metrics::{RouteLabels, method_label};

/// The request id header, read and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client-chosen request id kept: UUIDs and trace ids fit; longer ones are
/// replaced, so no client can fill the log.
pub const MAX_REQUEST_ID_LEN: usize = 64;
/// Largest problem body the id is written into; problems are a few hundred bytes.
const MAX_PROBLEM_BYTES: usize = 64 * 1024;

/// The key that authenticated a request, filled in by the `Caller` extractor for the
/// access log.
#[derive(Clone, Default)]
pub struct AuthenticatedKey(Arc<OnceLock<String>>);

impl AuthenticatedKey {
    /// Records the key id (the first one recorded stays).
    pub fn record(&self, key_id: &str) {
        let _ = self.0.set(key_id.to_owned());
    }
}

/// The client's request id if it is sane, else a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| format!("{:032x}", rand::random::<u128>()), str::to_owned)
}

/// Gives the request its id, then logs and counts the answered request.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let key = AuthenticatedKey::default();
    request.extensions_mut().insert(key.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    // An answer to a request with an Idempotency-Key is stored and replayed byte for
    // byte (SPEC §6), so its body stays as stored; the header carries the id.
    let replayable = request.headers().contains_key("idempotency-key");
    let mut response = next.run(request).await.into_response();
    let replayed = response.headers().contains_key("idempotent-replayed");
    if is_problem(&response) && !replayable {
        response = with_request_id(response, &id).await;
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    tracing::info!(
        target: "creditd::access",
        method,
        route = %route,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        request_id = %id,
        key_id = key.0.get().map_or("-", String::as_str),
    );
    state.core.metrics.request(
        RouteLabels {
            route,
            method,
            status,
        },
        elapsed.as_secs_f64(),
        replayed,
    );
    response
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == PROBLEM_JSON.as_bytes())
}

/// The problem with `"request_id"` added as its last member.
async fn with_request_id(response: Response, id: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PROBLEM_BYTES).await else {
        return (parts.status, "").into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let body = match (text.trim_end().strip_suffix('}'), serde_json::to_string(id)) {
        (Some(open), Ok(quoted)) if text.starts_with('{') => {
            let separator = if open.trim_end().ends_with('{') {
                ""
            } else {
                ","
            };
            format!("{open}{separator}\"request_id\":{quoted}}}")
        }
        _ => text.into_owned(),
    };
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> Request {
        Request::builder()
            .header(REQUEST_ID, value)
            .body(Body::empty())
            .expect("a request")
    }

    #[test]
    fn a_sane_client_request_id_is_kept_and_any_other_replaced() {
        assert_eq!(
            request_id(&with_header("trace-01:ab.c_d")),
            "trace-01:ab.c_d"
        );
        for odd in ["", "has space", &"x".repeat(65), "quote\"d"] {
            let id = request_id(&with_header(odd));
            assert_eq!(id.len(), 32, "{odd:?} gave {id}");
            assert_ne!(id, odd);
        }
    }
}
