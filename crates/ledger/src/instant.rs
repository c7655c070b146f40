//! How the core's instants take part in serde (`#[serde(with = "crate::instant")]`).
//!
//! Where the format is one people read (JSON: the API, and format 1 of the store) an
//! instant is jiff's RFC 3339 text, as a `Timestamp` serializes itself. Where it is not
//! (serde's `is_human_readable` is false: the store's binary format) it is its integer
//! nanoseconds since the Unix epoch: 9 bytes in postcard against 21 to 31 as text (a
//! length, then 20 characters, or 30 with nanoseconds), and neither printed nor parsed. Nanoseconds, not the microseconds the service's clock
//! ticks in, because an instant the rules derive (a validity of `PT0.5S` …) may be
//! finer, and a stored state must read back equal to the one that was stored.

use jiff::Timestamp;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes `at` as text or as integer nanoseconds (see the module's comment).
pub(crate) fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        at.serialize(serializer)
    } else {
        serializer.serialize_i128(at.as_nanosecond())
    }
}

/// Reads what [`serialize`] wrote.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Timestamp, D::Error> {
    if deserializer.is_human_readable() {
        Timestamp::deserialize(deserializer)
    } else {
        let nanoseconds = i128::deserialize(deserializer)?;
        Timestamp::from_nanosecond(nanoseconds).map_err(D::Error::custom)
    }
}

/// The same for an optional instant (`#[serde(with = "crate::instant::option")]`).
pub(crate) mod option {
    use super::Instant;
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes `at` as [`super::serialize`] does, or nothing.
    pub(crate) fn serialize<S: Serializer>(
        at: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(Instant).serialize(serializer)
    }

    /// Reads what [`serialize`] wrote.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<Instant>::deserialize(deserializer)?.map(|instant| instant.0))
    }
}

/// An instant that serializes as this module says, for places where serde needs a type
/// (inside an `Option`).
struct Instant(Timestamp);

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(Instant)
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Times {
        #[serde(with = "crate::instant")]
        at: Timestamp,
        #[serde(with = "crate::instant::option")]
        until: Option<Timestamp>,
        #[serde(with = "crate::instant::option")]
        never: Option<Timestamp>,
    }

    fn times() -> Times {
        Times {
            at: "2026-03-01T00:00:00.123456789Z".parse().expect("instant"),
            until: Some("1969-12-31T23:59:59Z".parse().expect("instant")),
            never: None,
        }
    }

    #[test]
    fn instants_are_rfc_3339_text_where_people_read_the_format() {
        let text = serde_json::to_string(&times()).expect("JSON");
        assert_eq!(
            text,
            r#"{"at":"2026-03-01T00:00:00.123456789Z","until":"1969-12-31T23:59:59Z","never":null}"#
        );
        assert_eq!(
            serde_json::from_str::<Times>(&text).expect("reads back"),
            times()
        );
    }

    /// In postcard (not human-readable) every instant is its nanoseconds, read back
    /// exactly, before the epoch too.
    #[test]
    fn instants_are_integer_nanoseconds_where_the_format_is_binary() {
        let times = times();
        let bytes = postcard::to_stdvec(&times).expect("postcard");
        let until = times.until.expect("set").as_nanosecond();
        assert_eq!(until, -1_000_000_000);
        let expected = [
            postcard::to_stdvec(&times.at.as_nanosecond()).expect("postcard"),
            postcard::to_stdvec(&Some(until)).expect("postcard"),
            postcard::to_stdvec(&None::<i128>).expect("postcard"),
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), 9 + 1 + 5 + 1);
        assert_eq!(
            postcard::from_bytes::<Times>(&bytes).expect("reads back"),
            times
        );
    }

    #[test]
    fn nanoseconds_past_the_range_of_instants_are_refused() {
        let far = postcard::to_stdvec(&i128::MAX).expect("postcard");
        #[derive(Debug, serde::Deserialize)]
        struct At {
            #[serde(with = "crate::instant")]
            _at: Timestamp,
        }
        assert!(postcard::from_bytes::<At>(&far).is_err());
    }
}
