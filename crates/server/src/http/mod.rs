//! The HTTP API of SPEC §6, one module per resource. Handlers are thin: they check the
//! caller, parse the request once into a typed [`Command`], hand it to the writer
//! (changes) or ask the store (reads), and encode the answer (`crate::dto`). Every route is registered together with its
//! OpenAPI description, so `/openapi.json` cannot drift from the router.

mod accounts;
mod admin;
mod audit;
mod cursor;
mod document;
mod events;
pub(crate) mod extract;
mod holds;
pub mod json;
pub mod observe;
mod purchases;
mod reconciliations;
mod views;

pub(crate) use accounts::{adjustment_of, audit_reason, grant_of, purchase_of};
pub(crate) use views::HoldFilter;

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware;
use axum::routing::get;
use creditd_ledger::{Account, AccountId, History, Refusal};
use creditd_store::IdempotencyKey;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::{BODY_DEADLINE, MAX_BODY_BYTES, Posted};

use crate::answer::{Answer, Problem};
use crate::auth::{Actor, Principal, Via};
use crate::command::{Command, Refused, Submission};
use crate::core::Core;
use crate::idempotency::Idempotency;
use crate::writer::Writer;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub core: Arc<Core>,
    /// The single writer.
    pub writer: Writer,
}

impl AppState {
    /// Sends `command` to the writer with the request's idempotency key, if any, audited
    /// if the caller is a person (`Principal::actor`).
    async fn apply<T>(&self, caller: &Principal, command: Command, posted: &Posted<T>) -> Answer {
        let reason = command.reason();
        self.apply_because(caller, command, posted, reason).await
    }

    /// As [`AppState::apply`], with the reason the request gave for the audit trail.
    async fn apply_because<T>(
        &self,
        caller: &Principal,
        command: Command,
        posted: &Posted<T>,
        reason: Option<String>,
    ) -> Answer {
        let idempotency = posted.idempotency_key.as_ref().map(|key| Idempotency {
            key: IdempotencyKey {
                owner: caller.owner(),
                key: key.clone(),
            },
            fingerprint: posted.fingerprint.clone(),
        });
        let actor = caller.actor(Via::Api, reason);
        self.submit(command, idempotency, actor).await
    }

    /// Sends `command` to the writer and encodes its reply.
    async fn submit(
        &self,
        command: Command,
        idempotency: Option<Idempotency>,
        actor: Option<Actor>,
    ) -> Answer {
        self.writer
            .submit(Submission {
                command,
                idempotency,
                background: false,
                actor,
            })
            .await
            .into()
    }

    /// The account as of now, and the time-based effects not yet recorded; 404 if it
    /// does not exist. An account with more effects due than one read catches up is
    /// 503 `catching_up`, and the writer is asked to catch it up a step.
    pub(crate) async fn account_now(&self, id: &AccountId) -> Result<(Account, History), Problem> {
        self.account_now_if_any(id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("account {id} does not exist")))
    }

    /// As [`AppState::account_now`], `None` if the account does not exist.
    pub(crate) async fn account_now_if_any(
        &self,
        id: &AccountId,
    ) -> Result<Option<(Account, History)>, Problem> {
        self.core.account_now(id).await.map_err(|refused| {
            if matches!(refused, Refused::Rule(Refusal::CatchingUp { .. })) {
                self.catch_up_soon(id);
            }
            Problem::from(&refused)
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "creditd", description = "The credits service of an AI creative platform (SPEC §6)."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::answer::Problem)),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The router of the whole API on `state`.
pub fn router(state: AppState) -> axum::Router {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::list_accounts))
        .routes(routes!(accounts::put_account, accounts::get_account))
        .routes(routes!(accounts::membership))
        .routes(routes!(accounts::daily_login))
        .routes(routes!(accounts::grant))
        .routes(routes!(accounts::purchase))
        .routes(routes!(accounts::hold))
        .routes(routes!(accounts::charge))
        .routes(routes!(accounts::adjust))
        .routes(routes!(accounts::token, accounts::revoke_tokens))
        .routes(routes!(accounts::balance))
        .routes(routes!(accounts::ledger))
        .routes(routes!(views::list_purchases))
        .routes(routes!(views::list_holds))
        .routes(routes!(views::usage))
        .routes(routes!(views::balance_history))
        .routes(routes!(purchases::get_purchase))
        .routes(routes!(reconciliations::reconcile))
        .routes(routes!(holds::get_hold))
        .routes(routes!(holds::capture))
        .routes(routes!(holds::release))
        .routes(routes!(audit::list_audit))
        .routes(routes!(admin::catalog))
        .routes(routes!(admin::create_key, admin::list_keys))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(admin::get_clock, admin::move_clock))
        .routes(routes!(admin::healthz))
        .routes(routes!(admin::metrics))
        .routes(routes!(events::list_events))
        .routes(routes!(events::get_event))
        .routes(routes!(events::redeliver))
        .routes(routes!(events::create_endpoint, events::list_endpoints))
        .routes(routes!(events::get_endpoint, events::delete_endpoint))
        .routes(routes!(events::rotate_secret))
        .routes(routes!(events::list_deliveries))
        .split_for_parts();
    document::list_accepted_values(&mut openapi, &state.core.catalog);
    document::state_ranges(&mut openapi, &state.core.catalog);
    document::spell_link_operation_ids(&mut openapi);
    let openapi = Arc::new(document::finish(&openapi, &state.core.catalog));
    router
        .route(
            "/openapi.json",
            get(move |extract::Caller(caller): extract::Caller| {
                let openapi = Arc::clone(&openapi);
                async move {
                    caller.require_key()?;
                    Ok::<_, Problem>(Json(openapi))
                }
            }),
        )
        .merge(crate::pages::router())
        .merge(crate::console::router())
        .fallback(|| async { Problem::not_found("no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this resource does not answer that method",
            )
        })
        .layer(middleware::from_fn(extract::refuse_oversized))
        .layer(tower::util::option_layer(cors(&state.core.cors_origins)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// CORS for account tokens used from the platform's frontend: only the configured
/// origins, none by default (then no CORS header is ever sent and preflights are not
/// answered). Admin and service keys belong on servers, but a browser cannot be told
/// apart by its key, so the origins are the operator's choice.
fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    use axum::http::{Method, header};
    (!origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT_LANGUAGE,
                HeaderName::from_static("idempotency-key"),
                observe::REQUEST_ID,
            ])
            .expose_headers([
                header::LOCATION,
                HeaderName::from_static("idempotent-replayed"),
                observe::REQUEST_ID,
            ])
            .max_age(CORS_MAX_AGE)
    })
}

/// The origins of `--cors-origins`: comma-separated `scheme://host[:port]`, each
/// exactly as a browser sends it in `Origin` (no path, no trailing slash).
pub fn parse_cors_origins(text: &str) -> Result<Vec<HeaderValue>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let serialized = url::Url::parse(origin)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .map(|url| url.origin().ascii_serialization());
            match serialized {
                Some(serialized) if serialized == origin => HeaderValue::from_str(origin)
                    .map_err(|_| format!("CORS origin {origin:?} is not a header value")),
                Some(serialized) => Err(format!(
                    "CORS origin {origin:?} is not an origin as browsers send it: write {serialized:?}"
                )),
                None => Err(format!(
                    "CORS origin {origin:?} is not an http(s) origin such as https://app.example.com"
                )),
            }
        })
        .collect()
}

/// How long a browser may cache a preflight's answer.
const CORS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);
