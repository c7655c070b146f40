//! The service's own commands: account tokens, API keys and the test clock. They touch
//! no account, so no ledger rule is involved.

use creditd_ledger::{AccountId, Refusal};
use creditd_store::ApiKeyRecord;
use jiff::{SignedDuration, Timestamp};

use super::{Batch, Outcome, Refused};
use crate::auth::{Role, new_api_key};

/// A move of the test clock.
#[derive(Clone, Copy, Debug)]
pub enum ClockMove {
    /// To an instant.
    To(Timestamp),
    /// Forward by seconds.
    Advance(i64),
}

impl Batch<'_> {
    pub(super) fn token(
        &self,
        account: &AccountId,
        ttl: SignedDuration,
        issued_by: &str,
        now: Timestamp,
    ) -> Result<Outcome, Refused> {
        let expires_at = now.checked_add(ttl).map_err(|_| Refusal::TimeOutOfRange)?;
        Ok(Outcome::Token {
            token: self
                .core
                .auth
                .issue_token(account, now, expires_at, issued_by),
            expires_at,
        })
    }

    pub(super) fn create_key(&mut self, name: &str, role: Role, now: Timestamp) -> Outcome {
        let new = new_api_key(name, role, now);
        self.changes.new_api_keys.push(new.record.clone());
        self.keys_to_remember.push(new.record.clone());
        Outcome::KeyCreated {
            record: new.record,
            secret: new.key,
        }
    }

    pub(super) fn revoke_key(&mut self, record: &ApiKeyRecord, now: Timestamp) -> Outcome {
        let mut revoked = record.clone();
        revoked.revoked_at = Some(now);
        self.changes.revoked_api_keys.push((record.id.clone(), now));
        self.keys_to_remember.push(revoked);
        Outcome::KeyRevoked
    }

    pub(super) fn move_clock(&self, movement: ClockMove) -> Result<Outcome, Refused> {
        let clock = &self.core.clock;
        let now = match movement {
            ClockMove::To(at) => clock.set(at),
            ClockMove::Advance(seconds) => clock.advance(seconds),
        }?;
        Ok(Outcome::ClockMoved(now))
    }
}
