//! The store's conformance tests: what any backend must do.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

mod backlog;
#[macro_use]
mod conformance;
mod events;
mod formats;
mod postgres;

use postgres::postgres_or_skip;
