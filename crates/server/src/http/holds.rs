//! `/v1/holds/{hold_id}`: a hold by its id, its capture and its release.

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::extract::{Caller, HoldPath, Posted};
use crate::answer::{Answer, Problem};
use crate::command::Command;
use crate::dto::{CaptureRequest, HoldDto, NoFields};
use creditd_ledger::{AccountCommand, count_from_json};

/// A hold, pending or settled.
#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "credits out",
    params(("hold_id" = String, Path, description = "The hold's id")),
    responses((status = 200, description = "The hold", body = HoldDto)))]
pub async fn get_hold(
    State(state): State<AppState>,
    Caller(caller): Caller,
    HoldPath(account_id, hold_id): HoldPath,
) -> Result<Answer, Problem> {
    caller.require_read(&account_id)?;
    let not_found = || Problem::not_found(format!("no hold {hold_id} on account {account_id}"));
    let (account, due) = state.account_now(&account_id).await?;
    let settled_now = due.settled_holds.iter().find(|h| h.id() == hold_id);
    let hold = match account.pending_hold(hold_id).or(settled_now) {
        Some(hold) => hold.clone(),
        None => state
            .core
            .store
            .settled_hold(&account_id, hold_id)
            .await
            .map_err(Problem::from)?
            .ok_or_else(not_found)?,
    };
    Ok(Answer::json(
        StatusCode::OK,
        &HoldDto::new(&account_id, &hold),
    ))
}

/// Charge for what was delivered and return the rest.
#[utoipa::path(post, path = "/v1/holds/{hold_id}/capture", tag = "credits out",
    params(("hold_id" = String, Path, description = "The hold's id")),
    request_body = CaptureRequest,
    responses((status = 200, description = "The captured hold", body = HoldDto)))]
pub async fn capture(
    State(state): State<AppState>,
    Caller(caller): Caller,
    HoldPath(account, hold): HoldPath,
    posted: Posted<CaptureRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let quantity = posted.body.quantity.map(count_from_json);
    let command = Command::Account(account, AccountCommand::Capture { hold, quantity });
    Ok(state.apply(&caller, command, &posted).await)
}

/// Return everything the hold reserved.
#[utoipa::path(post, path = "/v1/holds/{hold_id}/release", tag = "credits out",
    params(("hold_id" = String, Path, description = "The hold's id")),
    responses((status = 200, description = "The released hold", body = HoldDto)))]
pub async fn release(
    State(state): State<AppState>,
    Caller(caller): Caller,
    HoldPath(account, hold): HoldPath,
    posted: Posted<NoFields>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let command = Command::Account(account, AccountCommand::Release(hold));
    Ok(state.apply(&caller, command, &posted).await)
}
