//! Events and webhook deliveries as both databases keep them: the columns of their
//! rows, decoded and checked here whichever database they came from, and the rules of
//! the delivery tables that do not depend on the database.
//!
//! An event's data is JSON written once; both databases store it compressed, in
//! format 2 ([`compress_data`]): a month's distribution to a member records four events, about
//! 1,100 bytes of JSON, which then take a fifth of that or less (docs/BENCHMARKS.md,
//! "Event data compressed"). Every reader takes either form ([`stored_event`]):
//! format 1, the JSON text, is what earlier versions stored (PostgreSQL's as its UTF-8
//! bytes since its migration `0013_event_data_bytes`).

use std::cell::RefCell;

use creditd_ledger::{AccountId, EventType};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::columns::{corrupt, unsigned};
use crate::instant::from_db;
use crate::packed::{Coders, Dictionary};
use crate::{AttemptRecord, DeliveryState, EventDelivery, EventRecord, StoreError, StoredEvent};

/// Typical event data, one of each type, the commonest last (zstd refers to content
/// near the end of a dictionary in fewer bits). Part of format 2: it never changes.
const DICTIONARY: &str = concat!(
    r#"{"account_id":"acct","sequence":9,"total":0}"#,
    r#"{"account_id":"acct","sequence":8,"total":40,"threshold":50}"#,
    r#"{"account_id":"acct","sequence":7,"order_id":"order-1","account_id":"acct","#,
    r#""credits":1000,"bucket_id":"b5","paid_at":"2026-12-04T16:28:18.850353Z","#,
    r#""expires_at":"2028-12-04T16:28:18.850353Z","recorded_at":"2026-12-04T16:28:18.850353Z","#,
    r#""paid":{"amount_minor":999,"currency":"USD"}}"#,
    r#"{"account_id":"acct","sequence":6,"id":"h2_acct","account_id":"acct","#,
    r#""feature":"video_generation","tier":"agent","quantity":12,"amount":120,"#,
    r#""status":"expired","created_at":"2026-12-04T16:28:18Z","#,
    r#""expires_at":"2026-12-04T16:43:18Z","allocations":[{"bucket_id":"b2","kind":"agent","#,
    r#""source":"membership","amount":20},{"bucket_id":"b3","kind":"general","#,
    r#""source":"trial","amount":100}],"captured_quantity":null,"captured_amount":null,"#,
    r#""refunded_amount":null,"settled_at":"2026-12-04T16:43:18Z"}"#,
    r#"{"account_id":"acct","sequence":5,"bucket_id":"b2","kind":"agent","#,
    r#""source":"membership_agent","amount":100}"#,
    r#"{"account_id":"acct","sequence":4,"bucket":{"id":"b4","kind":"general","#,
    r#""source":"purchase","granted":1000,"remaining":1000,"#,
    r#""granted_at":"2026-12-04T16:28:18.850353Z","expires_at":"2028-12-04T16:28:18.850353Z","#,
    r#""frozen":false},"remaining":1000,"expires_at":"2028-12-04T16:28:18.850353Z","frozen":false}"#,
    r#"{"account_id":"acct","sequence":3,"id":"b3","kind":"general","source":"promotion","#,
    r#""granted":20,"remaining":20,"granted_at":"2026-12-04T00:00:00Z","#,
    r#""expires_at":"2026-12-05T00:00:00Z","frozen":false,"campaign":"welcome"}"#,
    r#"{"account_id":"acct","sequence":2,"membership":{"status":"active","plan":"pro","#,
    r#""period_start":"2026-11-06T05:28:18Z","period_end":"2026-12-16T05:28:18Z","#,
    r#""trial_end":null},"previous":{"status":"none","plan":null,"period_start":null,"#,
    r#""period_end":null,"trial_end":null}}"#,
    r#"{"account_id":"acct","sequence":1,"id":"b1","kind":"general","source":"subscription","#,
    r#""granted":500,"remaining":500,"granted_at":"2026-11-06T05:28:18Z","expires_at":null,"#,
    r#""frozen":false}"#,
    r#"{"account_id":"acct","sequence":4,"index":0,"subscription_bucket":{"id":"b1","#,
    r#""kind":"general","source":"subscription","granted":500,"remaining":500,"#,
    r#""granted_at":"2026-11-06T05:28:18Z","expires_at":null,"frozen":false},"#,
    r#""agent_bucket":{"id":"b2","kind":"agent","source":"membership_agent","granted":100,"#,
    r#""remaining":100,"granted_at":"2026-11-06T05:28:18Z","#,
    r#""expires_at":"2026-12-06T05:28:18Z","frozen":false}}"#,
);

thread_local! {
    static CODERS: RefCell<Coders> = const { RefCell::new(Coders::new()) };
}

/// Event data as format 2 stores it.
static EVENT_DATA: Dictionary = Dictionary::new("an event's stored data", DICTIONARY, &CODERS);

/// An event's data as format 2 stores it.
pub(crate) fn compress_data(json: &str) -> Result<Vec<u8>, StoreError> {
    EVENT_DATA.compress(json)
}

/// The columns [`stored_event`] reads, in order.
pub(crate) const EVENT_COLUMNS: &str =
    "position, account_id, sequence, type, created_at, recorded_at, data";

/// How long a node holds a delivery it claimed before another may claim it: longer
/// than an attempt can take (a 15 s timeout), so a live node never loses one it is
/// sending; short enough that a dead node's deliveries go out within a minute.
pub const DELIVERY_LEASE_SECONDS: i64 = 60;

/// An event row: [`EVENT_COLUMNS`], its data (bytes on both databases) of either format.
pub(crate) fn stored_event<'r, R: Row>(row: &'r R) -> Result<StoredEvent, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let event_type: &str = row.try_get(3)?;
    Ok(StoredEvent {
        position: unsigned(row.try_get(0)?)?,
        event: EventRecord {
            account_id: AccountId::parse(row.try_get(1)?).map_err(corrupt)?,
            sequence: unsigned(row.try_get(2)?)?,
            event_type: event_type.parse::<EventType>().map_err(corrupt)?,
            created_at: from_db(row.try_get(4)?)?,
            recorded_at: from_db(row.try_get(5)?)?,
            data: EVENT_DATA.text(row.try_get(6)?)?,
        },
    })
}

/// An attempt row: the columns of [`sql::ATTEMPTS_PAGE`].
pub(crate) fn attempt_record<'r, R: Row>(row: &'r R) -> Result<AttemptRecord, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: &str = row.try_get(9)?;
    Ok(AttemptRecord {
        number: unsigned(row.try_get(0)?)?,
        endpoint_id: row.try_get(1)?,
        account_id: AccountId::parse(row.try_get(2)?).map_err(corrupt)?,
        sequence: unsigned(row.try_get(3)?)?,
        attempt: u32::try_from(row.try_get::<i32, _>(4)?).map_err(corrupt)?,
        at: from_db(row.try_get(5)?)?,
        status_code: row
            .try_get::<Option<i32>, _>(6)?
            .map(u16::try_from)
            .transpose()
            .map_err(corrupt)?,
        error: row.try_get(7)?,
        next_attempt_at: row.try_get::<Option<i64>, _>(8)?.map(from_db).transpose()?,
        state: delivery_state(state)?,
    })
}

fn delivery_state(name: &str) -> Result<DeliveryState, StoreError> {
    [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
    ]
    .into_iter()
    .find(|state| state.as_str() == name)
    .ok_or_else(|| corrupt(format!("delivery state {name:?}")))
}

/// A count kept in a signed column.
/// An event's delivery to one endpoint from its row (`sql::EVENT_DELIVERIES`).
pub(crate) fn event_delivery<'r, R: Row>(row: &'r R) -> Result<EventDelivery, StoreError>
where
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(EventDelivery {
        endpoint_id: row.try_get(0)?,
        state: row.try_get(1)?,
        attempts: unsigned(row.try_get(2)?)?,
        next_attempt_at: row
            .try_get::<Option<i64>, _>(3)?
            .map(crate::instant::from_db)
            .transpose()?,
    })
}

pub(crate) fn db_count(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(corrupt)
}

/// The statements both databases run as they are (`$1`, `$2`, … mean the same in SQLite
/// and PostgreSQL).
pub(crate) mod sql {
    /// One attempt (endpoint, account, sequence, attempt, at, status, error, next, state).
    pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO webhook_attempts (endpoint_id,
        account_id, sequence, attempt, at, status_code, error, next_attempt_at, state)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    /// What became of a delivery after an attempt by holder `$7`; a holder whose lease
    /// ran out and whose delivery another node claimed changes nothing.
    pub(crate) const FINISH_ATTEMPT: &str = "UPDATE webhook_deliveries
        SET attempts = $4, state = $5, next_attempt_at = $6, holder = NULL, lease_until = NULL
        WHERE endpoint_id = $1 AND account_id = $2 AND sequence = $3 AND holder = $7
          AND state = 'pending'";
    /// Attempts made before `$1`.
    pub(crate) const PURGE_ATTEMPTS: &str = "DELETE FROM webhook_attempts WHERE at < $1";
    /// An event's deliveries, by endpoint (`event_delivery`).
    pub(crate) const EVENT_DELIVERIES: &str = "SELECT endpoint_id, state, CAST(attempts AS BIGINT),
        next_attempt_at FROM webhook_deliveries WHERE account_id = $1 AND sequence = $2
        ORDER BY endpoint_id";
    /// The endpoints not deleted, oldest first (the backend's `endpoint`).
    pub(crate) const ENDPOINTS: &str = "SELECT id, url, event_types, description, secret,
        created_at, deleted_at FROM webhook_endpoints WHERE deleted_at IS NULL
        ORDER BY created_at, id";
    /// One endpoint by id `$1` (the backend's `endpoint`).
    pub(crate) const ENDPOINT: &str = "SELECT id, url, event_types, description, secret,
        created_at, deleted_at FROM webhook_endpoints WHERE id = $1";
    /// Endpoint `$1`'s attempts before number `$2`, newest first, at most `$3`
    /// (`attempt_record`).
    pub(crate) const ATTEMPTS_PAGE: &str = "SELECT id, endpoint_id, account_id, sequence,
        attempt, at, status_code, error, next_attempt_at, state FROM webhook_attempts
        WHERE endpoint_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member's monthly distribution as the service records it.
    const DISTRIBUTED: &str = r#"{"account_id":"member-48213","sequence":9,"index":1,"subscription_bucket":{"id":"b5","kind":"general","source":"subscription","granted":500,"remaining":500,"granted_at":"2027-01-06T05:28:18.412907Z","expires_at":null,"frozen":false},"agent_bucket":{"id":"b6","kind":"agent","source":"membership_agent","granted":100,"remaining":100,"granted_at":"2027-01-06T05:28:18.412907Z","expires_at":"2027-02-06T05:28:18.412907Z","frozen":false}}"#;
    /// A hold that expired, as its event tells it.
    const HOLD_EXPIRED: &str = r#"{"account_id":"user-7","sequence":31,"id":"h12_user-7","account_id":"user-7","feature":"poster_generation","tier":"general","quantity":1,"amount":30,"status":"expired","created_at":"2026-12-06T03:11:52.114006Z","expires_at":"2026-12-06T03:26:52.114006Z","allocations":[{"bucket_id":"b9","kind":"general","source":"purchase","amount":30}],"captured_quantity":null,"captured_amount":null,"refunded_amount":null,"settled_at":"2026-12-06T03:26:52.114006Z"}"#;

    #[test]
    fn an_events_stored_data_reads_back_as_the_json_recorded() {
        for json in [DISTRIBUTED, HOLD_EXPIRED, "{}", &"x".repeat(100_000)] {
            assert_eq!(
                EVENT_DATA.text(&compress_data(json).unwrap()).unwrap(),
                json
            );
        }
    }

    #[test]
    fn data_stored_as_json_text_is_read_as_it_is() {
        assert_eq!(
            EVENT_DATA.text(DISTRIBUTED.as_bytes()).unwrap(),
            DISTRIBUTED
        );
    }

    #[test]
    fn event_data_takes_under_a_third_of_its_json() {
        for json in [DISTRIBUTED, HOLD_EXPIRED] {
            let stored = compress_data(json).unwrap();
            assert!(stored.len() * 3 < json.len(), "{} bytes", stored.len());
        }
    }

    #[test]
    fn the_dictionary_of_format_2_is_pinned_by_data_written_with_it() {
        let golden = include_bytes!("../tests/golden/format-2/event-data.bin");
        assert_eq!(EVENT_DATA.text(golden).unwrap(), DISTRIBUTED);
    }

    #[test]
    fn damaged_data_is_refused_not_read() {
        let mut stored = compress_data(DISTRIBUTED).unwrap();
        stored.truncate(stored.len() - 3);
        assert!(EVENT_DATA.text(&stored).is_err());
        assert!(EVENT_DATA.text(&[2, 1, 2, 3]).is_err());
        assert!(EVENT_DATA.text(&[0xff, 0xfe]).is_err());
    }
}
