//! Instants in the database: integer microseconds since the Unix epoch, UTC. Integers
//! compare and index the same way in every database; the server's clock ticks in whole
//! microseconds, so nothing is lost.

use jiff::Timestamp;

use crate::StoreError;

/// The instant as stored.
pub(crate) fn to_db(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// A stored instant read back.
pub(crate) fn from_db(micros: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(micros)
        .map_err(|e| StoreError::Corrupt(format!("instant {micros}: {e}")))
}
