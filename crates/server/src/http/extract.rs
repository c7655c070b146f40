//! What every handler takes from a request, checked the same way everywhere: the caller,
//! the path's account or hold, and the JSON body with its idempotency key.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use creditd_ledger::{AccountId, HoldId};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::answer::Problem;
use crate::auth::{Principal, sha256};
use crate::dto::parse_hold_ref;

/// Largest request body (SPEC §6): far above any real request, far below what could
/// tie up memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a JSON body may take to arrive whole: a slow sender cannot hold a request open
/// by trickling bytes (each pause is also bounded, by the connection's idle timeout).
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest `Idempotency-Key`: UUIDs and ULIDs fit many times over.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(Problem::unauthorized)?;
        let (scheme, credential) = header.split_once(' ').ok_or_else(Problem::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Problem::unauthorized());
        }
        let core = &state.core;
        let principal = core
            .auth
            .authenticate(&*core.store, credential.trim(), core.clock.now())
            .await?;
        if let Some(key) = parts.extensions.get::<super::observe::AuthenticatedKey>() {
            key.record(&principal.owner());
        }
        Ok(Caller(principal))
    }
}

/// The account a path names (`/v1/accounts/{id}/…`).
pub struct AccountPath(pub AccountId);

impl FromRequestParts<AppState> for AccountPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::invalid(e.body_text()))?;
        AccountId::parse(&text)
            .map(AccountPath)
            .map_err(|refusal| refusal.into())
    }
}

/// The hold a path names (`/v1/holds/{hold_id}/…`): its account and number.
pub struct HoldPath(pub AccountId, pub HoldId);

impl FromRequestParts<AppState> for HoldPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::invalid(e.body_text()))?;
        parse_hold_ref(&text)
            .map(|(account, hold)| HoldPath(account, hold))
            .ok_or_else(|| Problem::not_found(format!("no hold {text:?}")))
    }
}

/// A JSON body, with the request's `Idempotency-Key` and a digest of the request to
/// recognise its retries.
///
/// An empty body counts as `{}`. A body that is not JSON is 400; JSON that does not fit
/// the request's fields is 422 (SPEC §8); a non-JSON content type is 415.
pub struct Posted<T> {
    /// The parsed body.
    pub body: T,
    /// The client's idempotency key, if it sent one.
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of method, path and the body in canonical form (key order and
    /// spacing do not matter).
    pub fingerprint: String,
}

impl<T: DeserializeOwned + utoipa::ToSchema> FromRequest<AppState> for Posted<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (parts, body) = request.into_parts();
        let idempotency_key = idempotency_key(&parts.headers)?;
        let bytes = read_body(body).await?;
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            check_json_content_type(&parts.headers)?;
            super::json::parse_strict(&bytes)
                .map_err(|e| Problem::unparsable(format!("the body is not JSON: {e}")))?
        };
        if !value.is_object() {
            return Err(Problem::invalid("the body must be a JSON object"));
        }
        let canonical = value.to_string();
        let schema = T::name();
        let range =
            |field: &str| super::document::range_in_words(&state.core.catalog, &schema, field);
        let body = super::json::read(value, range).map_err(Problem::invalid)?;
        let request_line = format!("{} {}\n", parts.method, parts.uri.path());
        let fingerprint = hex::encode(sha256(
            &[request_line.as_bytes(), canonical.as_bytes()].concat(),
        ));
        Ok(Posted {
            body,
            idempotency_key,
            fingerprint,
        })
    }
}

async fn read_body(body: Body) -> Result<bytes::Bytes, Problem> {
    tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| Problem::body_timeout())?
        .map_err(|error| Problem::body_unreadable(&error))
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send the body as application/json",
        ))
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
                && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .ok_or_else(|| {
            Problem::invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// Longest request target (path and query): every address of the API fits many times
/// over. Beyond 64 KiB hyper itself answers 414, without a body.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Answers 414 to a request target over [`MAX_URI_BYTES`], and 413 before reading a
/// body whose declared length is over the limit.
pub async fn refuse_oversized(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("request targets (path and query) are limited to {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    // A reconciliation file is read as a stream, up to a policy of its own.
    let path = request.uri().path();
    let exempt = path == super::reconciliations::RECONCILIATIONS_PATH
        || path == crate::console::RECONCILIATIONS_PATH;
    if !exempt && declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Problem::payload_too_large(MAX_BODY_BYTES).into_response();
    }
    next.run(request).await
}

/// Most language tags read from one `Accept-Language`: browsers send a handful.
pub const MAX_ACCEPTED_LANGUAGES: usize = 16;

/// The languages a reader accepts, most wanted first: `Accept-Language` ordered by
/// quality (ties keep the header's order). Never refuses: no header is no wish. Read
/// here rather than by the `accept-language` crate, whose ordering is not total when a
/// quality is not a number (`q=NaN`), which sorting may answer with a panic.
#[derive(Clone, Debug, Default)]
pub struct Languages(pub Vec<String>);

impl Languages {
    /// The tags of a header value.
    pub fn parse(header: &str) -> Languages {
        let mut tags: Vec<(f32, String)> = header
            .split(',')
            .take(MAX_ACCEPTED_LANGUAGES)
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                    .filter(|q| q.is_finite() && *q > 0.0)?;
                (!tag.is_empty() && tag != "*").then(|| (quality.min(1.0), tag.to_owned()))
            })
            .collect();
        tags.sort_by(|a, b| b.0.total_cmp(&a.0));
        Languages(tags.into_iter().map(|(_, tag)| tag).collect())
    }

    /// The tags, as the catalog's `display_name` takes them.
    pub fn tags(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Languages {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .map(Languages::parse)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::Languages;

    #[test]
    fn accepted_languages_come_most_wanted_first_and_odd_qualities_are_dropped() {
        assert_eq!(
            Languages::parse("en;q=0.5, zh-CN, fr;q=NaN, de;q=0, *;q=0.1, ja;q=0.8").0,
            ["zh-CN", "ja", "en"]
        );
        let long = vec!["xx;q=NaN"; 100].join(",");
        assert!(Languages::parse(&long).0.is_empty());
    }
}
