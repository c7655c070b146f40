//! `/v1/events` and `/v1/webhook-endpoints` (SPEC §9): events to poll, the endpoints
//! they are pushed to, and what became of each attempt.

use std::str::FromStr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use creditd_ledger::{
    Account, AccountCommand, AccountId, EventType, History, MAX_TEXT_LEN, page_limit,
};
use creditd_store::{EventFilter, WebhookEndpoint};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::accounts::limit_number;
use super::cursor::Cursor;
use super::extract::{Caller, Posted};
use crate::answer::{Answer, Problem};
use crate::auth::Via;
use crate::command::{Command, NewEndpoint, Submission};
use crate::core::WebhookDestinations;
use crate::dto::{
    AttemptDto, AttemptPageDto, EndpointDto, EndpointListDto, EndpointRequest, EventDto,
    EventPageDto, RedeliverRequest, RedeliveryDto, SecretDto, parse_event_ref,
};
use crate::idempotency::Reply;

/// Most webhook endpoints at once: each event is handed to every endpoint that
/// receives it, so the fan-out of one event stays small.
pub const MAX_ENDPOINTS: usize = 50;
/// Longest endpoint URL: any real one fits, and it is sent on every delivery.
pub const MAX_URL_LEN: usize = 2_048;

/// Which events to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// From a previous page's `next_cursor` (default: the oldest kept).
    #[serde(default, deserialize_with = "super::cursor::given")]
    after: Option<String>,
    /// Events per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events of this account.
    account_id: Option<String>,
}

fn event_type(text: &str) -> Result<EventType, Problem> {
    EventType::from_str(text).map_err(|_| {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        Problem::invalid(format!(
            "type {text:?} is no event type: use one of {}",
            names.join(", ")
        ))
    })
}

fn position_cursor(position: u64) -> String {
    Cursor::Events.encode(&position.to_string())
}

fn position_of(text: &str) -> Result<u64, Problem> {
    Cursor::Events
        .decode(text)?
        .parse()
        .map_err(|_| Problem::invalid("cursor is not one this service gave"))
}

impl AppState {
    /// Records the time effects due on `account` (and so their events) before a read
    /// that lists stored rows: SPEC §9, a read of the account records them at once.
    /// Answers the account as of now (`None` when it does not exist), so a read that
    /// needs it reads it once.
    pub(crate) async fn record_due(&self, account: &AccountId) -> Result<Option<Account>, Problem> {
        let Some((now, due)) = self.account_now_if_any(account).await? else {
            return Ok(None);
        };
        if due.entries.is_empty() && due.events.is_empty() {
            return Ok(Some(now));
        }
        let submission = Submission {
            command: Command::Account(account.clone(), AccountCommand::CatchUp),
            idempotency: None,
            background: false,
            actor: None,
        };
        match self.writer.submit(submission).await {
            Reply::Done(Err(refused)) => Err(Problem::from(&refused)),
            Reply::Done(Ok(_)) | Reply::Answer(_) => Ok(Some(now)),
        }
    }
}

impl AppState {
    /// Has the writer record the time effects a read found due (`due`, what catching
    /// up in memory produced), without waiting for it: the read answers from memory at
    /// once, and the events appear within the writer's next batch.
    pub(crate) fn record_soon(&self, account: &AccountId, due: &History) {
        if due.entries.is_empty() && due.events.is_empty() {
            return;
        }
        self.catch_up_soon(account);
    }

    /// Has the writer catch `account` up (a step, if it is far behind), without waiting.
    pub(crate) fn catch_up_soon(&self, account: &AccountId) {
        let writer = self.writer.clone();
        let submission = Submission {
            command: Command::Account(account.clone(), AccountCommand::CatchUp),
            idempotency: None,
            background: true,
            actor: None,
        };
        tokio::spawn(async move { writer.submit(submission).await });
    }
}

/// Events, oldest first, from where the last page ended: poll with `after` set to the
/// `next_cursor` you were given, and nothing is missed.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventParams),
    responses((status = 200, description = "A page of events", body = EventPageDto)))]
pub async fn list_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref().map(limit_number).transpose()?)?;
    let filter = EventFilter {
        event_type: params.event_type.as_deref().map(event_type).transpose()?,
        account: params
            .account_id
            .as_deref()
            .map(AccountId::parse)
            .transpose()?,
    };
    let after = params.after.as_deref().map(position_of).transpose()?;
    if let Some(account) = &filter.account {
        state.record_due(account).await?;
    }
    let page = state
        .core
        .store
        .events_page(after, &filter, limit)
        .await
        .map_err(Problem::from)?;
    let next = page
        .last()
        .map(|e| e.position)
        .or(after)
        .unwrap_or_default();
    let events = page
        .iter()
        .map(|stored| EventDto::new(&stored.event))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Problem::internal(&error))?;
    Ok(Answer::json(
        StatusCode::OK,
        &EventPageDto {
            events,
            next_cursor: position_cursor(next),
        },
    ))
}

async fn find_event(state: &AppState, id: &str) -> Result<EventDto, Problem> {
    let missing = || Problem::not_found(format!("no event {id:?}"));
    let (account, sequence) = parse_event_ref(id).ok_or_else(missing)?;
    state.record_due(&account).await?;
    let stored = state
        .core
        .store
        .event(&account, sequence)
        .await
        .map_err(Problem::from)?
        .ok_or_else(missing)?;
    EventDto::new(&stored.event).map_err(|error| Problem::internal(&error))
}

/// One event.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path, description = "The event's id (`ev{n}_{account}`)")),
    responses((status = 200, description = "The event", body = EventDto)))]
pub async fn get_event(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(event_id): Path<String>,
) -> Result<Answer, Problem> {
    caller.require_write()?;
    Ok(Answer::json(
        StatusCode::OK,
        &find_event(&state, &event_id).await?,
    ))
}

/// Deliver an event again: a new round of attempts to one endpoint, or to every
/// endpoint that receives its type.
#[utoipa::path(post, path = "/v1/events/{event_id}/redeliver", tag = "events",
    params(("event_id" = String, Path, description = "The event's id (`ev{n}_{account}`)")),
    request_body = RedeliverRequest,
    responses((status = 202, description = "Scheduled", body = RedeliveryDto)))]
pub async fn redeliver(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(event_id): Path<String>,
    posted: Posted<RedeliverRequest>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let event = find_event(&state, &event_id).await?;
    let event_type = event_type(&event.event_type)?;
    let endpoints: Vec<String> = match &posted.body.endpoint_id {
        Some(id) => {
            let endpoint = live_endpoint(&state, id).await?;
            vec![endpoint.id]
        }
        None => state
            .core
            .store
            .webhook_endpoints()
            .await
            .map_err(Problem::from)?
            .into_iter()
            .filter(|endpoint| endpoint.receives(event_type))
            .map(|endpoint| endpoint.id)
            .collect(),
    };
    let account = AccountId::parse(&event.account_id)?;
    let command = Command::Redeliver {
        account,
        sequence: event.sequence,
        endpoints,
    };
    Ok(state.apply(&caller, command, &posted).await)
}

/// An endpoint that exists and is not deleted; 404 otherwise.
async fn live_endpoint(state: &AppState, id: &str) -> Result<WebhookEndpoint, Problem> {
    state
        .core
        .store
        .webhook_endpoint(id)
        .await
        .map_err(Problem::from)?
        .filter(|endpoint| endpoint.deleted_at.is_none())
        .ok_or_else(|| Problem::not_found(format!("no webhook endpoint {id:?}")))
}

/// The request's endpoint, checked: an http or https URL with a host the service lets
/// endpoints point at, known types.
fn new_endpoint(
    request: &EndpointRequest,
    destinations: WebhookDestinations,
) -> Result<NewEndpoint, Problem> {
    if request.url.len() > MAX_URL_LEN {
        return Err(Problem::invalid(format!(
            "url must be at most {MAX_URL_LEN} characters"
        )));
    }
    let url = url::Url::parse(&request.url)
        .map_err(|error| Problem::invalid(format!("url is not a URL: {error}")))?;
    let host = url.host().filter(|host| !host.to_string().is_empty());
    let Some(host) = host.filter(|_| matches!(url.scheme(), "http" | "https")) else {
        return Err(Problem::invalid(
            "url must be an http or https URL with a host",
        ));
    };
    if !destinations.allows(&host) {
        return Err(Problem::invalid(
            "url must point at this machine (localhost): this service runs with \
             --webhook-destinations loopback",
        ));
    }
    let event_types = match &request.event_types {
        None => None,
        Some(names) if names.is_empty() => {
            return Err(Problem::invalid(
                "event_types must name at least one type; leave it out for every type",
            ));
        }
        Some(names) => {
            let mut types = names
                .iter()
                .map(|name| event_type(name))
                .collect::<Result<Vec<_>, _>>()?;
            types.sort_by_key(|t| EventType::ALL.iter().position(|all| all == t));
            types.dedup();
            Some(types)
        }
    };
    if let Some(description) = &request.description
        && description.chars().count() > MAX_TEXT_LEN
    {
        return Err(Problem::invalid(format!(
            "description must be at most {MAX_TEXT_LEN} characters"
        )));
    }
    Ok(NewEndpoint {
        url: url.to_string(),
        event_types,
        description: request.description.clone(),
    })
}

/// Register an endpoint for webhooks; its signing secret is shown in this answer (and
/// in replays of it) only.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "events",
    request_body = EndpointRequest,
    responses((status = 201, description = "The endpoint, with its secret", body = EndpointDto,
        links(
            ("GetEndpoint" = (operation_id = "get_endpoint", parameters(("endpoint_id" = "$response.body#/id")))),
            ("ListDeliveries" = (operation_id = "list_deliveries", parameters(("endpoint_id" = "$response.body#/id")))),
            ("RotateSecret" = (operation_id = "rotate_secret", parameters(("endpoint_id" = "$response.body#/id")))),
            ("DeleteEndpoint" = (operation_id = "delete_endpoint", parameters(("endpoint_id" = "$response.body#/id"))))))))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    Caller(caller): Caller,
    posted: Posted<EndpointRequest>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let new = new_endpoint(&posted.body, state.core.webhook_destinations)?;
    let live = state
        .core
        .store
        .webhook_endpoints()
        .await
        .map_err(Problem::from)?;
    if live.len() >= MAX_ENDPOINTS {
        return Err(Problem::invalid(format!(
            "there are {MAX_ENDPOINTS} endpoints already, the most there may be: delete one first"
        )));
    }
    Ok(state
        .apply(&caller, Command::CreateEndpoint(new), &posted)
        .await)
}

/// The webhook endpoints, without their secrets.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "events",
    responses((status = 200, description = "The endpoints", body = EndpointListDto)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let endpoints = state
        .core
        .store
        .webhook_endpoints()
        .await
        .map_err(Problem::from)?;
    let dto = EndpointListDto {
        endpoints: endpoints
            .iter()
            .map(|e| EndpointDto::new(e, None))
            .collect(),
    };
    Ok(Answer::json(StatusCode::OK, &dto))
}

/// One endpoint, without its secret.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{endpoint_id}", tag = "events",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The endpoint", body = EndpointDto)))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(endpoint_id): Path<String>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let endpoint = live_endpoint(&state, &endpoint_id).await?;
    Ok(Answer::json(
        StatusCode::OK,
        &EndpointDto::new(&endpoint, None),
    ))
}

/// Delete an endpoint: no delivery to it starts after this.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{endpoint_id}", tag = "events",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(endpoint_id): Path<String>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let endpoint = live_endpoint(&state, &endpoint_id).await?;
    let actor = caller.actor(Via::Api, None);
    Ok(state
        .submit(Command::DeleteEndpoint(endpoint), None, actor)
        .await)
}

/// A new signing secret; the old one stops signing at once.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{endpoint_id}/rotate-secret", tag = "events",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The new secret", body = SecretDto)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(endpoint_id): Path<String>,
    posted: Posted<crate::dto::NoFields>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let endpoint = live_endpoint(&state, &endpoint_id).await?;
    Ok(state
        .apply(&caller, Command::RotateSecret(endpoint), &posted)
        .await)
}

/// Which attempts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptParams {
    /// Attempts per page, 1 … 500 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From a previous page's `next_cursor`.
    #[serde(default, deserialize_with = "super::cursor::given")]
    cursor: Option<String>,
}

/// An endpoint's delivery attempts, newest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{endpoint_id}/deliveries", tag = "events",
    params(("endpoint_id" = String, Path, description = "The endpoint's id"), AttemptParams),
    responses((status = 200, description = "A page of attempts", body = AttemptPageDto)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(endpoint_id): Path<String>,
    params: Result<Query<AttemptParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Answer, Problem> {
    caller.require_admin()?;
    let Query(params) = params.map_err(|e| Problem::invalid(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref().map(limit_number).transpose()?)?;
    let before = params
        .cursor
        .as_deref()
        .map(|text| {
            Cursor::Deliveries
                .decode(text)?
                .parse::<u64>()
                .map_err(|_| Problem::invalid("cursor is not one this service gave"))
        })
        .transpose()?;
    // A deleted endpoint is gone here too, as from GET (its attempts are purged with
    // their events).
    live_endpoint(&state, &endpoint_id).await?;
    let page = state
        .core
        .store
        .attempts_page(&endpoint_id, before, limit)
        .await
        .map_err(Problem::from)?;
    let full = page.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let dto = AttemptPageDto {
        deliveries: page.iter().map(AttemptDto::from).collect(),
        next_cursor: page
            .last()
            .filter(|_| full)
            .map(|last| Cursor::Deliveries.encode(&last.number.to_string())),
    };
    Ok(Answer::json(StatusCode::OK, &dto))
}
