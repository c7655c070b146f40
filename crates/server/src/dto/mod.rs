//! What travels over HTTP (SPEC §6), one module per resource as in `http/`: request
//! bodies as clients send them and answers as they read them. The ledger core's types
//! never cross the wire themselves; each answer is built here from them, so the API can
//! stay stable while the core changes. The answers also deserialize, for clients in
//! Rust (the CLI), with the same field names.
//!
//! [`answer`] encodes a command's outcome: its status and body.

mod accounts;
mod admin;
mod events;
mod holds;
mod views;

use std::borrow::Cow;

use axum::http::StatusCode;
use creditd_ledger::{AccountId, HoldId};
use creditd_store::ApiKeyRecord;
use serde::Deserialize;
use utoipa::ToSchema;

pub use accounts::*;
pub use admin::*;
pub use events::*;
pub use holds::*;
pub use views::*;

use crate::answer::{Answer, Problem};
use crate::command::{Outcome, Refused};

/// A name from the domain (a kind, a source, a status): borrowed from the domain's
/// constants when the service writes it, owned when a client reads it.
pub type Name = Cow<'static, str>;

/// The latest instant a request may name (jiff's latest, to the second).
pub const LATEST_INSTANT: &str = "9999-12-30T22:00:00Z";

/// An instant a client sent, read in whole microseconds
/// ([`creditd_ledger::whole_micros`]), for the request fields that take one.
pub(crate) fn instant_in_micros<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<jiff::Timestamp>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    text.parse::<jiff::Timestamp>()
        .map(|instant| Some(creditd_ledger::whole_micros(instant)))
        .map_err(|_| {
            serde::de::Error::custom(format_args!(
                "must be an RFC 3339 instant with an offset, such as 2027-01-31T16:00:00Z, \
                 up to {LATEST_INSTANT}; {text:?} is not one"
            ))
        })
}

/// The answer to a command: its status and body.
pub fn answer(result: &Result<Outcome, Refused>) -> Answer {
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(refused) => return Problem::from(refused).into(),
    };
    let created = |yes: bool| {
        if yes {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }
    };
    match outcome {
        Outcome::Account {
            account,
            created: c,
            low_balance_threshold,
        } => Answer::json(
            created(*c),
            &AccountDto::with_threshold(account, *low_balance_threshold),
        ),
        Outcome::DailyLogin(login) => Answer::json(StatusCode::OK, &DailyLoginDto::from(login)),
        Outcome::Granted { bucket, frozen } => {
            Answer::json(StatusCode::CREATED, &BucketDto::new(bucket, *frozen))
        }
        Outcome::Purchased { record, new } => {
            Answer::json(created(*new), &PurchaseDto::from(record))
        }
        Outcome::Hold {
            account,
            hold,
            created: c,
        } => Answer::json(created(*c), &HoldDto::new(account, hold)),
        Outcome::Adjusted { account, entries } => match AdjustmentDto::new(account, entries) {
            Some(dto) => Answer::json(StatusCode::CREATED, &dto),
            None => Problem::internal(&"an adjustment made no entry").into(),
        },
        Outcome::CaughtUp | Outcome::KeyRevoked | Outcome::TokensRevoked => Answer::no_content(),
        Outcome::Token { token, expires_at } => Answer::json(
            StatusCode::CREATED,
            &TokenDto {
                token: token.clone(),
                expires_at: *expires_at,
            },
        ),
        Outcome::KeyCreated { record, secret } => Answer::json(
            StatusCode::CREATED,
            &ApiKeyDto::new(record, Some(secret.clone())),
        ),
        Outcome::ClockMoved(now) => Answer::json(StatusCode::OK, &ClockDto { now: *now }),
        Outcome::EndpointCreated(endpoint) => Answer::json(
            StatusCode::CREATED,
            &EndpointDto::new(endpoint, Some(endpoint.secret.clone())),
        ),
        Outcome::SecretRotated(secret) => Answer::json(
            StatusCode::OK,
            &SecretDto {
                secret: secret.clone(),
            },
        ),
        Outcome::EndpointDeleted | Outcome::ConsoleSession => Answer::no_content(),
        Outcome::Redelivering {
            account,
            sequence,
            endpoints,
        } => Answer::json(
            StatusCode::ACCEPTED,
            &RedeliveryDto {
                event_id: event_ref(account, *sequence),
                endpoint_ids: endpoints.clone(),
            },
        ),
    }
}

/// The answer that created `record`, as a replay shows it: without the secret, which is
/// shown once and never stored.
pub fn key_created_without_secret(record: &ApiKeyRecord) -> Answer {
    Answer::json(StatusCode::CREATED, &ApiKeyDto::new(record, None))
}

/// How a hold is named over HTTP: `h{n}_{account}`, the account's own number and the
/// account id together, split at the first `_` (`h{n}` has none). `GET
/// /v1/holds/{hold_id}` finds the account without a global index, so holds need no
/// table across accounts.
pub fn hold_ref(account: &AccountId, hold: HoldId) -> String {
    format!("{hold}_{account}")
}

/// Reads a hold reference back; `None` if it is not one.
pub fn parse_hold_ref(text: &str) -> Option<(AccountId, HoldId)> {
    let (hold, account) = text.split_once('_')?;
    let number: u64 = hold.strip_prefix('h')?.parse().ok()?;
    if number == 0 || hold.starts_with("h0") || hold.starts_with("h+") {
        return None;
    }
    Some((AccountId::parse(account).ok()?, HoldId::new(number)))
}

/// A request that takes no fields (`daily-login`, `release`): an empty body or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_references_carry_the_account_and_read_back() {
        let account = AccountId::parse("user_1.a:x@y-z").unwrap();
        let text = hold_ref(&account, HoldId::new(12));
        assert_eq!(text, "h12_user_1.a:x@y-z");
        assert_eq!(parse_hold_ref(&text), Some((account, HoldId::new(12))));
        for bad in [
            "h0_a", "h01_a", "h+1_a", "x1_a", "h1", "h1_", "h1_-a", "h_a",
        ] {
            assert_eq!(parse_hold_ref(bad), None, "{bad}");
        }
    }
}
