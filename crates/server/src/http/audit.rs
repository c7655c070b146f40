//! `GET /v1/audit`: what people changed (SPEC §10), newest first, for admins.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use creditd_ledger::{AccountId, page_limit};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::accounts::limit_number;
use super::cursor::Cursor;
use super::extract::Caller;
use crate::answer::{Answer, Problem};
use crate::dto::{AuditDto, AuditPageDto};

/// Which part of the audit trail to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only changes to this account.
    account_id: Option<String>,
    /// Records per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    #[serde(default, deserialize_with = "super::cursor::given")]
    cursor: Option<String>,
}

/// Every change a person made — through the console, the CLI or an admin key — with who,
/// when, what and why, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "service", params(AuditParams),
    responses((status = 200, description = "A page of the audit trail", body = AuditPageDto)))]
pub async fn list_audit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref().map(limit_number).transpose()?)?;
    let account = params
        .account_id
        .as_deref()
        .map(AccountId::parse)
        .transpose()?;
    let before = params
        .cursor
        .as_deref()
        .map(|text| {
            Cursor::Audit
                .decode(text)?
                .parse::<u64>()
                .map_err(|_| Problem::invalid("cursor is not one this service gave"))
        })
        .transpose()?;
    let page = state
        .core
        .store
        .audit_page(account.as_ref(), before, limit)
        .await
        .map_err(Problem::from)?;
    let full = page.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = page
        .last()
        .filter(|_| full)
        .map(|last| Cursor::Audit.encode(&last.number.to_string()));
    Ok(Answer::json(
        StatusCode::OK,
        &AuditPageDto {
            records: page.iter().map(AuditDto::from).collect(),
            next_cursor,
        },
    ))
}
