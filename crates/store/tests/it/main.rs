//! The store's conformance tests: what any backend must do.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

mod backlog;
mod conformance;
mod postgres;

use postgres::postgres_or_skip;
