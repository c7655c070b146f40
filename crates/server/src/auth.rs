//! Who is calling: API keys with roles, the environment's admin key, and read-only
//! account tokens.
//!
//! An API key reads `cdk_{id}_{secret}`. Only the SHA-256 of the secret is stored: the
//! secrets are 256 random bits, so a fast hash is as safe as a slow one, and it is
//! compared in constant time. An account token reads `cdt_{account}.{expiry}.{mac}`:
//! signed with a service-wide secret (HMAC-SHA-256), checked without a database read,
//! valid until its expiry on the service's clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use creditd_ledger::AccountId;
use creditd_store::{ApiKeyRecord, Store};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::answer::Problem;

/// Shortest `CREDITD_ADMIN_KEY`: an admin key guards every account, so it must not be
/// guessable; keys creditd makes are far longer.
pub const MIN_ADMIN_KEY_LEN: usize = 16;

/// Refuses an admin key from the environment that is too short, saying the minimum.
pub fn check_admin_key(key: &str) -> Result<(), String> {
    if key.chars().count() < MIN_ADMIN_KEY_LEN {
        return Err(format!(
            "CREDITD_ADMIN_KEY is {} characters; use at least {MIN_ADMIN_KEY_LEN} (for example: openssl rand -base64 32)",
            key.chars().count()
        ));
    }
    Ok(())
}

/// Longest API key name: a name says what a key is for, in a few words.
pub const MAX_KEY_NAME_LEN: usize = 100;

/// A key's name as stored: trimmed, 1 to [`MAX_KEY_NAME_LEN`] characters, no control
/// characters (a name is shown in tables and the audit trail). The refusal completes
/// "name …" (API) or "--name …" (CLI).
pub fn key_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_KEY_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "must say what the key is for in 1 to {MAX_KEY_NAME_LEN} characters, without tabs or line breaks"
        ));
    }
    Ok(name)
}

/// How long a key read from the database is trusted before it is read again. Revoking
/// through this node takes effect at once; through another node or the CLI, within this.
const KEY_CACHE_TTL: Duration = Duration::from_secs(1);
/// Default lifetime of an account token (SPEC §8).
pub const TOKEN_TTL_DEFAULT_SECONDS: i64 = 3_600;
/// Longest lifetime of an account token: 30 days (SPEC §8).
pub const TOKEN_TTL_MAX_SECONDS: i64 = 2_592_000;
/// The id the environment's admin key (`CREDITD_ADMIN_KEY`) goes by.
pub const ENV_ADMIN_ID: &str = "env-admin";

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Every account operation; not keys, adjustments or the test clock.
    Service,
    /// Reads.
    Viewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Service, Role::Viewer];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Service => "service",
            Role::Viewer => "viewer",
        }
    }

    /// The role of a name.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Where a person's change came from, for the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The HTTP API (the CLI, scripts, an admin's own calls).
    Api,
    /// The support console.
    Console,
}

impl Via {
    /// As the audit trail writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Console => "console",
        }
    }
}

/// A person a change is recorded for: the key they acted with, where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The API key's id.
    pub key_id: String,
    /// Its name.
    pub key_name: String,
    /// Through what.
    pub via: Via,
    /// Why, as they gave it.
    pub reason: Option<String>,
}

/// What a valid account token says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TokenClaims {
    account: AccountId,
    issued_at: Timestamp,
    issued_by: String,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// An API key.
    Key {
        /// The key's id: idempotency keys are scoped to it.
        id: String,
        /// Its role.
        role: Role,
        /// Its name, for the audit trail.
        name: String,
    },
    /// A read-only token for one account.
    Token {
        /// The account it may read.
        account: AccountId,
    },
}

impl Principal {
    /// The scope of this caller's idempotency keys.
    pub fn owner(&self) -> String {
        match self {
            Principal::Key { id, .. } => id.clone(),
            Principal::Token { account } => format!("token:{account}"),
        }
    }

    /// Who a change by this caller is audited as, through `via`, with `reason`: a person
    /// acting with an admin key (people hold admin keys; a platform's backend acts with a
    /// service key and is not audited), or anyone signed in to the console. `None`: not
    /// audited.
    pub fn actor(&self, via: Via, reason: Option<String>) -> Option<Actor> {
        match self {
            Principal::Key { id, role, name } if *role == Role::Admin || via == Via::Console => {
                Some(Actor {
                    key_id: id.clone(),
                    key_name: name.clone(),
                    via,
                    reason,
                })
            }
            _ => None,
        }
    }

    fn role(&self) -> Option<Role> {
        match self {
            Principal::Key { role, .. } => Some(*role),
            Principal::Token { .. } => None,
        }
    }

    /// Admins only: keys, adjustments, the test clock.
    pub fn require_admin(&self) -> Result<(), Problem> {
        match self.role() {
            Some(Role::Admin) => Ok(()),
            _ => Err(Problem::forbidden("this needs an admin key")),
        }
    }

    /// Changes to accounts: admin and service keys.
    pub fn require_write(&self) -> Result<(), Problem> {
        match self.role() {
            Some(Role::Admin | Role::Service) => Ok(()),
            _ => Err(Problem::forbidden("this key may only read")),
        }
    }

    /// Reads of one account: any key, or that account's token.
    pub fn require_read(&self, account: &AccountId) -> Result<(), Problem> {
        match self {
            Principal::Key { .. } => Ok(()),
            Principal::Token { account: own } if own == account => Ok(()),
            Principal::Token { .. } => Err(Problem::forbidden(
                "an account token reads only its own account",
            )),
        }
    }

    /// Service-wide reads (metrics, OpenAPI, the clock): any key, no account token.
    pub fn require_key(&self) -> Result<(), Problem> {
        match self {
            Principal::Key { .. } => Ok(()),
            Principal::Token { .. } => Err(Problem::forbidden(
                "an account token reads only its own account and the catalog",
            )),
        }
    }
}

/// A new API key: the record to store and the key to hand out once.
pub struct NewKey {
    /// What the store keeps.
    pub record: ApiKeyRecord,
    /// What the holder sends.
    pub key: String,
}

/// Makes an API key with a fresh random secret.
pub fn new_api_key(name: &str, role: Role, now: Timestamp) -> NewKey {
    let id = hex::encode(rand::random::<[u8; 8]>());
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    NewKey {
        record: ApiKeyRecord {
            id: id.clone(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            secret_hash: sha256(secret.as_bytes()),
            created_at: now,
            revoked_at: None,
        },
        key: format!("cdk_{id}_{secret}"),
    }
}

/// A new random secret for signing account tokens, as stored in the settings.
pub fn new_token_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Checks keys and tokens.
pub struct Authenticator {
    env_admin: Option<[u8; 32]>,
    token_secret: Vec<u8>,
    cache: Mutex<HashMap<String, (ApiKeyRecord, Instant)>>,
}

impl Authenticator {
    /// Keys from `store`, the environment's admin key if any, tokens signed with
    /// `token_secret`.
    pub fn new(env_admin: Option<&str>, token_secret: &str) -> Authenticator {
        Authenticator {
            env_admin: env_admin.map(|key| sha256(key.as_bytes())),
            token_secret: token_secret.as_bytes().to_vec(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The caller a bearer credential names, or 401.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        bearer: &str,
        now: Timestamp,
    ) -> Result<Principal, Problem> {
        let hash = sha256(bearer.as_bytes());
        if let Some(env) = &self.env_admin
            && bool::from(env.ct_eq(&hash))
        {
            return Ok(Principal::Key {
                id: ENV_ADMIN_ID.to_owned(),
                role: Role::Admin,
                name: "CREDITD_ADMIN_KEY".to_owned(),
            });
        }
        if let Some(token) = bearer.strip_prefix("cdt_") {
            let claims = self.check_token(token, now)?;
            // A token works while the key that issued it does, and until its account's
            // tokens are revoked.
            if self.session_key(store, &claims.issued_by).await?.is_none() {
                return Err(Problem::unauthorized());
            }
            let revoked = store
                .tokens_revoked_at(&claims.account)
                .await
                .map_err(|e| Problem::unavailable(&e))?;
            if revoked.is_some_and(|at| claims.issued_at <= at) {
                return Err(Problem::unauthorized());
            }
            return Ok(Principal::Token {
                account: claims.account,
            });
        }
        let Some((id, secret)) = bearer.strip_prefix("cdk_").and_then(|k| k.split_once('_')) else {
            return Err(Problem::unauthorized());
        };
        let record = self
            .key(store, id)
            .await?
            .ok_or_else(Problem::unauthorized)?;
        let role = Role::parse(&record.role);
        match role {
            Some(role)
                if record.revoked_at.is_none()
                    && bool::from(record.secret_hash.ct_eq(&sha256(secret.as_bytes()))) =>
            {
                Ok(Principal::Key {
                    id: record.id,
                    role,
                    name: record.name,
                })
            }
            _ => Err(Problem::unauthorized()),
        }
    }

    /// The caller a console session acts as: its key, while the key is not revoked (a
    /// revoked key's sessions end at once). `None`: no such key, or revoked.
    pub async fn session_key(
        &self,
        store: &dyn Store,
        key_id: &str,
    ) -> Result<Option<Principal>, Problem> {
        if key_id == ENV_ADMIN_ID {
            return Ok(self.env_admin.map(|_| Principal::Key {
                id: ENV_ADMIN_ID.to_owned(),
                role: Role::Admin,
                name: "CREDITD_ADMIN_KEY".to_owned(),
            }));
        }
        let Some(record) = self.key(store, key_id).await? else {
            return Ok(None);
        };
        Ok(match Role::parse(&record.role) {
            Some(role) if record.revoked_at.is_none() => Some(Principal::Key {
                id: record.id,
                role,
                name: record.name,
            }),
            _ => None,
        })
    }

    async fn key(&self, store: &dyn Store, id: &str) -> Result<Option<ApiKeyRecord>, Problem> {
        if let Some((record, fetched)) = self.lock_cache().get(id)
            && fetched.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(record.clone()));
        }
        let record = store
            .api_key(id)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        if let Some(record) = &record {
            self.remember(record.clone());
        }
        Ok(record)
    }

    /// Remembers a key this node created or revoked, so the change applies at once.
    pub fn remember(&self, record: ApiKeyRecord) {
        self.lock_cache()
            .insert(record.id.clone(), (record, Instant::now()));
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ApiKeyRecord, Instant)>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A read-only token for `account` until `expires_at`.
    pub fn issue_token(
        &self,
        account: &AccountId,
        issued_at: Timestamp,
        expires_at: Timestamp,
        issued_by: &str,
    ) -> String {
        let payload = format!(
            "{}.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(account.as_str()),
            expires_at.as_microsecond(),
            issued_at.as_microsecond(),
            URL_SAFE_NO_PAD.encode(issued_by),
        );
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("cdt_{payload}.{mac}")
    }

    /// What a token (after `cdt_`) says, if it is one this service signed and it has not
    /// expired; whether its key and its account's revocations still let it work is
    /// [`Authenticator::authenticate`]'s to check.
    fn check_token(&self, token: &str, now: Timestamp) -> Result<TokenClaims, Problem> {
        let (payload, mac) = token.rsplit_once('.').ok_or_else(Problem::unauthorized)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| Problem::unauthorized())?;
        self.mac(payload)
            .verify_slice(&mac)
            .map_err(|_| Problem::unauthorized())?;
        let mut parts = payload.split('.');
        let mut part = || parts.next().ok_or_else(Problem::unauthorized);
        let text = |b64: &str| {
            URL_SAFE_NO_PAD
                .decode(b64)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(Problem::unauthorized)
        };
        let instant = |micros: &str| {
            micros
                .parse::<i64>()
                .ok()
                .and_then(|m| Timestamp::from_microsecond(m).ok())
                .ok_or_else(Problem::unauthorized)
        };
        let account = AccountId::parse(&text(part()?)?).map_err(|_| Problem::unauthorized())?;
        let expires_at = instant(part()?)?;
        let issued_at = instant(part()?)?;
        let issued_by = text(part()?)?;
        if now >= expires_at {
            return Err(Problem::unauthorized());
        }
        Ok(TokenClaims {
            account,
            issued_at,
            issued_by,
        })
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.token_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(payload.as_bytes());
        mac
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back_until_they_expire_and_forgeries_fail() {
        let auth = Authenticator::new(None, "secret");
        let now: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        let account = AccountId::parse("user-1").unwrap();
        let token = auth.issue_token(
            &account,
            now,
            now + jiff::SignedDuration::from_secs(60),
            "k1",
        );
        let body = token.strip_prefix("cdt_").unwrap();
        assert_eq!(
            auth.check_token(body, now),
            Ok(TokenClaims {
                account: account.clone(),
                issued_at: now,
                issued_by: "k1".to_owned(),
            })
        );
        assert!(
            auth.check_token(body, now + jiff::SignedDuration::from_secs(60))
                .is_err()
        );
        let other = Authenticator::new(None, "other secret");
        assert!(
            other.check_token(body, now).is_err(),
            "another secret's token"
        );
        let forged = body.replacen("dXNlci0x", "dXNlci0y", 1); // user-1 -> user-2
        assert!(auth.check_token(&forged, now).is_err());
    }

    #[test]
    fn api_keys_carry_their_id_and_store_only_a_hash() {
        let now: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        let new = new_api_key("backend", Role::Service, now);
        let (id, secret) = new
            .key
            .strip_prefix("cdk_")
            .unwrap()
            .split_once('_')
            .unwrap();
        assert_eq!(id, new.record.id);
        assert_eq!(new.record.secret_hash, sha256(secret.as_bytes()));
        assert!(!new.record.id.contains('_'));
    }
}
