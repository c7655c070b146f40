//! Integration tests of the ledger core through its public API.

#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects, missing_docs)]

mod simulation;
