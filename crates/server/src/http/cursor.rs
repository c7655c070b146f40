//! Page cursors. A cursor is opaque to clients: the base64 of a tag naming what it pages
//! through and the position of the last row shown, so the position's form can change
//! without clients noticing, and a cursor of one list is refused by another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::answer::Problem;

/// What a cursor pages through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// An account's ledger: the position is the store's position of the last entry.
    Ledger,
    /// Accounts by id: the position is the last account id.
    Accounts,
    /// Events in commit order: the position of the last event.
    Events,
    /// An endpoint's delivery attempts: the number of the last attempt.
    Deliveries,
    /// An account's holds or generations: the number of the last hold.
    Holds,
    /// An account's purchases: the last one's recording time (microseconds) and order id.
    Purchases,
    /// The audit trail: the number of the last record.
    Audit,
}

/// A cursor parameter as given: an empty one (`cursor=`, as form builders send an empty
/// field) is no cursor, the start of the list.
pub fn given<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()))
}

impl Cursor {
    fn tag(self) -> &'static str {
        match self {
            Cursor::Ledger => "v1:",
            Cursor::Accounts => "a1:",
            Cursor::Events => "e1:",
            Cursor::Deliveries => "d1:",
            Cursor::Holds => "h1:",
            Cursor::Purchases => "p1:",
            Cursor::Audit => "u1:",
        }
    }

    /// The cursor after `position`.
    pub fn encode(self, position: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}{position}", self.tag()))
    }

    /// The position a cursor of this list names.
    pub fn decode(self, text: &str) -> Result<String, Problem> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| Some(text.strip_prefix(self.tag())?.to_owned()))
            .ok_or_else(|| Problem::invalid("cursor is not one this service gave for this list"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_only_for_its_own_list() {
        let cursor = Cursor::Accounts.encode("user-10");
        assert_eq!(
            Cursor::Accounts.decode(&cursor).ok().as_deref(),
            Some("user-10")
        );
        assert!(Cursor::Ledger.decode(&cursor).is_err());
        assert!(Cursor::Ledger.decode("not base64!").is_err());
        // The ledger's cursors keep the form clients already hold.
        assert_eq!(Cursor::Ledger.encode("42"), "djE6NDI");
    }
}
