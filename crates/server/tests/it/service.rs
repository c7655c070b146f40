//! Service-wide endpoints: health, metrics, OpenAPI, the catalog and the test clock.

use creditd_server::clock::Clock;
use serde_json::json;

use creditd_ledger::{
    AccountId, Amount, Catalog, CreditKind, Expiry, Grant, GrantSource, Hold, HoldId, Journal,
    LedgerQuery, OrderId,
};
use creditd_server::{CommitMode, Core, Service};
use creditd_store::{
    ApiKeyRecord, BatchReads, Changes, IdempotencyKey, LedgerRow, Store, StoreError, StoredAccount,
};
use jiff::Timestamp;

use crate::{ADMIN, App, app, app_with};

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_credits_by_fate() {
    let app = app().await;
    app.grant("a1", 10).await;
    app.post("/v1/accounts/a1/charges", json!({"feature": "ai_model"}))
        .await
        .expect(201);
    let text = app.get("/metrics").await;
    assert_eq!(text.status.as_u16(), 200);
    let text = text.body.as_str().unwrap().to_owned();
    for line in [
        r#"creditd_http_requests_total{route="/v1/accounts/{id}/grants",method="POST",status="201"} 1"#,
        r#"creditd_credits_granted_total{kind="general"} 10"#,
        r#"creditd_credits_debited_total{kind="general"} 4"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(text.contains("creditd_http_request_duration_seconds_bucket"));
    app.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_route_of_the_router() {
    let app = app().await;
    let doc = app.get("/openapi.json").await.expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/accounts/{id}", "put"),
        ("/v1/accounts/{id}", "get"),
        ("/v1/accounts/{id}/membership", "post"),
        ("/v1/accounts/{id}/daily-login", "post"),
        ("/v1/accounts/{id}/grants", "post"),
        ("/v1/accounts/{id}/purchases", "post"),
        ("/v1/accounts/{id}/holds", "post"),
        ("/v1/holds/{hold_id}", "get"),
        ("/v1/holds/{hold_id}/capture", "post"),
        ("/v1/holds/{hold_id}/release", "post"),
        ("/v1/accounts/{id}/charges", "post"),
        ("/v1/accounts/{id}/adjustments", "post"),
        ("/v1/accounts/{id}/balance", "get"),
        ("/v1/accounts/{id}/ledger", "get"),
        ("/v1/catalog", "get"),
        ("/v1/accounts/{id}/tokens", "post"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{key_id}", "delete"),
        ("/v1/test-clock", "get"),
        ("/v1/test-clock", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_catalog_shows_features_plans_packages_and_policies() {
    let app = app().await;
    let catalog = app.get("/v1/catalog").await.expect(200);
    assert_eq!(
        catalog["features"]["agent.poster"]["prices"],
        json!({"general": 10, "premium": 15})
    );
    assert_eq!(catalog["plans"]["pro"]["monthly_credits"], 500);
    assert_eq!(catalog["packages"]["credits_500"]["price_minor"], 1999);
    assert_eq!(catalog["policies"]["hold_ttl_default_seconds"], 900);
    app.stop().await;
}

#[tokio::test]
async fn the_test_clock_moves_forward_only() {
    let app = app().await;
    let now = app.now().await;
    let later = now + jiff::SignedDuration::from_hours(1);
    let body = app
        .post("/v1/test-clock", json!({"now": later.to_string()}))
        .await
        .expect(200);
    assert_eq!(body["now"], later.to_string());
    app.post("/v1/test-clock", json!({"now": now.to_string()}))
        .await
        .problem(409, "clock_backwards");
    app.post("/v1/test-clock", json!({"advance_seconds": -1}))
        .await
        .problem(409, "clock_backwards");
    app.post("/v1/test-clock", json!({}))
        .await
        .problem(422, "invalid_request");
    assert_eq!(app.now().await, later);
    app.stop().await;
}

#[tokio::test]
async fn without_the_test_clock_its_paths_are_404() {
    let app = app_with(Clock::System).await;
    app.get("/v1/test-clock").await.problem(404, "not_found");
    app.call(
        "POST",
        "/v1/test-clock",
        ADMIN,
        Some(json!({"advance_seconds": 5})),
    )
    .await
    .problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_sweeper_records_expiries_of_accounts_nobody_touches() {
    let app = app().await;
    app.post(
        "/v1/accounts/s1/grants",
        json!({"kind": "general", "amount": 9, "source": "promotion", "valid_for": "PT1H"}),
    )
    .await
    .expect(201);
    app.advance(3_600).await;
    creditd_server::jobs::sweep_due_accounts(&app.service.core, &app.service.writer).await;
    let metrics = app.get("/metrics").await.body;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(r#"creditd_credits_expired_total{kind="general"} 9"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn idempotency_records_are_forgotten_after_their_retention() {
    let app = app().await;
    let key = [("idempotency-key", "old")];
    let grant = json!({"kind": "general", "amount": 1, "source": "promotion"});
    app.call_with(
        "POST",
        "/v1/accounts/p1/grants",
        ADMIN,
        Some(grant.clone()),
        &key,
    )
    .await
    .expect(201);
    app.advance(47 * 3_600).await;
    creditd_server::jobs::purge_idempotency(&app.service.core).await;
    let kept = app
        .call_with(
            "POST",
            "/v1/accounts/p1/grants",
            ADMIN,
            Some(grant.clone()),
            &key,
        )
        .await;
    assert_eq!(kept.headers["idempotent-replayed"], "true", "kept for 47 h");
    app.advance(2 * 3_600).await;
    creditd_server::jobs::purge_idempotency(&app.service.core).await;
    let again = app
        .call_with("POST", "/v1/accounts/p1/grants", ADMIN, Some(grant), &key)
        .await;
    assert!(
        again.headers.get("idempotent-replayed").is_none(),
        "forgotten after 48 h"
    );
    again.expect(201);
    assert_eq!(app.balance("p1").await["total"], 2);
    app.stop().await;
}

/// Two services on one database, as the server and an admin command (or a second
/// process) would be: each reads without a lock and commits only at the revision it
/// read, so concurrent changes to one account through both all apply, once each.
#[tokio::test]
async fn two_writers_on_one_database_apply_every_change_once() {
    let first = app().await;
    let second = first.beside().await;
    first.grant("shared", 1_000).await;
    let mut answers = tokio::task::JoinSet::new();
    for n in 0..40 {
        let (router, path, body, key) = if n % 2 == 0 {
            (
                first.router.clone(),
                "/v1/accounts/shared/charges",
                json!({"feature": "private_model"}),
                format!("charge-{n}"),
            )
        } else {
            (
                second.router.clone(),
                "/v1/accounts/shared/grants",
                json!({"kind": "general", "amount": 7, "source": "promotion"}),
                format!("grant-{n}"),
            )
        };
        // Each request is sent twice, once through each service, with one key.
        for router in [
            router,
            if n % 2 == 0 {
                second.router.clone()
            } else {
                first.router.clone()
            },
        ] {
            let request = axum::http::Request::builder()
                .method("POST")
                .uri(path)
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json")
                .header("idempotency-key", key.as_str())
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            answers.spawn(async move {
                use tower::ServiceExt;
                router.oneshot(request).await.unwrap().status().as_u16()
            });
        }
    }
    while let Some(status) = answers.join_next().await {
        assert_eq!(status.unwrap(), 201);
    }
    // 20 charges of 20, 20 grants of 7, each applied once whichever service took it.
    for app in [&first, &second] {
        let balance = app.balance("shared").await;
        assert_eq!(balance["total"], 1_000 - 20 * 20 + 20 * 7, "{balance}");
    }
    let ledger = first
        .get("/v1/accounts/shared/ledger?limit=100")
        .await
        .expect(200);
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 41, "{ledger}");
    second.stop().await;
    first.stop().await;
}

/// A store that lets another writer change an account just before the first commit
/// that writes it, as a second process could.
struct Interloper {
    store: Box<dyn Store>,
    other: Box<dyn Store>,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Store for Interloper {
    async fn read(
        &self,
        ids: &[AccountId],
        keys: &[IdempotencyKey],
        orders: &[OrderId],
    ) -> Result<BatchReads, StoreError> {
        self.store.read(ids, keys, orders).await
    }
    async fn commit(&self, changes: &Changes) -> Result<(), StoreError> {
        if let Some(change) = changes.accounts.first()
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            let id = change.stored.account.id();
            let read = self.other.account(id).await?.unwrap();
            let mut account = read.account.clone();
            let mut journal = Journal::default();
            let catalog = Catalog::default();
            let mut moment = account.at(&catalog, read.account.as_of(), &mut journal);
            moment
                .grant(Grant {
                    kind: CreditKind::General,
                    amount: Amount::new(5).unwrap(),
                    source: GrantSource::Promotion,
                    expiry: Expiry::Never,
                    campaign: None,
                    note: None,
                })
                .unwrap();
            drop(moment);
            let mut theirs = Changes::default();
            theirs.record(account, read.base(), journal);
            self.other.commit(&theirs).await?;
        }
        self.store.commit(changes).await
    }
    async fn account(&self, id: &AccountId) -> Result<Option<StoredAccount>, StoreError> {
        self.store.account(id).await
    }
    async fn ledger_page(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        before: Option<u64>,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        self.store.ledger_page(id, query, before).await
    }
    async fn settled_hold(&self, id: &AccountId, hold: HoldId) -> Result<Option<Hold>, StoreError> {
        self.store.settled_hold(id, hold).await
    }
    async fn due_accounts(&self, now: Timestamp, limit: u32) -> Result<Vec<AccountId>, StoreError> {
        self.store.due_accounts(now, limit).await
    }
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.store.api_key(id).await
    }
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store.api_keys().await
    }
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.store.setting(name).await
    }
    async fn purge_idempotency(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.store.purge_idempotency(before).await
    }
    async fn close(&self) {
        self.store.close().await;
        self.other.close().await;
    }
}

/// A batch whose account another writer changed after the batch read it does not
/// commit over that change: it runs again on the new state, and answers once.
#[tokio::test]
async fn a_batch_that_meets_another_writers_change_runs_again_on_top_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let interloper = Interloper {
        store: creditd_store::open(&url).await.unwrap(),
        other: creditd_store::open(&url).await.unwrap(),
        armed: false.into(),
    };
    let interloper = std::sync::Arc::new(interloper);
    let store: std::sync::Arc<dyn Store> = interloper.clone();
    let (core, _) = Core::open(store, Catalog::default(), Clock::test(), Some(ADMIN))
        .await
        .unwrap();
    let service = Service::start(core, CommitMode::Group);
    let app = App {
        router: service.router(),
        service,
        url,
        _dir: std::sync::Arc::new(dir),
    };
    app.grant("u1", 100).await;
    interloper
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let charge = app
        .post(
            "/v1/accounts/u1/charges",
            json!({"feature": "private_model"}),
        )
        .await
        .expect(201);
    assert_eq!(charge["amount"], 20);
    // 100 granted, 5 granted by the other writer, 20 charged: both changes stand.
    assert_eq!(app.balance("u1").await["total"], 85);
    let ledger = app.get("/v1/accounts/u1/ledger").await.expect(200);
    let types: Vec<&str> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["debit", "grant", "grant"]);
    let metrics = app.get("/metrics").await.body;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("creditd_commit_conflicts_total 1\n"),
        "{metrics}"
    );
    app.stop().await;
}
