//! `/v1/accounts/{id}/…`: accounts, membership, credits in, credits out, and the views.

use std::str::FromStr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use creditd_ledger::{
    AccountCommand, AccountId, AccountIdPrefix, Adjustment, Amount, CreditKind, EntryType, Expiry,
    Grant, GrantSource, LedgerQuery, MAX_PAGE, MAX_TEXT_LEN, OrderId, Payment, Purchase,
    PurchaseCredits, Refusal, Tier, Use, count_from_json, page_limit, parse_duration,
    parse_time_zone, whole_micros,
};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::cursor::Cursor;
use super::extract::{AccountPath, Caller, Posted};
use crate::answer::{Answer, Problem};
use crate::auth::{TOKEN_TTL_DEFAULT_SECONDS, TOKEN_TTL_MAX_SECONDS, Via};
use crate::command::Command;
use crate::dto::{
    AccountDto, AccountPageDto, AdjustmentDto, AdjustmentRequest, BalanceDto, BucketDto,
    ChargeRequest, DailyLoginDto, EntryDto, GrantRequest, HoldDto, HoldRequest, LedgerPageDto,
    MembershipRequest, NoFields, PurchaseDto, PurchaseRequest, PutAccountRequest, TokenDto,
    TokenRequest,
};

/// Create an account, or change its time zone.
#[utoipa::path(put, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = PutAccountRequest,
    responses((status = 201, description = "Created", body = AccountDto),
              (status = 200, description = "Updated", body = AccountDto)))]
pub async fn put_account(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<PutAccountRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let zone = posted
        .body
        .timezone
        .as_deref()
        .map(parse_time_zone)
        .transpose()?;
    let low_balance_threshold = posted
        .body
        .low_balance_threshold
        .map(|threshold| threshold.map(Amount::try_from).transpose())
        .transpose()?;
    // PUT is idempotent by itself: no Idempotency-Key bookkeeping.
    let command = Command::Account(
        id,
        AccountCommand::Open {
            time_zone: zone,
            low_balance_threshold,
        },
    );
    let actor = caller.actor(Via::Api, None);
    Ok(state.submit(command, None, actor).await)
}

/// An account and its membership.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "The platform's account id")),
    responses((status = 200, description = "The account", body = AccountDto)))]
pub async fn get_account(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
) -> Result<Answer, Problem> {
    caller.require_read(&id)?;
    let (account, due) = state.account_now(&id).await?;
    state.record_soon(&id, &due);
    Ok(Answer::json(
        StatusCode::OK,
        &AccountDto::new(&account, &state.core.catalog),
    ))
}

/// Which accounts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountListParams {
    /// Only ids that start with this (default: every account).
    prefix: Option<String>,
    /// Accounts per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    #[serde(default, deserialize_with = "super::cursor::given")]
    cursor: Option<String>,
}

/// Accounts by id prefix, in id order (SPEC §13; not for account tokens).
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts",
    params(AccountListParams),
    responses((status = 200, description = "A page of accounts", body = AccountPageDto)))]
pub async fn list_accounts(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<AccountListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_key()?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref().map(limit_number).transpose()?)?;
    let prefix = AccountIdPrefix::parse(params.prefix.as_deref().unwrap_or(""))?;
    let after = params
        .cursor
        .as_deref()
        .map(|text| AccountId::parse(&Cursor::Accounts.decode(text)?).map_err(Problem::from))
        .transpose()?;
    let page = state
        .core
        .store
        .accounts_page(&prefix, after.as_ref(), limit)
        .await
        .map_err(Problem::from)?;
    let full = page.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let accounts: Vec<AccountDto> = page
        .into_iter()
        .map(|stored| {
            AccountDto::new(
                &state.core.brought_towards_now(stored.account).0,
                &state.core.catalog,
            )
        })
        .collect();
    let next_cursor = accounts
        .last()
        .filter(|_| full)
        .map(|last| Cursor::Accounts.encode(&last.id));
    Ok(Answer::json(
        StatusCode::OK,
        &AccountPageDto {
            accounts,
            next_cursor,
        },
    ))
}

/// The membership actions, as requests name them.
pub const MEMBERSHIP_ACTIONS: [&str; 3] = ["start_trial", "activate", "cancel"];

/// Start a trial, activate or renew a paid membership, or cancel.
#[utoipa::path(post, path = "/v1/accounts/{id}/membership", tag = "accounts",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = MembershipRequest,
    responses((status = 200, description = "The account", body = AccountDto)))]
pub async fn membership(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<MembershipRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let request = &posted.body;
    let plan = request.plan.clone();
    let action = match request.action.as_str() {
        "start_trial" => AccountCommand::StartTrial { plan },
        "activate" => AccountCommand::Activate {
            plan,
            period_end: request.period_end.ok_or(Refusal::PeriodEndRequired)?,
        },
        "cancel" => AccountCommand::Cancel,
        other => {
            return Err(Problem::invalid(format!(
                "action {other:?} is none of {}",
                MEMBERSHIP_ACTIONS.join(", ")
            )));
        }
    };
    Ok(state
        .apply(&caller, Command::Account(id, action), &posted)
        .await)
}

/// The daily login: agent credits once per local day.
#[utoipa::path(post, path = "/v1/accounts/{id}/daily-login", tag = "credits in",
    params(("id" = String, Path, description = "The platform's account id")),
    responses((status = 200, description = "What was granted", body = DailyLoginDto)))]
pub async fn daily_login(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<NoFields>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let command = Command::Account(id, AccountCommand::DailyLogin);
    Ok(state.apply(&caller, command, &posted).await)
}

/// Grant promotion or compensation credits.
#[utoipa::path(post, path = "/v1/accounts/{id}/grants", tag = "credits in",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = GrantRequest,
    responses((status = 201, description = "The new bucket", body = BucketDto)))]
pub async fn grant(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<GrantRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let request = &posted.body;
    let grant = grant_of(request)?;
    let reason = audit_reason(request.reason.as_deref())?;
    let command = Command::Account(id, AccountCommand::Grant(grant));
    Ok(state.apply_because(&caller, command, &posted, reason).await)
}

/// Record a purchase (members only); the same order again answers 200 with the first
/// answer and grants nothing.
#[utoipa::path(post, path = "/v1/accounts/{id}/purchases", tag = "credits in",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = PurchaseRequest,
    responses((status = 201, description = "Recorded", body = PurchaseDto),
              (status = 200, description = "Recorded before", body = PurchaseDto)))]
pub async fn purchase(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<PurchaseRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let purchase = purchase_of(&posted.body)?;
    let reason = audit_reason(posted.body.reason.as_deref())?;
    let command = Command::Account(id, AccountCommand::Purchase(purchase));
    Ok(state.apply_because(&caller, command, &posted, reason).await)
}

/// Reserve the cost of a use before the work.
#[utoipa::path(post, path = "/v1/accounts/{id}/holds", tag = "credits out",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = HoldRequest,
    responses((status = 201, description = "The pending hold", body = HoldDto,
        links(
            ("GetHold" = (operation_id = "get_hold", parameters(("hold_id" = "$response.body#/id")))),
            ("CaptureHold" = (operation_id = "capture", parameters(("hold_id" = "$response.body#/id")))),
            ("ReleaseHold" = (operation_id = "release", parameters(("hold_id" = "$response.body#/id"))))))))]
pub async fn hold(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<HoldRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let r = &posted.body;
    let intended = use_of(
        &r.feature,
        r.quantity,
        r.tier.as_deref(),
        r.ttl_seconds,
        &r.reference,
    )?;
    let command = Command::Account(id, AccountCommand::PlaceHold(intended));
    Ok(state.apply(&caller, command, &posted).await)
}

/// Pay for a use in one step: a hold captured at once.
#[utoipa::path(post, path = "/v1/accounts/{id}/charges", tag = "credits out",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = ChargeRequest,
    responses((status = 201, description = "The captured hold", body = HoldDto,
        links(("GetHold" = (operation_id = "get_hold", parameters(("hold_id" = "$response.body#/id"))))))))]
pub async fn charge(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<ChargeRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let r = &posted.body;
    let intended = use_of(
        &r.feature,
        r.quantity,
        r.tier.as_deref(),
        None,
        &r.reference,
    )?;
    let command = Command::Account(id, AccountCommand::Charge(intended));
    Ok(state.apply(&caller, command, &posted).await)
}

/// An admin's adjustment, with a reason.
#[utoipa::path(post, path = "/v1/accounts/{id}/adjustments", tag = "credits in",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = AdjustmentRequest,
    responses((status = 201, description = "Its ledger entry", body = AdjustmentDto)))]
pub async fn adjust(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<AdjustmentRequest>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let adjustment = adjustment_of(&posted.body)?;
    let command = Command::Account(id, AccountCommand::Adjust(adjustment));
    Ok(state.apply(&caller, command, &posted).await)
}

/// A read-only token for this account (for the end user's page).
#[utoipa::path(post, path = "/v1/accounts/{id}/tokens", tag = "accounts",
    params(("id" = String, Path, description = "The platform's account id")),
    request_body = TokenRequest,
    responses((status = 201, description = "The token", body = TokenDto)))]
pub async fn token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    posted: Posted<TokenRequest>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let ttl = posted.body.ttl_seconds.unwrap_or(TOKEN_TTL_DEFAULT_SECONDS);
    if !(1..=TOKEN_TTL_MAX_SECONDS).contains(&ttl) {
        return Err(Problem::invalid(format!(
            "ttl_seconds must be between 1 and {TOKEN_TTL_MAX_SECONDS}"
        )));
    }
    let command = Command::Token {
        account: id,
        ttl: SignedDuration::from_secs(ttl),
        issued_by: caller.owner(),
    };
    Ok(state.apply(&caller, command, &posted).await)
}

/// Revoke every token of this account issued until now: the user's open pages need a
/// new link.
#[utoipa::path(delete, path = "/v1/accounts/{id}/tokens", tag = "accounts",
    params(("id" = String, Path, description = "The platform's account id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    state.account_now(&id).await?;
    let actor = caller.actor(Via::Api, None);
    Ok(state.submit(Command::RevokeTokens(id), None, actor).await)
}

/// The balance now.
#[utoipa::path(get, path = "/v1/accounts/{id}/balance", tag = "views",
    params(("id" = String, Path, description = "The platform's account id")),
    responses((status = 200, description = "The balance", body = BalanceDto)))]
pub async fn balance(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
) -> Result<Answer, Problem> {
    caller.require_read(&id)?;
    let (account, due) = state.account_now(&id).await?;
    state.record_soon(&id, &due);
    Ok(Answer::json(
        StatusCode::OK,
        &BalanceDto::new(&id, &account.balance()),
    ))
}

/// Which ledger entries to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// Entries per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    #[serde(default, deserialize_with = "super::cursor::given")]
    cursor: Option<String>,
    /// Only entries of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    entry_type: Option<String>,
    /// Entries at or after this instant.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Entries before this instant.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// Where every credit went, newest first.
#[utoipa::path(get, path = "/v1/accounts/{id}/ledger", tag = "views",
    params(("id" = String, Path, description = "The platform's account id"), LedgerParams),
    responses((status = 200, description = "A page of entries", body = LedgerPageDto)))]
pub async fn ledger(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AccountPath(id): AccountPath,
    params: Result<Query<LedgerParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_read(&id)?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = params.limit.as_deref().map(limit_number).transpose()?;
    let entry_type = params
        .entry_type
        .as_deref()
        .map(|text| {
            EntryType::from_str(text)
                .map_err(|_| Problem::invalid(format!("type {text:?} is no ledger entry type")))
        })
        .transpose()?;
    let since = params.since.as_deref().map(instant).transpose()?;
    let until = params.until.as_deref().map(instant).transpose()?;
    let query = LedgerQuery::new(limit, entry_type, since, until)?;
    let before = params
        .cursor
        .as_deref()
        .map(|text| {
            Cursor::Ledger
                .decode(text)?
                .parse::<u64>()
                .map_err(|_| Problem::invalid("cursor is not one this service gave"))
        })
        .transpose()?;

    // The ledger shows time's effects (expiries, distributions) as entries: record any
    // that are due before reading.
    if state.record_due(&id).await?.is_none() {
        return Err(Problem::not_found(format!("account {id} does not exist")));
    }
    let page = state
        .core
        .store
        .ledger_page(&id, &query, before)
        .await
        .map_err(Problem::from)?;
    let full = page.len() == usize::try_from(query.limit()).unwrap_or(usize::MAX);
    let next_cursor = page
        .last()
        .filter(|_| full)
        .map(|last| Cursor::Ledger.encode(&last.seq.to_string()));
    let dto = LedgerPageDto {
        entries: page
            .iter()
            .map(|stored| EntryDto::new(&id, stored.seq, &stored.entry))
            .collect(),
        next_cursor,
    };
    Ok(Answer::json(StatusCode::OK, &dto))
}

/// The grant a request asks for (the console's form makes the same request).
pub(crate) fn grant_of(request: &GrantRequest) -> Result<Grant, Problem> {
    let source = GrantSource::ALL
        .into_iter()
        .find(|source| source.as_str() == request.source)
        .ok_or_else(|| {
            let names = GrantSource::ALL.map(GrantSource::as_str);
            Problem::invalid(format!(
                "source {:?} cannot be granted: use {}",
                request.source,
                names.join(" or ")
            ))
        })?;
    let expiry = match (&request.expires_at, &request.valid_for) {
        (Some(_), Some(_)) => return Err(Refusal::ExpiryTwice.into()),
        (Some(at), None) => Expiry::At(*at),
        (None, Some(text)) => Expiry::ValidFor(parse_duration(text)?),
        (None, None) => Expiry::Never,
    };
    Ok(Grant {
        kind: kind(&request.kind)?,
        amount: Amount::try_from(request.amount)?,
        source,
        expiry,
        campaign: request.campaign.clone(),
        note: request.note.clone(),
    })
}

/// The purchase a request records (the console's form makes the same request).
pub(crate) fn purchase_of(request: &PurchaseRequest) -> Result<Purchase, Problem> {
    let credits = match (&request.package, request.credits) {
        (Some(name), None) => PurchaseCredits::Package(name.clone()),
        (None, Some(credits)) => PurchaseCredits::Credits(Amount::try_from(credits)?),
        _ => return Err(Refusal::PackageOrCredits.into()),
    };
    let paid = request
        .paid
        .as_ref()
        .map(|paid| Payment::new(paid.amount_minor, &paid.currency))
        .transpose()?;
    Ok(Purchase {
        order_id: OrderId::parse(&request.order_id)?,
        credits,
        paid_at: request.paid_at,
        paid,
    })
}

/// The adjustment a request asks for (the console's form makes the same request).
pub(crate) fn adjustment_of(request: &AdjustmentRequest) -> Result<Adjustment, Problem> {
    Ok(Adjustment {
        amount: request.amount,
        kind: kind(&request.kind)?,
        reason: request.reason.clone(),
    })
}

/// A request's reason for the audit trail: at most `MAX_TEXT_LEN` characters, blank
/// for none.
pub(crate) fn audit_reason(text: Option<&str>) -> Result<Option<String>, Problem> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(reason) if reason.chars().count() > MAX_TEXT_LEN => Err(Problem::invalid(format!(
            "reason must be at most {MAX_TEXT_LEN} characters"
        ))),
        reason => Ok(reason.map(str::to_owned)),
    }
}

/// The use a hold or charge request asks for; the core checks the ranges.
fn use_of(
    feature: &str,
    quantity: Option<i64>,
    tier_name: Option<&str>,
    ttl_seconds: Option<i64>,
    reference: &Option<String>,
) -> Result<Use, Problem> {
    Ok(Use {
        feature: feature.to_owned(),
        quantity: quantity.map(count_from_json),
        tier: tier_name.map(tier).transpose()?,
        ttl_seconds: ttl_seconds.map(count_from_json),
        reference: reference.clone(),
    })
}

/// A page size as a query gives it: text that is no number is out of range.
pub(super) fn limit_number(text: &str) -> Result<u32, Refusal> {
    text.parse::<u32>()
        .map_err(|_| Refusal::PageLimitOutOfRange { max: MAX_PAGE })
}

/// An instant of a query, in whole microseconds as stored.
pub(super) fn instant(text: &str) -> Result<Timestamp, Problem> {
    text.parse()
        .map(whole_micros)
        .map_err(|_| Problem::invalid(format!("{text:?} is not an RFC 3339 instant")))
}

fn kind(text: &str) -> Result<CreditKind, Problem> {
    CreditKind::from_str(text)
        .map_err(|_| Problem::invalid(format!("kind {text:?} is neither general nor agent")))
}

fn tier(text: &str) -> Result<Tier, Problem> {
    Tier::from_str(text)
        .map_err(|_| Problem::invalid(format!("tier {text:?} is neither general nor premium")))
}
