//! Service-wide endpoints: the catalog, API keys, the test clock, health, metrics and
//! the OpenAPI description.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;

use super::AppState;
use super::extract::{Caller, Posted};
use crate::answer::{Answer, Problem};
use crate::auth::{Role, Via, key_name};
use crate::command::{ClockMove, Command};
use crate::dto::{
    ApiKeyDto, ApiKeyListDto, ApiKeyRequest, CatalogDto, ClockDto, ClockRequest, HealthDto,
};
use crate::metrics::{OPENMETRICS, PROMETHEUS_TEXT};

/// Features, plans, packages and policies in force.
#[utoipa::path(get, path = "/v1/catalog", tag = "service",
    responses((status = 200, description = "The catalog", body = CatalogDto)))]
pub async fn catalog(State(state): State<AppState>, Caller(_): Caller) -> Answer {
    // Every caller may read it, account tokens included.
    Answer::json(StatusCode::OK, &CatalogDto::from(&*state.core.catalog))
}

/// Create an API key; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "service",
    request_body = ApiKeyRequest,
    responses((status = 201, description = "The key, with its secret", body = ApiKeyDto,
        links(("RevokeKey" = (operation_id = "revoke_key", parameters(("key_id" = "$response.body#/id"))))))))]
pub async fn create_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    posted: Posted<ApiKeyRequest>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let request = &posted.body;
    let name = key_name(&request.name).map_err(|why| Problem::invalid(format!("name {why}")))?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        Problem::invalid(format!(
            "role {:?} is none of admin, service, viewer",
            request.role
        ))
    })?;
    let command = Command::CreateKey {
        name: name.to_owned(),
        role,
    };
    Ok(state.apply(&caller, command, &posted).await)
}

/// Every API key, without secrets.
#[utoipa::path(get, path = "/v1/api-keys", tag = "service",
    responses((status = 200, description = "The keys", body = ApiKeyListDto)))]
pub async fn list_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let keys = state.core.store.api_keys().await.map_err(Problem::from)?;
    let dto = ApiKeyListDto {
        keys: keys.iter().map(|k| ApiKeyDto::new(k, None)).collect(),
    };
    Ok(Answer::json(StatusCode::OK, &dto))
}

/// Revoke an API key: it stops working at once.
#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "service",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(key_id): Path<String>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let record = state
        .core
        .store
        .api_key(&key_id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no API key {key_id:?}")))?;
    let actor = caller.actor(Via::Api, None);
    Ok(state.submit(Command::RevokeKey(record), None, actor).await)
}

/// The test clock's time (`--test-clock` only).
#[utoipa::path(get, path = "/v1/test-clock", tag = "service",
    responses((status = 200, description = "The time", body = ClockDto)))]
pub async fn get_clock(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Answer, Problem> {
    caller.require_key()?;
    if !state.core.clock.is_test() {
        return Err(Problem::not_found("the service runs on the system clock"));
    }
    Ok(Answer::json(
        StatusCode::OK,
        &ClockDto {
            now: state.core.clock.now(),
        },
    ))
}

/// Move the test clock forward (`--test-clock` only; never backwards: 409).
#[utoipa::path(post, path = "/v1/test-clock", tag = "service",
    request_body = ClockRequest,
    responses((status = 200, description = "The new time", body = ClockDto)))]
pub async fn move_clock(
    State(state): State<AppState>,
    Caller(caller): Caller,
    posted: Posted<ClockRequest>,
) -> Result<Answer, Problem> {
    if !state.core.clock.is_test() {
        return Err(Problem::not_found("the service runs on the system clock"));
    }
    caller.require_admin()?;
    let movement = match (posted.body.now, posted.body.advance_seconds) {
        (Some(at), None) => ClockMove::To(at),
        (None, Some(seconds)) => ClockMove::Advance(seconds),
        _ => return Err(Problem::invalid("give now or advance_seconds")),
    };
    Ok(state
        .apply(&caller, Command::MoveClock(movement), &posted)
        .await)
}

/// Health: 200 when the service answers.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "Healthy", body = HealthDto)))]
pub async fn healthz() -> Answer {
    Answer::json(
        StatusCode::OK,
        &HealthDto {
            status: "ok".into(),
        },
    )
}

/// Metrics: OpenMetrics 1.0 when `Accept` asks for `application/openmetrics-text`,
/// otherwise the Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text 0.0.4, or OpenMetrics 1.0 on request",
        content((String = "text/plain"), (String = "application/openmetrics-text")))))]
pub async fn metrics(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: axum::http::HeaderMap,
) -> Result<impl axum::response::IntoResponse, Problem> {
    caller.require_key()?;
    let core = &state.core;
    match core.store.oldest_undelivered().await {
        Ok(oldest) => core
            .metrics
            .set_oldest_undelivered(oldest.map_or(0.0, |at| {
                core.clock.now().duration_since(at).as_secs_f64().max(0.0)
            })),
        Err(error) => {
            tracing::warn!(%error, "metrics: could not read the oldest undelivered event")
        }
    }
    let openmetrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let metrics = &state.core.metrics;
    Ok(if openmetrics {
        ([(CONTENT_TYPE, OPENMETRICS)], metrics.openmetrics())
    } else {
        ([(CONTENT_TYPE, PROMETHEUS_TEXT)], metrics.prometheus_text())
    })
}
