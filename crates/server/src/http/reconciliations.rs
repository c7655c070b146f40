//! `POST /v1/reconciliations`: the payment provider's paid orders as CSV, checked
//! against the purchases recorded, the missing ones recorded with `apply=true` (SPEC §11;
//! the work is in `crate::reconcile`).

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::extract::Caller;
use crate::answer::{Answer, Problem};
use crate::auth::Via;
use crate::dto::ReconciliationDto;
use crate::reconcile;

/// The one path whose body may be larger than the API's limit: a reconciliation file is
/// read as a stream, up to the policy `reconciliation_max_bytes`.
pub const RECONCILIATIONS_PATH: &str = "/v1/reconciliations";

/// How to reconcile.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconcileParams {
    /// `true`: record the missing orders now; `false` (default): only report.
    #[param(value_type = Option<bool>)]
    apply: Option<String>,
    /// Why, for the audit trail (default: "reconciliation").
    reason: Option<String>,
}

/// Checks the provider's paid orders (CSV: `order_id,account_id,credits,package,paid_at`,
/// one of credits or package per row) against the purchases recorded: each row is
/// `credited`, `missing`, `conflicting` or `invalid`; with `apply=true` the missing ones
/// are recorded, exactly once by order id. The answer lists every row that is not
/// `credited`.
#[utoipa::path(post, path = "/v1/reconciliations", tag = "credits in", params(ReconcileParams),
    request_body(content = String, content_type = "text/csv",
        description = "order_id,account_id,credits,package,paid_at — up to the policy reconciliation_max_bytes"),
    responses((status = 200, description = "What the file holds against the purchases recorded", body = ReconciliationDto),
              (status = 413, description = "Larger than the policy reconciliation_max_bytes", body = Problem, content_type = "application/problem+json"),
              (status = 415, description = "Not text/csv", body = Problem, content_type = "application/problem+json")))]
pub async fn reconcile(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<ReconcileParams>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let apply = match params.apply.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::invalid(format!(
                "apply {other:?} is neither true nor false"
            )));
        }
    };
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(media.as_deref(), Some("text/csv" | "application/csv")) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send the file as text/csv",
        ));
    }
    let max_bytes = state.core.catalog.policies().reconciliation_max_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_bytes) {
        return Err(reconcile::too_large(max_bytes));
    }
    let reason = params
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "reconciliation".to_owned());
    let actor = caller.actor(Via::Api, Some(reason));
    let report = reconcile::reconcile(&state, request.into_body(), apply, max_bytes, actor).await?;
    Ok(Answer::json(StatusCode::OK, &report))
}
