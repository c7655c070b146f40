//! Idempotency (SPEC §8), its whole policy in one place.
//!
//! - **What is stored:** the first answer to a request sent with an `Idempotency-Key`,
//!   status and body, refusals (such as 402) included; never a server error (a retry
//!   may succeed); a new API key's answer without its secret, which is shown once.
//! - **What replays:** the same key from the same API key with the same request (method,
//!   path and canonical body, [`Idempotency::fingerprint`]): the stored answer, marked
//!   replayed.
//! - **What conflicts:** the same key with another request: 409
//!   `idempotency_conflict`, and nothing runs.
//!
//! Records are looked up and stored within the writer's batch, in the same transaction
//! as the command's effect, so a key used twice in one batch applies once and a crash
//! cannot keep an effect without its record or a record without its effect.

use creditd_store::{IdempotencyKey, IdempotencyRecord};

use crate::answer::{Answer, Problem};
use crate::command::{Batch, Outcome, Refused, Submission};
use crate::dto;

/// An idempotency key with the digest of the request it came with.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// Owner and key.
    pub key: IdempotencyKey,
    /// Digest of method, path and canonical body.
    pub fingerprint: String,
}

/// What the writer gives back for one submission.
#[derive(Debug)]
pub enum Reply {
    /// What the command did, or why it did not; encoded by whoever asked.
    Done(Result<Outcome, Refused>),
    /// The answer as it is sent: a replay, or the answer just stored for replays.
    Answer(Answer),
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        match reply {
            Reply::Done(result) => dto::answer(&result),
            Reply::Answer(answer) => answer,
        }
    }
}

/// Runs one submission in `batch` under the policy above.
pub(crate) fn run(batch: &mut Batch<'_>, submission: &Submission) -> Reply {
    let Some(idempotency) = &submission.idempotency else {
        return Reply::Done(apply(batch, submission));
    };
    if let Some(record) = batch.idempotency_record(&idempotency.key) {
        return Reply::Answer(answer_again(record, &idempotency.fingerprint));
    }
    let result = apply(batch, submission);
    let answer = dto::answer(&result);
    if let Some(body) = body_to_store(&result, &answer) {
        let record = IdempotencyRecord {
            key: idempotency.key.clone(),
            account: submission.command.account().cloned(),
            fingerprint: idempotency.fingerprint.clone(),
            status: answer.status.as_u16(),
            body,
            created_at: batch.now(),
        };
        batch.remember_answer(record);
    }
    Reply::Answer(answer)
}

/// Runs the submission's command, audited if a person sent it. A replay is not run, so
/// it is not audited again.
fn apply(batch: &mut Batch<'_>, submission: &Submission) -> Result<Outcome, Refused> {
    let result = batch.apply(&submission.command);
    if let Some(actor) = &submission.actor {
        batch.audit(actor, &submission.command, &result);
    }
    result
}

/// The answer to a request whose key has a record: the record's answer if the request
/// is the same, else a conflict.
fn answer_again(record: &IdempotencyRecord, fingerprint: &str) -> Answer {
    if record.fingerprint != fingerprint {
        return Problem::idempotency_conflict(
            "this Idempotency-Key was used with a different request",
        )
        .into();
    }
    match axum::http::StatusCode::from_u16(record.status) {
        Ok(status) => Answer {
            status,
            body: record.body.clone(),
            replayed: true,
        },
        Err(_) => {
            Problem::internal(&format!("stored status {} is no status", record.status)).into()
        }
    }
}

/// What to store of `answer`, the answer to `result`: `None` for a server error.
fn body_to_store(result: &Result<Outcome, Refused>, answer: &Answer) -> Option<String> {
    if answer.is_server_error() {
        return None;
    }
    // A webhook secret is kept in the database to sign with, so a replay of the answer
    // that showed it (a creation, a rotation) shows it again: a client whose answer was
    // lost gets it by retrying. An API key's secret is never kept.
    Some(match result {
        Ok(Outcome::KeyCreated { record, .. }) => dto::key_created_without_secret(record).body,
        _ => answer.body.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::StatusCode;
    use creditd_ledger::Refusal;
    use creditd_store::{ApiKeyRecord, StoreError};
    use jiff::Timestamp;

    use super::*;

    fn record(fingerprint: &str, status: u16) -> IdempotencyRecord {
        IdempotencyRecord {
            key: IdempotencyKey {
                owner: "k1".into(),
                key: "req-1".into(),
            },
            account: None,
            fingerprint: fingerprint.into(),
            status,
            body: r#"{"granted":5}"#.into(),
            created_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_same_request_replays_the_stored_answer() {
        let again = answer_again(&record("abc", 201), "abc");
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.body, r#"{"granted":5}"#);
        assert!(again.replayed);
    }

    #[test]
    fn another_request_under_the_same_key_is_a_conflict() {
        let again = answer_again(&record("abc", 201), "xyz");
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert!(again.body.contains("idempotency_conflict"));
        assert!(!again.replayed);
    }

    #[test]
    fn refusals_are_stored_and_server_errors_are_not() {
        let refused: Result<Outcome, Refused> = Err(Refusal::InsufficientCredits {
            required: 60,
            available: 10,
        }
        .into());
        let answer = dto::answer(&refused);
        assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(body_to_store(&refused, &answer), Some(answer.body.clone()));

        let failed: Result<Outcome, Refused> =
            Err(Refused::Store(Arc::new(StoreError::Corrupt("test".into()))));
        let answer = dto::answer(&failed);
        assert!(answer.is_server_error());
        assert_eq!(body_to_store(&failed, &answer), None);
    }

    #[test]
    fn a_new_keys_secret_is_never_stored() {
        let created: Result<Outcome, Refused> = Ok(Outcome::KeyCreated {
            record: ApiKeyRecord {
                id: "k2".into(),
                name: "backend".into(),
                role: "service".into(),
                secret_hash: [0; 32],
                created_at: Timestamp::UNIX_EPOCH,
                revoked_at: None,
            },
            secret: "cdk_k2_secret".into(),
        });
        let answer = dto::answer(&created);
        assert!(answer.body.contains("cdk_k2_secret"));
        let stored = body_to_store(&created, &answer).expect("stored");
        assert!(!stored.contains("cdk_k2_secret") && stored.contains("backend"));
    }
}
