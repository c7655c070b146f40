//! The HTTP API through the router (`oneshot`), endpoint by endpoint.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
