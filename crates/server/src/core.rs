//! The service without HTTP: the store, the catalog, the clock, the keys and the
//! metrics, shared by the HTTP handlers, the writer and the CLI's admin commands.

use std::sync::Arc;

use creditd_ledger::{Account, AccountCommand, AccountId, Catalog, History, Refusal};
use creditd_store::{Changes, Store, StoreError};

use crate::auth::{Authenticator, Role, new_api_key, new_token_secret};
use crate::clock::Clock;
use crate::command::Refused;
use crate::metrics::Metrics;

/// Setting that holds the secret account tokens are signed with.
const TOKEN_SECRET: &str = "token_secret";

/// Everything a request needs besides the writer.
pub struct Core {
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// Prices, plans and policies.
    pub catalog: Arc<Catalog>,
    /// The service's time.
    pub clock: Arc<Clock>,
    /// Keys and tokens.
    pub auth: Authenticator,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Where webhook endpoints may point.
    pub webhook_destinations: WebhookDestinations,
    /// How the pages are served.
    pub pages: crate::pages::PageSettings,
    /// Origins whose pages may call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Told when a commit recorded events: the webhook worker looks for deliveries at
    /// once instead of at its next poll.
    pub events_recorded: tokio::sync::Notify,
}

/// Where webhook endpoints may point (`creditd serve --webhook-destinations`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebhookDestinations {
    /// Any http or https URL (the default; docs/INTEGRATION.md says what to restrict).
    #[default]
    Any,
    /// Only this machine: `localhost`, 127.0.0.0/8 and ::1. For tests and API fuzzing,
    /// whose endpoints must never reach another host.
    Loopback,
}

impl WebhookDestinations {
    /// Whether a URL with `host` may be an endpoint.
    pub fn allows(self, host: &url::Host<&str>) -> bool {
        match self {
            WebhookDestinations::Any => true,
            WebhookDestinations::Loopback => match host {
                url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            },
        }
    }
}

/// What `Core::open` did on an empty database.
#[derive(Debug, Default)]
pub struct FirstStart {
    /// An admin key made because there was none: shown once, then only its hash is kept.
    pub admin_key: Option<String>,
}

impl Core {
    /// Prepares the service on `store`: loads (or makes, on the first start) the token
    /// secret, and makes an admin key if the database has no key and the environment
    /// gives none.
    pub async fn open(
        store: Arc<dyn Store>,
        catalog: Catalog,
        clock: Clock,
        env_admin_key: Option<&str>,
    ) -> Result<(Core, FirstStart), StoreError> {
        let mut first = Changes::default();
        let mut first_start = FirstStart::default();
        let secret = match store.setting(TOKEN_SECRET).await? {
            Some(secret) => secret,
            None => {
                let secret = new_token_secret();
                first
                    .settings
                    .push((TOKEN_SECRET.to_owned(), secret.clone()));
                secret
            }
        };
        if env_admin_key.is_none() && store.api_keys().await?.is_empty() {
            let new = new_api_key("initial admin", Role::Admin, clock.now());
            first.new_api_keys.push(new.record);
            first_start.admin_key = Some(new.key);
        }
        if !first.is_empty() {
            store.begin().await?.commit(&first).await?;
        }
        // Another node starting at the same time may have stored its secret first: the
        // first one stored stands, and every node signs with it.
        let secret = store.setting(TOKEN_SECRET).await?.unwrap_or(secret);
        let core = Core {
            store,
            catalog: Arc::new(catalog),
            clock: Arc::new(clock),
            auth: Authenticator::new(env_admin_key, &secret),
            metrics: Metrics::default(),
            events_recorded: tokio::sync::Notify::new(),
            webhook_destinations: WebhookDestinations::Any,
            pages: crate::pages::PageSettings::default(),
            cors_origins: Vec::new(),
        };
        Ok((core, first_start))
    }

    /// An account as of now, with every time-based effect applied (in memory: reads do
    /// not write; the effects are deterministic, so whoever writes next records the
    /// same). Returns what catching up produced, too.
    /// Refused [`Refusal::CatchingUp`] when more effects are due than one read
    /// catches up.
    pub async fn account_now(&self, id: &AccountId) -> Result<Option<(Account, History)>, Refused> {
        let stored = self
            .store
            .account(id)
            .await
            .map_err(|error| Refused::Store(Arc::new(error)))?;
        match stored {
            None => Ok(None),
            Some(stored) => Ok(Some(self.brought_to_now(stored.account)?)),
        }
    }

    /// Whether `command` would succeed on the account as stored, tried now on a copy in
    /// memory and kept nowhere (a reconciliation's dry run): the path a batch takes,
    /// opening the account first if it does not exist.
    pub async fn try_in_memory(
        &self,
        id: &AccountId,
        command: AccountCommand,
    ) -> Result<Result<(), Refusal>, StoreError> {
        let now = self.clock.now();
        let mut account = match self.store.account(id).await? {
            Some(stored) => stored.account,
            None => match command.open(id.clone(), &self.catalog, now) {
                Ok(account) => account,
                Err(refusal) => return Ok(Err(refusal)),
            },
        };
        let mut history = History::default();
        let mut moment = account.at(&self.catalog, now, &mut history);
        Ok(moment.apply(&command).map(drop))
    }

    /// `account` as of now, with what catching up produced (see [`Core::account_now`]).
    pub fn brought_to_now(&self, account: Account) -> Result<(Account, History), Refusal> {
        let (account, history, caught_up) = self.brought_towards_now(account);
        caught_up.map(|()| (account, history))
    }

    /// `account` caught up as far as one read goes towards now, with what that produced,
    /// and whether it got there (a list shows an account far behind as far as it got).
    pub fn brought_towards_now(
        &self,
        mut account: Account,
    ) -> (Account, History, Result<(), Refusal>) {
        let mut history = History::default();
        let moment = account.at(&self.catalog, self.clock.now(), &mut history);
        let caught_up = moment.caught_up();
        drop(moment);
        (account, history, caught_up)
    }
}

#[cfg(test)]
mod tests {
    use super::WebhookDestinations;

    fn allows(destinations: WebhookDestinations, url: &str) -> bool {
        let url = url::Url::parse(url).expect("a URL");
        destinations.allows(&url.host().expect("a host"))
    }

    #[test]
    fn loopback_only_endpoints_point_at_this_machine_and_nowhere_else() {
        use WebhookDestinations::{Any, Loopback};
        for here in [
            "http://localhost:8080/hook",
            "http://LOCALHOST/x",
            "http://127.0.0.1/x",
            "http://127.8.9.10/x",
            "http://[::1]:9/x",
        ] {
            assert!(allows(Loopback, here), "{here}");
        }
        for elsewhere in [
            "http://example.com/x",
            "http://10.0.0.1/x",
            "http://169.254.169.254/latest",
            "http://localhost.example.com/x",
            "http://[::2]/x",
        ] {
            assert!(!allows(Loopback, elsewhere), "{elsewhere}");
            assert!(allows(Any, elsewhere), "{elsewhere}");
        }
    }
}
