//! The support console (SPEC §10): support staff sign in with an API key and find an
//! account by id or prefix, by order id or by hold id, and see it whole. Built like the
//! credits page (askama templates, Fluent, no script, the same stylesheet and headers).
//!
//! A sign-in begins a server-side session, stored (the SHA-256 of the cookie's secret,
//! never the secret) through the writer like any change, so every node knows it and it
//! survives a restart. The cookie is `HttpOnly`, `SameSite=Strict` and scoped to
//! `/console`. Every request checks the session (not signed out, not expired) and its
//! key (not revoked: a revoked key's sessions end at once); every form carries the
//! session's CSRF token, checked in constant time. The session acts as its key: the
//! key's role bounds what is shown and, on the server, what is accepted, and its changes
//! are audited as the console's.

use std::str::FromStr;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use creditd_ledger::{AccountId, AccountIdPrefix, LedgerQuery, OrderId};
use creditd_store::ConsoleSession;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::answer::Problem;
use crate::auth::{Principal, sha256};
use crate::command::{Command, Submission};
use crate::http::AppState;
use crate::http::extract::Languages;
use crate::pages::{Lang, STYLESHEET_PATH, page};

/// The cookie that carries a console session's secret.
const SESSION_COOKIE: &str = "creditd_console";
/// How long a console session lasts: a working day.
pub const CONSOLE_SESSION_HOURS: i64 = 8;
/// Accounts a search lists at most.
const SEARCH_RESULTS: u32 = 20;
/// Rows of each list on an account's page.
const ACCOUNT_ROWS: u32 = 50;
/// Events an account's page shows, newest first, with their deliveries.
const EVENTS_SHOWN: u32 = 20;

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/sign-in", post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/search", get(search))
        .route("/console/accounts/{id}", get(account))
        .route("/console/accounts/{id}/{action}", post(act))
        .route(
            RECONCILIATIONS_PATH,
            get(reconcile_form).post(reconcile_upload).layer(
                // The file is read as a stream up to the policy's limit (`reconcile`).
                axum::extract::DefaultBodyLimit::disable(),
            ),
        )
}

/// A signed-in person: the session and the key it acts as.
struct SignedIn {
    session: ConsoleSession,
    caller: Principal,
}

impl SignedIn {
    /// "Signed in as NAME (ROLE)", for the header.
    fn line(&self, lang: Lang) -> String {
        match &self.caller {
            Principal::Key { name, role, .. } => lang.t_with(
                "console-signed-in-as",
                &[
                    ("name", name.clone().into()),
                    ("role", role.as_str().into()),
                ],
            ),
            Principal::Token { .. } => String::new(),
        }
    }
}

/// The session of the request's cookie, if it is good now.
async fn signed_in(state: &AppState, jar: &CookieJar) -> Result<Option<SignedIn>, Problem> {
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let id = hex::encode(sha256(cookie.value().as_bytes()));
    let core = &state.core;
    let Some(session) = core
        .store
        .console_session(&id)
        .await
        .map_err(Problem::from)?
    else {
        return Ok(None);
    };
    if session.ended_at.is_some() || session.expires_at <= Timestamp::now() {
        return Ok(None);
    }
    Ok(core
        .auth
        .session_key(&*core.store, &session.key_id)
        .await?
        .map(|caller| SignedIn { session, caller }))
}

/// The signed-in person, or the answer to send instead: the sign-in form (401), or the
/// failure.
async fn require_person(
    state: &AppState,
    jar: &CookieJar,
    lang: Lang,
) -> Result<SignedIn, Response> {
    match signed_in(state, jar).await {
        Ok(Some(person)) => Ok(person),
        Ok(None) => Err(sign_in_page(lang, StatusCode::UNAUTHORIZED, false)),
        Err(problem) => Err(problem.into_response()),
    }
}

/// Whether a form's CSRF token is its session's.
fn csrf_ok(session: &ConsoleSession, given: &str) -> bool {
    bool::from(session.csrf.as_bytes().ct_eq(given.as_bytes()))
}

/// The language of a console page.
#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

#[derive(Template)]
#[template(path = "console_sign_in.html")]
struct SignInView {
    lang: Lang,
    css: &'static str,
    refused: bool,
}

/// The sign-in page; `refused` says the key given was not good. A refused sign-in is
/// answered 200 with the form again (as a person reads it: try again), not 401, which a
/// browser reports as an error in its console.
fn sign_in_page(lang: Lang, status: StatusCode, refused: bool) -> Response {
    let view = SignInView {
        lang,
        css: STYLESHEET_PATH.as_str(),
        refused,
    };
    page(&view, status, "'none'")
}

#[derive(Template)]
#[template(path = "console_search.html")]
struct SearchView {
    lang: Lang,
    css: &'static str,
    signed_in: String,
    csrf: String,
    query: String,
    searched: bool,
    no_results: String,
    results: Vec<(String, String)>,
    is_admin: bool,
}

/// `GET /console`: the search page, or the sign-in page.
async fn home(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    match signed_in(&state, &jar).await {
        Ok(Some(person)) => render_search(&state, &person, lang, "").await,
        Ok(None) => sign_in_page(lang, StatusCode::OK, false),
        Err(problem) => problem.into_response(),
    }
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    key: String,
}

/// `POST /console/sign-in`: a key becomes a session.
async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<LangQuery>,
    Form(form): Form<SignInForm>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let core = &state.core;
    let key_id = match core
        .auth
        .authenticate(&*core.store, form.key.trim(), core.clock.now())
        .await
    {
        Ok(Principal::Key { id, .. }) => id,
        _ => return sign_in_page(lang, StatusCode::OK, true),
    };
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let now = Timestamp::now();
    let session = ConsoleSession {
        id: hex::encode(sha256(secret.as_bytes())),
        key_id,
        csrf: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
        created_at: now,
        expires_at: now
            .checked_add(SignedDuration::from_hours(CONSOLE_SESSION_HOURS))
            .unwrap_or(now),
        ended_at: None,
    };
    if let Err(problem) = store_session(&state, session).await {
        return problem.into_response();
    }
    let cookie = Cookie::build((SESSION_COOKIE, secret))
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(core.pages.secure_cookies)
        .build();
    (
        jar.add(cookie),
        Redirect::to(&format!("/console?lang={}", lang.code())),
    )
        .into_response()
}

/// Stores a session begun or ended, through the writer.
async fn store_session(state: &AppState, session: ConsoleSession) -> Result<(), Problem> {
    let reply = state
        .writer
        .submit(Submission {
            command: Command::ConsoleSession(session),
            idempotency: None,
            background: false,
            actor: None,
        })
        .await;
    match reply {
        crate::idempotency::Reply::Done(Ok(_)) => Ok(()),
        crate::idempotency::Reply::Done(Err(refused)) => Err(Problem::from(&refused)),
        crate::idempotency::Reply::Answer(_) => Err(Problem::internal(&"a session answered twice")),
    }
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /console/sign-out`: the session ends, on every node.
async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Form(form): Form<CsrfForm>,
) -> Response {
    let lang = Lang::choose(None, &accepted);
    let person = match signed_in(&state, &jar).await {
        Ok(Some(person)) => person,
        Ok(None) => return sign_in_page(lang, StatusCode::OK, false),
        Err(problem) => return problem.into_response(),
    };
    if !csrf_ok(&person.session, &form.csrf) {
        return Problem::forbidden("this form is not from your console session").into_response();
    }
    let ended = ConsoleSession {
        ended_at: Some(Timestamp::now()),
        ..person.session
    };
    if let Err(problem) = store_session(&state, ended).await {
        return problem.into_response();
    }
    let gone = Cookie::build((SESSION_COOKIE, "")).path("/console").build();
    (jar.remove(gone), Redirect::to("/console")).into_response()
}

/// What a search asks.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    lang: Option<String>,
}

/// `GET /console/search?q=`: accounts by id or prefix, an order, a hold.
async fn search(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<SearchQuery>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    match signed_in(&state, &jar).await {
        Ok(Some(person)) => {
            render_search(
                &state,
                &person,
                lang,
                query.q.as_deref().unwrap_or("").trim(),
            )
            .await
        }
        Ok(None) => sign_in_page(lang, StatusCode::UNAUTHORIZED, false),
        Err(problem) => problem.into_response(),
    }
}

async fn render_search(state: &AppState, person: &SignedIn, lang: Lang, query: &str) -> Response {
    let results = match find(state, lang, query).await {
        Ok(results) => results,
        Err(problem) => return problem.into_response(),
    };
    let view = SearchView {
        lang,
        css: STYLESHEET_PATH.as_str(),
        signed_in: person.line(lang),
        csrf: person.session.csrf.clone(),
        query: query.to_owned(),
        searched: !query.is_empty(),
        no_results: lang.t_with("console-no-results", &[("query", query.to_owned().into())]),
        results,
        is_admin: person.caller.require_admin().is_ok(),
    };
    page(&view, StatusCode::OK, "'none'")
}

/// The address of an account's console page.
fn account_link(account: &AccountId, lang: Lang) -> String {
    let mut path = url::Url::parse("http://console/console/accounts/")
        .unwrap_or_else(|_| unreachable!("a fixed URL parses"));
    if let Ok(mut segments) = path.path_segments_mut() {
        segments.pop_if_empty().push(account.as_str());
    }
    format!("{}?lang={}", path.path(), lang.code())
}

/// What `query` finds: the hold it names, the order recorded under it, and accounts
/// whose id starts with it (the exact one first).
async fn find(state: &AppState, lang: Lang, query: &str) -> Result<Vec<(String, String)>, Problem> {
    let mut results = Vec::new();
    if query.is_empty() {
        return Ok(results);
    }
    let store = &state.core.store;
    if let Some((account, hold)) = crate::dto::parse_hold_ref(query)
        && store
            .account(&account)
            .await
            .map_err(Problem::from)?
            .is_some()
    {
        results.push((
            account_link(&account, lang),
            lang.t_with(
                "console-result-hold",
                &[
                    ("hold", format!("h{}", hold.get()).into()),
                    ("account", account.to_string().into()),
                ],
            ),
        ));
    }
    if let Ok(order) = OrderId::parse(query)
        && let Some(purchase) = store.purchase(&order).await.map_err(Problem::from)?
    {
        results.push((
            account_link(&purchase.account_id, lang),
            lang.t_with(
                "console-result-order",
                &[
                    ("order", order.to_string().into()),
                    ("account", purchase.account_id.to_string().into()),
                ],
            ),
        ));
    }
    if let Ok(prefix) = AccountIdPrefix::parse(query) {
        let accounts = store
            .accounts_page(&prefix, None, SEARCH_RESULTS)
            .await
            .map_err(Problem::from)?;
        let mut ids: Vec<AccountId> = accounts
            .into_iter()
            .map(|s| s.account.id().clone())
            .collect();
        ids.sort_by_key(|id| id.as_str() != query);
        for id in ids {
            let label = format!("{} {id}", lang.t("console-result-account"));
            results.push((account_link(&id, lang), label));
        }
    }
    Ok(results)
}

type Row5 = (String, String, String, String, String);

#[derive(Template)]
#[template(path = "console_account.html")]
struct AccountView {
    lang: Lang,
    css: &'static str,
    signed_in: String,
    csrf: String,
    heading: String,
    zone_line: String,
    membership: (String, String, String, String),
    past_periods: Vec<String>,
    balance: (String, String, String),
    buckets: Vec<(String, String, String, String, String, bool)>,
    holds: Vec<Row5>,
    purchases: Vec<Row5>,
    ledger: Vec<Row5>,
    ledger_older: Option<String>,
    ledger_newest: Option<String>,
    entry_types: Vec<(&'static str, bool)>,
    audit: Option<Vec<(String, String, String, String)>>,
    events: Vec<(String, String, String, String)>,
    can_write: bool,
    can_adjust: bool,
    nonce: String,
    action_base: String,
    packages: Vec<String>,
    notice: Option<(String, bool)>,
}

/// Which page of an account's ledger to show.
#[derive(Clone, Copy, Debug, Default)]
struct LedgerView {
    entry_type: Option<creditd_ledger::EntryType>,
    before: Option<u64>,
}

/// What an action's redirect says, from its query.
#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    lang: Option<String>,
    done: Option<String>,
    error: Option<String>,
    /// The ledger's entry type filter.
    entry_type: Option<String>,
    /// The ledger page's start: entries numbered below this.
    before: Option<u64>,
}

/// `GET /console/accounts/{id}`: an account whole.
async fn account(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Path(id): Path<String>,
    Query(query): Query<AccountQuery>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let person = match require_person(&state, &jar, lang).await {
        Ok(person) => person,
        Err(answer) => return answer,
    };
    let id = match AccountId::parse(&id) {
        Ok(id) => id,
        Err(refusal) => return Problem::from(refusal).into_response(),
    };
    // Only the messages of known outcomes: a link cannot put words on the page.
    let known = |prefix: &str, code: &str| lang.try_t(&format!("console-{prefix}-{code}"));
    let notice = match (&query.done, &query.error) {
        (Some(done), _) => known("done", done).map(|text| (text, false)),
        (None, Some(error)) => Some((
            known("error", error).unwrap_or_else(|| lang.t("console-error-other")),
            true,
        )),
        (None, None) => None,
    };
    let entry_type = query
        .entry_type
        .as_deref()
        .and_then(|t| creditd_ledger::EntryType::from_str(t).ok());
    let ledger = LedgerView {
        entry_type,
        before: query.before,
    };
    match account_view(&state, &person, lang, &id, notice, ledger).await {
        Ok(view) => page(&view, StatusCode::OK, "'none'"),
        Err(problem) => problem.into_response(),
    }
}

async fn account_view(
    state: &AppState,
    person: &SignedIn,
    lang: Lang,
    id: &AccountId,
    notice: Option<(String, bool)>,
    page: LedgerView,
) -> Result<AccountView, Problem> {
    let (account, due) = state.account_now(id).await?;
    state.record_soon(id, &due);
    let zone = account.time_zone().clone();
    let local = |at: Timestamp| lang.date_time(&at.to_zoned(zone.clone()));
    let maybe = |at: Option<Timestamp>| at.map_or_else(|| "–".to_owned(), local);
    let membership = account.membership();
    let balance = account.balance();
    let kind = |k: creditd_ledger::CreditKind| lang.t(&format!("kind-{}", k.as_str()));
    let source = |s: creditd_ledger::Source| lang.t(&format!("source-{}", s.as_str()));
    let buckets = balance
        .buckets
        .iter()
        .take(crate::dto::MAX_BALANCE_BUCKETS)
        .map(|b| {
            (
                b.bucket.id().to_string(),
                kind(b.bucket.kind()),
                source(b.bucket.source()),
                format!(
                    "{} / {}",
                    lang.number(b.bucket.remaining()),
                    lang.number(b.bucket.granted())
                ),
                b.bucket
                    .expires_at()
                    .map_or_else(|| lang.t("console-never"), local),
                b.frozen,
            )
        })
        .collect();
    let holds = account
        .pending_holds()
        .iter()
        .map(|h| {
            (
                crate::dto::hold_ref(id, h.id()),
                h.feature().to_owned(),
                lang.number(h.amount()),
                local(h.created_at()),
                local(h.expires_at()),
            )
        })
        .collect();
    let purchases = state
        .purchases_page(id, None, ACCOUNT_ROWS)
        .await?
        .iter()
        .map(|p| {
            (
                p.order_id.to_string(),
                lang.number(p.credits),
                p.paid.as_ref().map_or_else(
                    || "–".to_owned(),
                    |paid| format!("{} {}", paid.amount_minor, paid.currency),
                ),
                local(p.recorded_at),
                local(p.expires_at),
            )
        })
        .collect();
    let query = LedgerQuery::new(Some(ACCOUNT_ROWS), page.entry_type, None, None)?;
    let entries = state
        .core
        .store
        .ledger_page(id, &query, page.before)
        .await
        .map_err(Problem::from)?;
    let filter = page.entry_type.map_or("", |t| t.as_str());
    let base = account_link(id, lang);
    let older = entries
        .last()
        .filter(|_| entries.len() == usize::try_from(ACCOUNT_ROWS).unwrap_or(usize::MAX))
        .map(|last| {
            format!(
                "{base}&entry_type={filter}&before={}#ledger-heading",
                last.seq
            )
        });
    let newest = page
        .before
        .map(|_| format!("{base}&entry_type={filter}#ledger-heading"));
    let entry_types = creditd_ledger::EntryType::ALL
        .iter()
        .map(|t| (t.as_str(), Some(*t) == page.entry_type))
        .collect();
    let ledger = entries
        .iter()
        .map(|stored| {
            let e = &stored.entry;
            (
                local(e.at),
                e.entry_type.as_str().to_owned(),
                lang.signed(e.amount),
                e.bucket_id.to_string(),
                e.description(),
            )
        })
        .collect();
    let mut events = Vec::new();
    for event in state
        .core
        .store
        .account_events(id, None, EVENTS_SHOWN)
        .await
        .map_err(Problem::from)?
    {
        let record = &event.event;
        let deliveries = state
            .core
            .store
            .event_deliveries(id, record.sequence)
            .await
            .map_err(Problem::from)?
            .iter()
            .map(|d| {
                let next = d
                    .next_attempt_at
                    .map(|at| format!(", {}", local(at)))
                    .unwrap_or_default();
                format!("{}: {} ({}{next})", d.endpoint_id, d.state, d.attempts)
            })
            .collect::<Vec<_>>();
        events.push((
            local(record.created_at),
            record.event_type.as_str().to_owned(),
            record.sequence.to_string(),
            if deliveries.is_empty() {
                "–".to_owned()
            } else {
                deliveries.join("; ")
            },
        ));
    }
    let audit = match person.caller.require_admin() {
        Ok(()) => Some(
            state
                .core
                .store
                .audit_page(Some(id), None, ACCOUNT_ROWS)
                .await
                .map_err(Problem::from)?
                .iter()
                .map(|a| {
                    let r = &a.record;
                    (
                        local(r.at),
                        format!("{} ({}, {})", r.key_name, r.key_id, r.via),
                        r.action.clone(),
                        r.reason.clone().unwrap_or_default(),
                    )
                })
                .collect(),
        ),
        Err(_) => None,
    };
    Ok(AccountView {
        lang,
        css: STYLESHEET_PATH.as_str(),
        signed_in: person.line(lang),
        csrf: person.session.csrf.clone(),
        heading: lang.t_with(
            "console-account-heading",
            &[("account", id.to_string().into())],
        ),
        zone_line: lang.t_with(
            "console-zone",
            &[("zone", zone.iana_name().unwrap_or("UTC").to_owned().into())],
        ),
        membership: (
            lang.t(&format!("membership-{}", membership.status().as_str())),
            membership.plan().unwrap_or("–").to_owned(),
            format!(
                "{} – {}",
                maybe(membership.period_start()),
                maybe(membership.period_end())
            ),
            maybe(membership.trial_end()),
        ),
        past_periods: membership
            .past_periods()
            .iter()
            .rev()
            .map(|p| format!("{} – {}", local(p.start), local(p.end)))
            .collect(),
        balance: (
            lang.number(balance.total()),
            lang.number(balance.general.held.saturating_add(balance.agent.held)),
            lang.number(balance.general.frozen),
        ),
        buckets,
        holds,
        purchases,
        ledger,
        ledger_older: older,
        ledger_newest: newest,
        entry_types,
        audit,
        events,
        can_write: person.caller.require_write().is_ok(),
        can_adjust: person.caller.require_admin().is_ok(),
        nonce: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        action_base: account_link(id, lang)
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
        packages: state
            .core
            .catalog
            .packages()
            .map(|p| p.name.to_string())
            .collect(),
        notice,
    })
}

/// What an action's form may carry; each action reads its own fields.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct ActionForm {
    csrf: String,
    /// A random value per page shown: the action's idempotency key, so a form sent twice
    /// (a double click, the browser's back button) acts once.
    nonce: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    valid_for: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    hold: Option<String>,
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    credits: Option<String>,
    #[serde(default)]
    paid_at: Option<String>,
}

/// A field given, not blank.
fn given(field: &Option<String>) -> Option<String> {
    field
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// A whole number a form field holds.
fn number(field: &Option<String>, name: &str) -> Result<i64, Problem> {
    given(field)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Problem::invalid(format!("{name} must be a whole number")))
}

/// A reason the action requires (SPEC §10: adjustments, compensation grants, recorded
/// purchases).
fn required_reason(form: &ActionForm) -> Result<Option<String>, Problem> {
    let reason = crate::http::audit_reason(form.reason.as_deref())?;
    if reason.is_none() {
        return Err(Problem::invalid("give a reason: the audit trail keeps it"));
    }
    Ok(reason)
}

/// The command an action asks for on `account`, and its reason; refused by role here, on
/// the server, whatever the page showed.
fn action_command(
    action: &str,
    caller: &Principal,
    account: &AccountId,
    form: &ActionForm,
) -> Result<(Command, Option<String>), Problem> {
    use crate::dto::{AdjustmentRequest, GrantRequest, PurchaseRequest};
    use creditd_ledger::AccountCommand;
    let on = |command: AccountCommand| Command::Account(account.clone(), command);
    match action {
        "grant" => {
            caller.require_write()?;
            let source = given(&form.source).unwrap_or_else(|| "promotion".to_owned());
            let reason = if source == "compensation" {
                required_reason(form)?
            } else {
                crate::http::audit_reason(form.reason.as_deref())?
            };
            let request = GrantRequest {
                kind: given(&form.kind).unwrap_or_else(|| "general".to_owned()),
                amount: number(&form.amount, "amount")?,
                source,
                expires_at: None,
                valid_for: given(&form.valid_for),
                campaign: None,
                note: given(&form.note),
                reason: reason.clone(),
            };
            let grant = crate::http::grant_of(&request)?;
            Ok((on(AccountCommand::Grant(grant)), reason))
        }
        "adjust" => {
            caller.require_admin()?;
            let reason = required_reason(form)?;
            let request = AdjustmentRequest {
                amount: number(&form.amount, "amount")?,
                kind: given(&form.kind).unwrap_or_else(|| "general".to_owned()),
                reason: reason.clone().unwrap_or_default(),
            };
            let adjustment = crate::http::adjustment_of(&request)?;
            Ok((on(AccountCommand::Adjust(adjustment)), reason))
        }
        "release" => {
            caller.require_write()?;
            let (owner, hold) = given(&form.hold)
                .and_then(|text| crate::dto::parse_hold_ref(&text))
                .filter(|(owner, _)| owner == account)
                .ok_or_else(|| Problem::invalid("no such hold on this account"))?;
            Ok((
                Command::Account(owner, AccountCommand::Release(hold)),
                crate::http::audit_reason(form.reason.as_deref())?,
            ))
        }
        "cancel" => {
            caller.require_write()?;
            Ok((
                on(AccountCommand::Cancel),
                crate::http::audit_reason(form.reason.as_deref())?,
            ))
        }
        "purchase" => {
            caller.require_write()?;
            let reason = required_reason(form)?;
            let paid_at = given(&form.paid_at)
                .map(|text| {
                    text.parse::<Timestamp>()
                        .map(creditd_ledger::whole_micros)
                        .map_err(|_| Problem::invalid("paid at must be an RFC 3339 instant"))
                })
                .transpose()?;
            let request = PurchaseRequest {
                order_id: given(&form.order_id).unwrap_or_default(),
                package: given(&form.package),
                credits: given(&form.credits)
                    .map(|_| number(&form.credits, "credits"))
                    .transpose()?,
                paid: None,
                paid_at,
                reason: reason.clone(),
            };
            let purchase = crate::http::purchase_of(&request)?;
            Ok((on(AccountCommand::Purchase(purchase)), reason))
        }
        "view-as-user" => Ok((
            Command::Token {
                account: account.clone(),
                ttl: SignedDuration::from_secs(USER_VIEW_SECONDS),
                issued_by: caller.owner(),
            },
            None,
        )),
        _ => Err(Problem::not_found("no such action")),
    }
}

/// How long the token of "open the user's page" lasts: long enough to look, short
/// enough that a link left in a browser's history is soon worthless.
pub const USER_VIEW_SECONDS: i64 = 900;

/// `POST /console/accounts/{id}/{action}`: grant, adjust, release a hold, cancel the
/// membership, record a missing purchase, or open the user's page. Audited as the
/// console's, in the transaction of the change.
async fn act(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Path((id, action)): Path<(String, String)>,
    Query(query): Query<LangQuery>,
    Form(form): Form<ActionForm>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let person = match require_person(&state, &jar, lang).await {
        Ok(person) => person,
        Err(answer) => return answer,
    };
    if !csrf_ok(&person.session, &form.csrf) {
        return Problem::forbidden("this form is not from your console session").into_response();
    }
    let id = match AccountId::parse(&id) {
        Ok(id) => id,
        Err(refusal) => return Problem::from(refusal).into_response(),
    };
    let back = |outcome: &str| {
        Redirect::to(&format!("{}&{outcome}", account_link(&id, lang))).into_response()
    };
    let (command, reason) = match action_command(&action, &person.caller, &id, &form) {
        Ok(built) => built,
        Err(problem) if problem.code == "forbidden" => return problem.into_response(),
        Err(problem) if problem.code == "not_found" => return problem.into_response(),
        Err(problem) => return back(&format!("error={}", problem.code)),
    };
    let fingerprint = hex::encode(sha256(
        format!(
            "{action}\n{}",
            serde_json::to_string(&form).unwrap_or_default()
        )
        .as_bytes(),
    ));
    let submission = Submission {
        command,
        idempotency: Some(crate::idempotency::Idempotency {
            key: creditd_store::IdempotencyKey {
                owner: person.caller.owner(),
                key: format!("console:{}", form.nonce),
            },
            fingerprint,
        }),
        background: false,
        actor: person.caller.actor(crate::auth::Via::Console, reason),
    };
    let answer: crate::answer::Answer = state.writer.submit(submission).await.into();
    if !answer.status.is_success() {
        let code = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|body| body["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "invalid_request".to_owned());
        return back(&format!("error={code}"));
    }
    if action == "view-as-user" {
        let token = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|body| body["token"].as_str().map(str::to_owned));
        if let Some(token) = token {
            return Redirect::to(&format!("/app?token={token}&lang={}", lang.code()))
                .into_response();
        }
    }
    back(&format!("done={action}"))
}

/// The console's reconciliation page: the one console path whose body may be larger
/// than the API's limit (a CSV file, read as a stream up to the policy's).
pub const RECONCILIATIONS_PATH: &str = "/console/reconciliations";

/// Rows of a reconciliation's answer the page lists; the rest are counted.
const RECONCILIATION_ROWS_SHOWN: usize = 200;

#[derive(Template)]
#[template(path = "console_reconcile.html")]
struct ReconcileView {
    lang: Lang,
    css: &'static str,
    signed_in: String,
    csrf: String,
    error: Option<String>,
    totals: Option<Vec<(String, String)>>,
    rows: Vec<(String, String, String, String)>,
    more: Option<String>,
}

impl ReconcileView {
    fn new(person: &SignedIn, lang: Lang) -> ReconcileView {
        ReconcileView {
            lang,
            css: STYLESHEET_PATH.as_str(),
            signed_in: person.line(lang),
            csrf: person.session.csrf.clone(),
            error: None,
            totals: None,
            rows: Vec::new(),
            more: None,
        }
    }

    fn respond(&self, status: StatusCode) -> Response {
        page(self, status, "'none'")
    }
}

/// `GET /console/reconciliations`: the upload form (admins).
async fn reconcile_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let person = match require_person(&state, &jar, lang).await {
        Ok(person) => person,
        Err(answer) => return answer,
    };
    if person.caller.require_admin().is_err() {
        let mut view = ReconcileView::new(&person, lang);
        view.error = Some(lang.t("console-reconcile-admins"));
        return view.respond(StatusCode::FORBIDDEN);
    }
    ReconcileView::new(&person, lang).respond(StatusCode::OK)
}

/// `POST /console/reconciliations`: the uploaded CSV, reconciled as by `POST
/// /v1/reconciliations` (admins; the form's CSRF token first, then the file, streamed).
async fn reconcile_upload(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<LangQuery>,
    mut multipart: axum::extract::Multipart,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let person = match require_person(&state, &jar, lang).await {
        Ok(person) => person,
        Err(answer) => return answer,
    };
    if let Err(problem) = person.caller.require_admin() {
        return problem.into_response();
    }
    let mut csrf = String::new();
    let mut apply = false;
    let mut reason = None;
    let mut view = ReconcileView::new(&person, lang);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Problem::invalid(e.body_text()).into_response(),
        };
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "apply" => apply = field.text().await.is_ok_and(|v| v == "true"),
            "reason" => reason = field.text().await.ok().filter(|r| !r.trim().is_empty()),
            "file" => {
                if !csrf_ok(&person.session, &csrf) {
                    return Problem::forbidden("this form is not from your console session")
                        .into_response();
                }
                let reason = reason
                    .clone()
                    .unwrap_or_else(|| "reconciliation".to_owned());
                let actor = person.caller.actor(crate::auth::Via::Console, Some(reason));
                let max_bytes = state.core.catalog.policies().reconciliation_max_bytes;
                match reconcile_field(&state, field, apply, max_bytes, actor).await {
                    Ok(report) => show_report(&mut view, lang, &report),
                    Err(problem) => view.error = Some(problem.detail().to_owned()),
                }
                return view.respond(StatusCode::OK);
            }
            _ => {}
        }
    }
    view.error = Some(lang.t("console-error-invalid_request"));
    view.respond(StatusCode::OK)
}

/// Reconciles the file of a form field: its chunks are handed to the same reading as the
/// API's body, through a channel, as they arrive.
async fn reconcile_field(
    state: &AppState,
    mut field: axum::extract::multipart::Field<'_>,
    apply: bool,
    max_bytes: u64,
    actor: Option<crate::auth::Actor>,
) -> Result<crate::dto::ReconciliationDto, Problem> {
    let (chunks, incoming) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let body = axum::body::Body::from_stream(futures_util::stream::unfold(
        incoming,
        |mut incoming| async move {
            incoming
                .recv()
                .await
                .map(|chunk| (Ok::<_, std::io::Error>(chunk), incoming))
        },
    ));
    let pump = async move {
        while let Ok(Some(chunk)) = field.chunk().await {
            if chunks.send(chunk).await.is_err() {
                break;
            }
        }
    };
    let (report, ()) = tokio::join!(
        crate::reconcile::reconcile(state, body, apply, max_bytes, actor),
        pump
    );
    report
}

fn show_report(view: &mut ReconcileView, lang: Lang, report: &crate::dto::ReconciliationDto) {
    let status = |name: &str| lang.t(&format!("console-status-{name}"));
    view.totals = Some(vec![
        (status("orders"), lang.number(report.orders)),
        (status("credited"), lang.number(report.credited)),
        (status("missing"), lang.number(report.missing)),
        (status("conflicting"), lang.number(report.conflicting)),
        (status("invalid"), lang.number(report.invalid)),
        (status("applied"), lang.number(report.applied)),
    ]);
    view.rows = report
        .rows
        .iter()
        .take(RECONCILIATION_ROWS_SHOWN)
        .map(|row| {
            (
                row.line.to_string(),
                row.order_id.clone(),
                status(&row.status),
                row.detail.clone(),
            )
        })
        .collect();
    let hidden = u64::try_from(report.rows.len().saturating_sub(RECONCILIATION_ROWS_SHOWN))
        .unwrap_or(u64::MAX)
        .saturating_add(report.rows_omitted);
    view.more = (hidden > 0).then(|| {
        lang.t_with(
            "console-reconcile-more",
            &[("count", lang.number(hidden).into())],
        )
    });
}
