//! Answers and problems.
//!
//! Every answer a command gives is an [`Answer`]: a status and a JSON body, complete
//! before it is sent, so that an idempotency record can store it and replay it byte for
//! byte. Errors are RFC 9457 problems ([`Problem`]) with a stable `code`; 5xx problems say
//! nothing about the inside (that goes to the log).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use creditd_ledger::Refusal;
use serde::Serialize;

use crate::clock::ClockError;
use crate::command::Refused;

/// Media type of problem answers.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A complete answer: status and JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body (empty for 204).
    pub body: String,
    /// Whether this replays an earlier answer to the same idempotency key.
    pub replayed: bool,
}

impl Answer {
    /// An answer with `body` serialized as JSON.
    pub fn json(status: StatusCode, body: &impl Serialize) -> Answer {
        match serde_json::to_string(body) {
            Ok(body) => Answer {
                status,
                body,
                replayed: false,
            },
            Err(error) => Problem::internal(&error).into(),
        }
    }

    /// 204 No Content.
    pub fn no_content() -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: String::new(),
            replayed: false,
        }
    }

    /// Whether the answer is a server error (never stored for replay: a retry may succeed).
    pub fn is_server_error(&self) -> bool {
        self.status.is_server_error()
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let content_type = if self.status.is_client_error() || self.status.is_server_error() {
            PROBLEM_JSON
        } else {
            "application/json"
        };
        let mut response = if self.status == StatusCode::NO_CONTENT {
            self.status.into_response()
        } else {
            (
                self.status,
                [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
                self.body,
            )
                .into_response()
        };
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Unavailable for now: a busy database, or an account still catching up.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"creditd\""),
            );
        }
        if self.replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// An RFC 9457 problem with creditd's stable `code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    #[serde(serialize_with = "status_number")]
    #[schema(value_type = u16)]
    status: StatusCode,
    /// The stable code clients match on.
    pub code: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    required: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    available: Option<u64>,
}

fn status_number<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    /// The explanation, in words.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A problem with this status, code and explanation.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status,
            code,
            detail: detail.into(),
            required: None,
            available: None,
        }
    }

    /// 400: the body is not JSON at all.
    pub fn unparsable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 422: a parsed request that breaks a rule.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
    }

    /// 401.
    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid key as `Authorization: Bearer <key>`",
        )
    }

    /// 403: the key may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 409: the same idempotency key (or order id) with a different request.
    pub fn idempotency_conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "idempotency_conflict", detail)
    }

    /// 413.
    pub fn payload_too_large(limit: usize) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    /// 408: the body did not arrive in time.
    pub fn body_timeout() -> Problem {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request's body did not arrive in time; send it again",
        )
    }

    /// The problem a body that could not be read answers: 413 over the limit, 408 when it
    /// stopped arriving, 400 otherwise.
    pub fn body_unreadable(error: &(dyn std::error::Error + 'static)) -> Problem {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if error.is::<http_body_util::LengthLimitError>() {
                return Problem::payload_too_large(crate::http::MAX_BODY_BYTES);
            }
            if error.is::<tower_http::timeout::TimeoutError>() {
                return Problem::body_timeout();
            }
            cause = error.source();
        }
        Problem::unparsable(format!("the body could not be read: {error}"))
    }

    /// 500: a bug or corrupt data; the detail stays in the log.
    pub fn internal(error: &dyn std::fmt::Display) -> Problem {
        tracing::error!(%error, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside creditd; nothing was changed",
        )
    }

    /// 503: the database failed; the request may be retried.
    pub fn unavailable(error: &dyn std::fmt::Display) -> Problem {
        tracing::error!(%error, "database unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; retry the request (with its Idempotency-Key)",
        )
    }
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Problem {
        let status = match refusal {
            Refusal::InsufficientCredits { .. } => StatusCode::PAYMENT_REQUIRED,
            Refusal::MembersOnly => StatusCode::FORBIDDEN,
            Refusal::HoldNotPending(_) | Refusal::OrderConflict(_) => StatusCode::CONFLICT,
            Refusal::UnknownHold(_) | Refusal::UnknownAccount(_) => StatusCode::NOT_FOUND,
            Refusal::CatchingUp { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let mut problem = Problem::new(status, refusal.code(), refusal.to_string());
        if let Refusal::InsufficientCredits {
            required,
            available,
        } = refusal
        {
            problem.required = Some(required);
            problem.available = Some(available);
        }
        problem
    }
}

impl From<&creditd_store::StoreError> for Problem {
    /// Corrupt data is a bug (500); anything else the database did may pass (503).
    fn from(error: &creditd_store::StoreError) -> Problem {
        match error {
            creditd_store::StoreError::Corrupt(_) => Problem::internal(error),
            _ => Problem::unavailable(error),
        }
    }
}

impl From<creditd_store::StoreError> for Problem {
    fn from(error: creditd_store::StoreError) -> Problem {
        Problem::from(&error)
    }
}

impl From<&Refused> for Problem {
    fn from(refused: &Refused) -> Problem {
        match refused {
            Refused::Rule(refusal) => Problem::from(refusal.clone()),
            Refused::Clock(ClockError::Backwards(back)) => {
                Problem::new(StatusCode::CONFLICT, "clock_backwards", back.to_string())
            }
            Refused::Clock(ClockError::NotATestClock) => {
                Problem::not_found("the service runs on the system clock")
            }
            Refused::Clock(ClockError::OutOfRange) => {
                Problem::invalid("the target time is out of range")
            }
            Refused::Store(error) => Problem::from(&**error),
            Refused::Stopped => Problem::unavailable(&"the writer has stopped"),
        }
    }
}

impl From<Problem> for Answer {
    fn from(problem: Problem) -> Answer {
        Answer::json(problem.status, &problem)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        Answer::from(self).into_response()
    }
}
