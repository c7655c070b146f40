//! `/v1/purchases/{order_id}`: a purchase by the platform's order id (SPEC §13), for
//! support finding an order and the platform checking one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use creditd_ledger::OrderId;

use super::AppState;
use super::extract::Caller;
use crate::answer::{Answer, Problem};
use crate::dto::PurchaseDto;

/// The purchase recorded under an order id, with what was paid when it was given.
#[utoipa::path(get, path = "/v1/purchases/{order_id}", tag = "credits in",
    params(("order_id" = String, Path, description = "The platform's order id")),
    responses((status = 200, description = "The purchase", body = PurchaseDto)))]
pub async fn get_purchase(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(order_id): Path<String>,
) -> Result<Answer, Problem> {
    let order = OrderId::parse(&order_id)?;
    let not_found = || Problem::not_found(format!("no purchase with order id {order}"));
    let record = state
        .core
        .store
        .purchase(&order)
        .await
        .map_err(Problem::from)?
        .ok_or_else(not_found)?;
    // An account token reads its own account's purchases only; another account's order
    // is as unknown to it as an order never recorded.
    caller
        .require_read(&record.account_id)
        .map_err(|_| not_found())?;
    Ok(Answer::json(StatusCode::OK, &PurchaseDto::from(&record)))
}
