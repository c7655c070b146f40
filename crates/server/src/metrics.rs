//! Counters for `/metrics`: requests and latency by route and status, credits by what
//! happened to them, and the writer's batches.
//!
//! Two formats from one registry: OpenMetrics 1.0 for a scraper that asks for it (as
//! Prometheus does), and otherwise the Prometheus text format 0.0.4, which
//! `promtool check metrics` and `prometheus_client`'s parser read. `prometheus-client`
//! writes only OpenMetrics; [`to_prometheus_text`] turns it into 0.0.4 (the two differ
//! in a counter family's name, which 0.0.4 spells with `_total`, and in `# EOF`).
//! Label values come from closed sets (route templates, known methods), so no request
//! can add series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use creditd_ledger::{CreditKind, EntryType};
use creditd_store::{Changes, DeliveryState};

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's template (`/v1/accounts/{id}/holds`), never the raw path.
    pub route: String,
    /// The method, from a closed set ([`method_label`]).
    pub method: &'static str,
    /// The answer's status code.
    pub status: u16,
}

/// The methods counted by name; any other is counted as `other`.
const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The `method` label of a request's method: known names, or `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    KNOWN_METHODS
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

/// Labels of the build info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Labels of an events counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event_type: &'static str,
}

/// Labels of a webhook attempt counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    /// `delivered`, `retrying` or `failed`.
    outcome: &'static str,
    /// The receiver's status class (`2xx`, `5xx`), or `none` when it did not answer.
    status: &'static str,
}

/// Labels of a credit counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What a count of every account found ([`crate::jobs::tally_accounts`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountTally {
    /// Accounts counted.
    pub accounts: u64,
    /// General credits available, held and frozen.
    pub general: u64,
    /// Agent credits available and held.
    pub agent: u64,
    /// Holds waiting for capture, release or expiry.
    pub pending_holds: u64,
}

impl AccountTally {
    /// Adds `account`, as of the instant it was brought to.
    pub fn add(&mut self, account: &creditd_ledger::Account) {
        let balance = account.balance();
        let general = balance
            .general
            .available
            .saturating_add(balance.general.held)
            .saturating_add(balance.general.frozen);
        let agent = balance.agent.available.saturating_add(balance.agent.held);
        let holds = u64::try_from(account.pending_holds().len()).unwrap_or(u64::MAX);
        self.accounts = self.accounts.saturating_add(1);
        self.general = self.general.saturating_add(general);
        self.agent = self.agent.saturating_add(agent);
        self.pending_holds = self.pending_holds.saturating_add(holds);
    }
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    latency: LatencyFamily,
    granted: Family<KindLabels, Counter>,
    debited: Family<KindLabels, Counter>,
    refunded: Family<KindLabels, Counter>,
    expired: Family<KindLabels, Counter>,
    batch_size: Histogram,
    server_errors: Counter,
    replays: Counter,
    events: Family<EventLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    oldest_undelivered: Gauge<f64, AtomicU64>,
    jobs_lag: Gauge<f64, AtomicU64>,
    outstanding: Family<KindLabels, Gauge>,
    pending_holds: Gauge,
    accounts: Gauge,
    tallied_at: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs … about 3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("creditd");
        let requests = Family::<RouteLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        let [granted, debited, refunded, expired] =
            std::array::from_fn(|_| Family::<KindLabels, Counter>::default());
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            latency.clone(),
        );
        registry.register(
            "credits_granted",
            "Credits granted, by kind",
            granted.clone(),
        );
        registry.register(
            "credits_debited",
            "Credits debited by holds and charges, by kind",
            debited.clone(),
        );
        registry.register(
            "credits_refunded",
            "Credits returned by holds, by kind",
            refunded.clone(),
        );
        registry.register(
            "credits_expired",
            "Credits that expired unused, by kind",
            expired.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Commands per group commit",
            batch_size.clone(),
        );
        let server_errors = Counter::default();
        registry.register(
            "http_server_errors",
            "Answers with a 5xx status: each one is logged with its request id",
            server_errors.clone(),
        );
        let replays = Counter::default();
        registry.register(
            "idempotent_replays",
            "Answers replayed to a retried Idempotency-Key",
            replays.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running build (always 1)", build);
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_recorded",
            "Events recorded, by type",
            events.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts, by outcome and the receiver's status class",
            attempts.clone(),
        );
        let oldest_undelivered = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "webhook_oldest_undelivered_age_seconds",
            "Age of the oldest event not yet delivered to every endpoint that receives it",
            oldest_undelivered.clone(),
        );
        let jobs_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "background_lag_seconds",
            "How long the oldest time effect the sweeper found due had been due",
            jobs_lag.clone(),
        );
        let outstanding = Family::<KindLabels, Gauge>::default();
        registry.register(
            "outstanding_credits",
            "Credits held by accounts (available, held and frozen), by kind, as of the last count",
            outstanding.clone(),
        );
        let pending_holds = Gauge::default();
        registry.register(
            "pending_holds",
            "Holds waiting for capture, release or expiry, as of the last count",
            pending_holds.clone(),
        );
        let accounts = Gauge::default();
        registry.register(
            "accounts",
            "Accounts, as of the last count",
            accounts.clone(),
        );
        let tallied_at = Gauge::default();
        registry.register(
            "tally_timestamp_seconds",
            "When accounts were last counted (Unix time on the service clock; 0: not yet on this node)",
            tallied_at.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            granted,
            debited,
            refunded,
            expired,
            batch_size,
            server_errors,
            replays,
            events,
            attempts,
            oldest_undelivered,
            jobs_lag,
            outstanding,
            pending_holds,
            accounts,
            tallied_at,
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, labels: RouteLabels, seconds: f64, replayed: bool) {
        if labels.status >= 500 {
            self.server_errors.inc();
        }
        if replayed {
            self.replays.inc();
        }
        self.latency.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts what a committed batch of `commands` did to credits.
    pub fn committed(&self, commands: usize, changes: &Changes) {
        self.batch_size.observe(commands as f64);
        for event in &changes.events {
            self.events
                .get_or_create(&EventLabels {
                    event_type: event.event_type.as_str(),
                })
                .inc();
        }
        for (_, stored) in &changes.entries {
            let entry = &stored.entry;
            let family = match entry.entry_type {
                EntryType::Grant => &self.granted,
                EntryType::Debit => &self.debited,
                EntryType::Refund => &self.refunded,
                EntryType::Expire => &self.expired,
                EntryType::Adjust | EntryType::Freeze | EntryType::Unfreeze => continue,
            };
            family
                .get_or_create(&KindLabels {
                    kind: entry.kind.as_str(),
                })
                .inc_by(entry.amount.unsigned_abs());
        }
    }

    /// Counts one webhook attempt by what became of its delivery.
    pub fn webhook_attempt(&self, state: DeliveryState, status: Option<u16>) {
        let outcome = match state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Pending => "retrying",
            DeliveryState::Failed => "failed",
        };
        let status = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "none",
        };
        self.attempts
            .get_or_create(&AttemptLabels { outcome, status })
            .inc();
    }

    /// Sets the age of the oldest undelivered event (0 when there is none).
    pub fn set_oldest_undelivered(&self, seconds: f64) {
        self.oldest_undelivered.set(seconds);
    }

    /// Sets how far behind the clock the sweeper found the oldest due effect.
    pub fn set_jobs_lag(&self, seconds: f64) {
        self.jobs_lag.set(seconds);
    }

    /// Sets the gauges of a count of every account made at `at`.
    pub fn set_tally(&self, tally: &AccountTally, at: jiff::Timestamp) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        for (kind, credits) in [
            (CreditKind::General, tally.general),
            (CreditKind::Agent, tally.agent),
        ] {
            let kind = kind.as_str();
            self.outstanding
                .get_or_create(&KindLabels { kind })
                .set(gauge(credits));
        }
        self.pending_holds.set(gauge(tally.pending_holds));
        self.accounts.set(gauge(tally.accounts));
        self.tallied_at.set(at.as_second());
    }

    /// The OpenMetrics 1.0 exposition.
    pub fn openmetrics(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The Prometheus text format 0.0.4 exposition.
    pub fn prometheus_text(&self) -> String {
        to_prometheus_text(&self.openmetrics())
    }
}

/// Media type of the OpenMetrics exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Media type of the Prometheus text exposition.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as Prometheus text 0.0.4: a counter family's `# HELP` and `# TYPE`
/// name its samples' name (`…_total`), `# UNIT` and `# EOF` go. What remains is the
/// same in both formats for the counters, gauges and histograms this registry holds.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match described {
            Some(renamed) => text.push_str(&renamed),
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counter_families_with_total_and_has_no_eof() {
        let metrics = Metrics::default();
        metrics.request(
            RouteLabels {
                route: "/healthz".to_owned(),
                method: "GET",
                status: 200,
            },
            0.001,
            false,
        );
        let text = metrics.prometheus_text();
        assert!(
            text.contains("# TYPE creditd_http_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP creditd_http_requests_total HTTP requests"),
            "{text}"
        );
        assert!(text.contains("# TYPE creditd_http_request_duration_seconds histogram\n"));
        assert!(text.contains("creditd_build_info{version=\""), "{text}");
        assert!(!text.contains("# EOF"));
        assert!(metrics.openmetrics().ends_with("# EOF\n"));
    }

    #[test]
    fn an_unknown_method_is_counted_as_other() {
        let odd = axum::http::Method::from_bytes(&[b'X'; 500]).expect("a token");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&axum::http::Method::PATCH), "PATCH");
    }
}
