//! The pages creditd serves (SPEC §10): the credits page end users see beside their
//! profile picture ("Credit → Usage Details"), its badge for an iframe, and the CSV of its
//! rows. Server-rendered from askama templates (`templates/`, checked at compile time,
//! escaped by default) on the same reads as the API (`crate::http::views`), with no
//! script at all: filters are a form, rows open with `<details>`, paging is links, so the
//! page works as plain HTML and its Content-Security-Policy allows no script.
//!
//! A user arrives with an account token in the address (`/app?token=…`, made by the
//! platform with `POST /v1/accounts/{id}/tokens`); the token is put in an `HttpOnly`
//! cookie and the browser is sent on to `/app`, so the token leaves the address bar, the
//! history and any `Referer`.

mod activity;
mod chart;
mod i18n;

use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use creditd_ledger::{AccountId, MembershipStatus};
use jiff::ToSpan;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use self::activity::{ActivityPage, ROWS_PER_PAGE, Row, RowCursor, RowType, month_window};
use self::chart::Chart;
pub use self::i18n::Lang;
use crate::answer::Problem;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::extract::Languages;

/// The cookie that carries a user's session: the account token it was opened with.
const SESSION_COOKIE: &str = "creditd_session";
/// "Expiring soon" on the credits page: buckets that end within this many days (SPEC
/// §10).
pub const EXPIRING_SOON_DAYS: i64 = 30;
/// Months the usage filter offers, the current one included: a year back.
const MONTHS_OFFERED: i32 = 12;
/// Rows per page of the CSV's reads: the CSV holds every row the filters select.
const CSV_READ_ROWS: u32 = 500;

/// How the pages are served, from `creditd serve`'s options.
#[derive(Clone, Debug)]
pub struct PageSettings {
    /// Mark the session cookie `Secure` (creditd is reached over HTTPS, usually behind
    /// a proxy that ends TLS).
    pub secure_cookies: bool,
    /// Who may show `/app/badge` in a frame: a CSP `frame-ancestors` source list (the
    /// platform's origin). Every other page may be framed by no one.
    pub badge_frame_ancestors: String,
}

impl PageSettings {
    /// Checks the frame ancestors: CSP sources (`'self'`, `'none'`, `https://app.example.com`,
    /// `https://*.example.com`), separated by spaces. Anything else could end the directive
    /// and add another, so it is refused.
    pub fn new(secure_cookies: bool, badge_frame_ancestors: &str) -> Result<PageSettings, String> {
        let sources: Vec<&str> = badge_frame_ancestors.split_whitespace().collect();
        let plain = |source: &str| {
            source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:/*-_".contains(c))
        };
        let good = !sources.is_empty()
            && sources
                .iter()
                .all(|s| matches!(*s, "'self'" | "'none'") || (plain(s) && !s.is_empty()));
        if !good {
            return Err(format!(
                "badge frame ancestors {badge_frame_ancestors:?}: give CSP sources such as \
                 'self' or https://app.example.com, separated by spaces"
            ));
        }
        Ok(PageSettings {
            secure_cookies,
            badge_frame_ancestors: sources.join(" "),
        })
    }
}

impl Default for PageSettings {
    fn default() -> Self {
        PageSettings {
            secure_cookies: false,
            badge_frame_ancestors: "'self'".to_owned(),
        }
    }
}

const STYLESHEET: &str = include_str!("../../assets/app.css");
const FAVICON: &str = include_str!("../../assets/favicon.svg");

/// The stylesheet's address, named after its content so it can be cached for a year and
/// a new version is fetched at once.
pub(crate) static STYLESHEET_PATH: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(Sha256::digest(STYLESHEET.as_bytes()));
    format!("/assets/app.{}.css", &digest[..12])
});

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(credits_page))
        .route("/app/badge", get(badge))
        .route("/app/usage.csv", get(usage_csv))
        .route("/assets/{file}", get(asset))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
}

/// What the credits page's address may carry.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// An account token, exchanged for the session cookie.
    token: Option<String>,
    /// `en` or `zh`.
    lang: Option<String>,
    /// Which rows (`all`, `usage`, `grants`, `expiries`, `adjustments`).
    #[serde(rename = "type")]
    row_type: Option<String>,
    /// A local month, `2026-12`.
    month: Option<String>,
    /// Where the previous page of rows stopped.
    after: Option<String>,
}

/// The account a credential opens a page for: account tokens only (an API key names no
/// account).
async fn account_of(state: &AppState, credential: &str) -> Option<AccountId> {
    let core = &state.core;
    match core
        .auth
        .authenticate(&*core.store, credential, core.clock.now())
        .await
    {
        Ok(Principal::Token { account }) => Some(account),
        _ => None,
    }
}

/// The account of the session cookie, if it is still good.
async fn session(state: &AppState, jar: &CookieJar) -> Option<AccountId> {
    let cookie = jar.get(SESSION_COOKIE)?;
    account_of(state, cookie.value()).await
}

/// The headers every page carries: no caching of a person's figures, no framing (but for
/// the badge), no script of any origin.
fn page_response(status: StatusCode, body: String, frame_ancestors: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         base-uri 'none'; frame-ancestors {frame_ancestors}"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    if frame_ancestors == "'none'" {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    (status, headers, body).into_response()
}

/// A page: `template` rendered, with the headers of [`page_response`]; a plain 500 if it
/// could not be rendered (a bug: templates are checked at compile time, so this would
/// be a formatting failure).
pub(crate) fn page(
    template: &impl Template,
    status: StatusCode,
    frame_ancestors: &str,
) -> Response {
    match template.render() {
        Ok(body) => page_response(status, body, frame_ancestors),
        Err(e) => Problem::internal(&e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOut {
    lang: Lang,
    css: &'static str,
}

/// The 401 page: the session is missing or ended. Framed where the page asked for is
/// (the badge's says so inside its iframe).
fn signed_out(lang: Lang, frame_ancestors: &str) -> Response {
    let view = SignedOut {
        lang,
        css: STYLESHEET_PATH.as_str(),
    };
    page(&view, StatusCode::UNAUTHORIZED, frame_ancestors)
}

/// The account a page is for, or the answer to send instead: a token in the address is
/// exchanged for the session cookie and the browser sent on to `path` without it (the
/// language kept if the address named one); without a good token or session, the 401
/// page (framed as `frame_ancestors` allows).
async fn signed_in(
    state: &AppState,
    jar: CookieJar,
    query: &PageQuery,
    lang: Lang,
    path: &str,
    frame_ancestors: &str,
) -> Result<AccountId, Response> {
    if let Some(token) = query.token.clone() {
        if account_of(state, &token).await.is_none() {
            return Err(signed_out(lang, frame_ancestors));
        }
        let to = match &query.lang {
            Some(_) => format!("{path}?lang={}", lang.code()),
            None => path.to_owned(),
        };
        return Err(open_session(state, jar, token, &to));
    }
    session(state, &jar)
        .await
        .ok_or_else(|| signed_out(lang, frame_ancestors))
}

/// Sets the session cookie from a token and sends the browser on to `to` (the same page
/// without the token).
fn open_session(state: &AppState, jar: CookieJar, token: String, to: &str) -> Response {
    let cookie = Cookie::build((SESSION_COOKIE, token))
        .path("/app")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.core.pages.secure_cookies)
        .build();
    (jar.add(cookie), Redirect::to(to)).into_response()
}

/// `GET /app`: the credits page.
async fn credits_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<PageQuery>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let account = match signed_in(&state, jar, &query, lang, "/app", "'none'").await {
        Ok(account) => account,
        Err(response) => return response,
    };
    match credits_view(&state, &account, lang, &query).await {
        Ok(view) => page(&view, StatusCode::OK, "'none'"),
        Err(problem) if problem.code == "not_found" => signed_out(lang, "'none'"),
        Err(problem) => problem.into_response(),
    }
}

/// A bucket that ends within [`EXPIRING_SOON_DAYS`].
struct Expiring {
    what: String,
    amount: String,
    when: String,
    frozen: bool,
}

#[derive(Template)]
#[template(path = "app.html")]
struct CreditsView {
    lang: Lang,
    css: &'static str,
    languages: Vec<(Lang, String)>,
    membership: String,
    membership_class: &'static str,
    total: String,
    general: String,
    agent: String,
    held: String,
    frozen: Option<String>,
    frozen_amount: String,
    next_expiry: String,
    expiring: Vec<Expiring>,
    chart: Chart,
    chart_desc: String,
    days: Vec<(String, String, String)>,
    type_options: Vec<(&'static str, String, bool)>,
    month_options: Vec<(String, String, bool)>,
    zone_line: String,
    rows: Vec<Row>,
    next_link: Option<String>,
    newest_link: Option<String>,
    csv_link: String,
    account_line: String,
}

/// The address of the credits page with these query pairs.
fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(name, value);
    }
    format!("{path}?{}", query.finish())
}

async fn credits_view(
    state: &AppState,
    id: &AccountId,
    lang: Lang,
    query: &PageQuery,
) -> Result<CreditsView, Problem> {
    let catalog = &state.core.catalog;
    let (account, due) = state.account_now(id).await?;
    state.record_soon(id, &due);
    let zone = account.time_zone().clone();
    let now = account.as_of();
    let balance = account.balance();

    let membership_status = account.membership().status();
    let membership_class = membership_status.as_str();
    let membership = lang.t(&format!("membership-{membership_class}"));
    let frozen = (balance.general.frozen > 0).then(|| {
        lang.t_with(
            "frozen-explained",
            &[("amount", lang.number(balance.general.frozen).into())],
        )
    });
    let next_expiry = match balance.next_expiry {
        Some(next) => lang.t_with(
            "next-expiry-value",
            &[
                ("amount", lang.number(next.amount).into()),
                (
                    "date",
                    lang.date_time(&next.at.to_zoned(zone.clone())).into(),
                ),
            ],
        ),
        None => lang.t("no-expiry"),
    };
    let soon = now
        .to_zoned(zone.clone())
        .checked_add(EXPIRING_SOON_DAYS.days())
        .map(|z| z.timestamp())
        .unwrap_or(now);
    let mut expiring: Vec<_> = balance
        .buckets
        .iter()
        .filter_map(|b| Some((b, b.bucket.expires_at().filter(|at| *at <= soon)?)))
        .collect();
    expiring.sort_by_key(|(_, at)| *at);
    let expiring = expiring
        .into_iter()
        .map(|(b, at)| Expiring {
            what: format!(
                "{} · {}",
                lang.t(&format!("kind-{}", b.bucket.kind().as_str())),
                lang.t(&format!("source-{}", b.bucket.source().as_str()))
            ),
            amount: lang.number(b.bucket.remaining()),
            when: lang.t_with(
                "expiring-on",
                &[("date", lang.date_time(&at.to_zoned(zone.clone())).into())],
            ),
            frozen: b.frozen,
        })
        .collect();

    let (_, days) = state.balance_history(id, None, None).await?;
    let chart = Chart::new(&days, lang);
    let (first, last) = (days.first(), days.last());
    let figure = |day: Option<&creditd_ledger::DayBalance>, general: bool| {
        lang.number(day.map_or(0, |d| if general { d.general } else { d.agent }))
    };
    let chart_desc = lang.t_with(
        "chart-desc",
        &[
            (
                "from",
                first.map_or(String::new(), |d| lang.date(d.date)).into(),
            ),
            (
                "to",
                last.map_or(String::new(), |d| lang.date(d.date)).into(),
            ),
            ("general_from", figure(first, true).into()),
            ("general_to", figure(last, true).into()),
            ("agent_from", figure(first, false).into()),
            ("agent_to", figure(last, false).into()),
        ],
    );
    let table_days = days
        .iter()
        .rev()
        .map(|d| {
            (
                lang.date(d.date),
                lang.number(d.general),
                lang.number(d.agent),
            )
        })
        .collect();

    let row_type = RowType::parse(query.row_type.as_deref());
    let month = query
        .month
        .as_deref()
        .and_then(|m| Some((m.to_owned(), month_window(m, &zone)?)));
    let window = month.as_ref().map(|(_, (_, start, end))| (*start, *end));
    let cursor = RowCursor::parse(query.after.as_deref());
    let ActivityPage { rows, next } = state
        .activity_page(id, row_type, window, cursor, ROWS_PER_PAGE)
        .await?;
    let rows = rows
        .iter()
        .map(|activity| Row::new(activity, lang, &zone, catalog))
        .collect();
    let month_code = month.as_ref().map_or("", |(code, _)| code.as_str());
    let filters = [
        ("lang", lang.code()),
        ("type", row_type.code()),
        ("month", month_code),
    ];
    let next_link = next.map(|next| {
        let code = next.code();
        let mut pairs = filters.to_vec();
        pairs.push(("after", &code));
        format!("{}#usage", link("/app", &pairs))
    });
    let newest_link = query
        .after
        .as_ref()
        .map(|_| format!("{}#usage", link("/app", &filters)));
    let csv_link = link("/app/usage.csv", &filters);

    let this_month = now.to_zoned(zone.clone()).date().first_of_month();
    let mut month_options = vec![(String::new(), lang.t("month-all"), month.is_none())];
    for back in 0..MONTHS_OFFERED {
        let Ok(first_day) = this_month.checked_sub(back.months()) else {
            break;
        };
        let code = first_day.strftime("%Y-%m").to_string();
        let selected = code == month_code;
        month_options.push((code, lang.month(first_day), selected));
    }
    let type_options = RowType::ALL
        .into_iter()
        .map(|t| (t.code(), lang.t(t.message()), t == row_type))
        .collect();
    let languages = [Lang::En, Lang::Zh]
        .into_iter()
        .map(|other| {
            let mut pairs = filters.to_vec();
            pairs[0] = ("lang", other.code());
            (other, link("/app", &pairs))
        })
        .collect();
    let zone_name = zone.iana_name().unwrap_or("UTC").to_owned();
    Ok(CreditsView {
        lang,
        css: STYLESHEET_PATH.as_str(),
        languages,
        membership,
        membership_class: match membership_status {
            MembershipStatus::Trial | MembershipStatus::Active => "member",
            MembershipStatus::None | MembershipStatus::Lapsed => "none",
        },
        total: lang.number(balance.total()),
        general: lang.number(balance.general.available),
        agent: lang.number(balance.agent.available),
        held: lang.number(balance.general.held.saturating_add(balance.agent.held)),
        frozen,
        frozen_amount: lang.number(balance.general.frozen),
        next_expiry,
        expiring,
        chart,
        chart_desc,
        days: table_days,
        type_options,
        month_options,
        zone_line: lang.t_with("times-in", &[("zone", zone_name.into())]),
        rows,
        next_link,
        newest_link,
        csv_link,
        account_line: lang.t_with("account-line", &[("account", id.to_string().into())]),
    })
}

#[derive(Template)]
#[template(path = "badge.html")]
struct BadgeView {
    lang: Lang,
    css: &'static str,
    total: String,
}

/// `GET /app/badge`: the total, for an iframe beside the profile picture.
async fn badge(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<PageQuery>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let ancestors = state.core.pages.badge_frame_ancestors.clone();
    let account = match signed_in(&state, jar, &query, lang, "/app/badge", &ancestors).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let view = match state.account_now(&account).await {
        Ok((account_now, due)) => {
            state.record_soon(&account, &due);
            BadgeView {
                lang,
                css: STYLESHEET_PATH.as_str(),
                total: lang.number(account_now.balance().total()),
            }
        }
        Err(_) => return signed_out(lang, &ancestors),
    };
    page(&view, StatusCode::OK, &ancestors)
}

/// `GET /app/usage.csv`: every row the page's filters select, as CSV (UTF-8 with a byte
/// order mark, so spreadsheet programs read the Chinese text right).
async fn usage_csv(
    State(state): State<AppState>,
    jar: CookieJar,
    Languages(accepted): Languages,
    Query(query): Query<PageQuery>,
) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), &accepted);
    let Some(id) = session(&state, &jar).await else {
        return signed_out(lang, "'none'");
    };
    match usage_rows_csv(&state, &id, lang, &query).await {
        Ok(body) => {
            let disposition = format!("attachment; filename=\"credits-{id}.csv\"");
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            (StatusCode::OK, headers, body).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

async fn usage_rows_csv(
    state: &AppState,
    id: &AccountId,
    lang: Lang,
    query: &PageQuery,
) -> Result<Vec<u8>, Problem> {
    let (account, _) = state.account_now(id).await?;
    let zone = account.time_zone().clone();
    let row_type = RowType::parse(query.row_type.as_deref());
    let window = query
        .month
        .as_deref()
        .and_then(|m| month_window(m, &zone))
        .map(|(_, start, end)| (start, end));
    let mut out = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
    let write_error = |e: csv::Error| Problem::internal(&e);
    out.write_record([
        "time",
        "type",
        "description",
        "detail",
        "status",
        "amount",
        "charged",
        "returned",
        "reference",
    ])
    .map_err(write_error)?;
    let mut cursor = RowCursor::default();
    loop {
        let page = state
            .activity_page(id, row_type, window, cursor, CSV_READ_ROWS)
            .await?;
        for activity in &page.rows {
            let row = Row::new(activity, lang, &zone, &state.core.catalog);
            out.write_record([
                row.when_plain.as_str(),
                row.kind,
                &inert(&row.title),
                &inert(row.detail.as_deref().unwrap_or("")),
                row.status.as_ref().map_or("", |s| s.0.as_str()),
                row.amount_plain.to_string().as_str(),
                row.charged_plain.to_string().as_str(),
                row.returned_plain.to_string().as_str(),
                &inert(row.reference.as_deref().unwrap_or("")),
            ])
            .map_err(write_error)?;
        }
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    out.into_inner()
        .map_err(|e| Problem::internal(&e.into_error()))
}

/// A text cell a spreadsheet program will not run as a formula: one that begins with
/// `=`, `+`, `-`, `@`, a tab or a carriage return (notes and job references come from
/// outside) gets a leading `'`, as OWASP's advice on CSV injection has it.
fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `GET /assets/{file}`: the stylesheet, at its content-named address.
async fn asset(Path(file): Path<String>) -> Response {
    if format!("/assets/{file}") != *STYLESHEET_PATH {
        return Problem::not_found("no such asset").into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// `GET /favicon.svg` (and `/favicon.ico`, which browsers ask for by themselves).
async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}
