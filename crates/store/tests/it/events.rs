//! The events and webhook-delivery promises of the `Store` interface, on both backends:
//! events kept with their batch and listed in the order they became visible, handed
//! to the endpoints that receive them, each due delivery claimed by one node at a time
//! (and by another once a lease runs out), attempts recorded and listed, deleted
//! endpoints never claimed, old events purged.

use creditd_ledger::EventType;
use creditd_store::{
    AttemptRecord, Changes, DeliveryState, EventFilter, EventRecord, Redelivery, WebhookEndpoint,
};
use jiff::{Timestamp, ToSpan};

use crate::conformance::{Db, commit, id, t};

on_every_backend!(
    events_are_kept_with_their_batch_and_listed_in_commit_order,
    a_batchs_many_events_are_kept_in_the_order_it_recorded_them,
    an_accounts_events_of_one_batch_are_each_found_as_one,
    events_are_handed_to_their_endpoints_and_each_delivery_claimed_once,
    a_delivery_whose_lease_ran_out_is_claimed_again,
    a_deleted_endpoint_is_handed_nothing_and_its_deliveries_stop,
    the_oldest_undelivered_event_is_that_of_the_first_pending_delivery,
    old_events_are_purged,
);

pub fn event(account: &str, sequence: u64, event_type: EventType, at: Timestamp) -> EventRecord {
    EventRecord {
        account_id: id(account),
        sequence,
        event_type,
        created_at: at,
        recorded_at: at,
        data: format!(r#"{{"account_id":"{account}","sequence":{sequence}}}"#),
    }
}

fn endpoint(name: &str, types: Option<Vec<EventType>>, at: Timestamp) -> WebhookEndpoint {
    WebhookEndpoint {
        id: name.to_owned(),
        url: format!("http://127.0.0.1:9/{name}"),
        event_types: types,
        description: None,
        secret: "whsec_c2VjcmV0".to_owned(),
        created_at: at,
        deleted_at: None,
    }
}

/// Events `sequences` of account `a`, as one batch records them.
pub fn events_of_a(sequences: &[u64]) -> Changes {
    let at = t("2026-11-21T10:00:00Z");
    Changes {
        events: sequences
            .iter()
            .map(|&n| event("a", n, EventType::CreditsGranted, at))
            .collect(),
        ..Changes::default()
    }
}

/// The data of every event, oldest first.
pub async fn event_data(db: &Db) -> Vec<String> {
    let page = db
        .events_page(None, &EventFilter::default(), 100)
        .await
        .unwrap();
    page.into_iter().map(|e| e.event.data).collect()
}

async fn record(db: &Db, changes: Changes) {
    commit(db, &changes).await.unwrap();
}

fn wall_in(seconds: i64) -> i64 {
    Timestamp::now().as_microsecond() + seconds * 1_000_000
}

/// A sweep's batch records its members' events four at a time in a statement (on
/// SQLite): eleven events, two such statements and three single rows, come back in the
/// order recorded, each with its data.
async fn a_batchs_many_events_are_kept_in_the_order_it_recorded_them(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let recorded: Vec<EventRecord> = (1..=11_u64)
        .map(|n| event(&format!("m{}", n % 3), n, EventType::CreditsGranted, now))
        .collect();
    record(
        &db,
        Changes {
            events: recorded.clone(),
            ..Changes::default()
        },
    )
    .await;
    let all = db
        .events_page(None, &EventFilter::default(), 20)
        .await
        .unwrap();
    let kept: Vec<(String, u64, String)> = all
        .iter()
        .map(|e| {
            let e = &e.event;
            (e.account_id.to_string(), e.sequence, e.data.clone())
        })
        .collect();
    let expected: Vec<(String, u64, String)> = recorded
        .iter()
        .map(|e| (e.account_id.to_string(), e.sequence, e.data.clone()))
        .collect();
    assert_eq!(kept, expected);
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
}

/// A batch's events that follow each other for one account (PostgreSQL keeps them in
/// one row, at most 256 to a row): 300 of account `a` with created instants of their
/// own, two of `b`, then one more of `a`. Each is listed, found by number, paged from
/// any position, filtered by type, handed to an endpoint and purged as one event.
async fn an_accounts_events_of_one_batch_are_each_found_as_one(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let kind = |n: u64| {
        if n.is_multiple_of(2) {
            EventType::CreditsExpired
        } else {
            EventType::CreditsGranted
        }
    };
    let mut recorded: Vec<EventRecord> = (1..=300_u64)
        .map(|n| EventRecord {
            created_at: now - i64::try_from(n).unwrap().seconds(),
            ..event("a", n, kind(n), now)
        })
        .collect();
    recorded.push(event("b", 1, EventType::BalanceLow, now));
    recorded.push(event("b", 2, EventType::BalanceDepleted, now));
    recorded.push(event("a", 301, kind(301), now));
    record(
        &db,
        Changes {
            webhook_endpoints: vec![endpoint(
                "we_expired",
                Some(vec![EventType::CreditsExpired]),
                now,
            )],
            events: recorded.clone(),
            ..Changes::default()
        },
    )
    .await;
    let all = db
        .events_page(None, &EventFilter::default(), 1_000)
        .await
        .unwrap();
    let listed: Vec<EventRecord> = all.iter().map(|e| e.event.clone()).collect();
    assert_eq!(listed, recorded);
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
    // From inside a run, and across the end of one.
    let after = db
        .events_page(Some(all[100].position), &EventFilter::default(), 5)
        .await
        .unwrap();
    let numbers: Vec<u64> = after.iter().map(|e| e.event.sequence).collect();
    assert_eq!(numbers, [102, 103, 104, 105, 106]);
    let across = db
        .events_page(Some(all[253].position), &EventFilter::default(), 4)
        .await
        .unwrap();
    let numbers: Vec<u64> = across.iter().map(|e| e.event.sequence).collect();
    assert_eq!(numbers, [255, 256, 257, 258]);
    let expired = EventFilter {
        event_type: Some(EventType::CreditsExpired),
        ..EventFilter::default()
    };
    let of_type = db.events_page(None, &expired, 1_000).await.unwrap();
    assert_eq!(of_type.len(), 150);
    assert!(of_type.iter().all(|e| e.event.sequence.is_multiple_of(2)));
    let of_b = EventFilter {
        account: Some(id("b")),
        ..EventFilter::default()
    };
    assert_eq!(db.events_page(None, &of_b, 1_000).await.unwrap().len(), 2);
    // By number: the first, the last and the middle of runs; one never recorded.
    for n in [1, 128, 256, 257, 300, 301] {
        let found = db.event(&id("a"), n).await.unwrap().unwrap();
        let expected = recorded
            .iter()
            .find(|e| e.account_id == id("a") && e.sequence == n);
        assert_eq!(Some(&found.event), expected);
    }
    assert!(db.event(&id("a"), 302).await.unwrap().is_none());
    let newest: Vec<u64> = db
        .account_events(&id("a"), Some(258), 3)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.sequence)
        .collect();
    assert_eq!(newest, [257, 256, 255]);
    // Handed out: the endpoint's type only, each event with its own data.
    db.dispatch_events(now, 1_000).await.unwrap();
    let claimed = db
        .claim_deliveries("we_expired", now, "n1", wall_in(60), 1_000)
        .await
        .unwrap();
    let mut handed: Vec<EventRecord> = claimed.into_iter().map(|c| c.event).collect();
    handed.sort_by_key(|e| e.sequence);
    let expected: Vec<EventRecord> = recorded
        .iter()
        .filter(|e| e.event_type == EventType::CreditsExpired)
        .cloned()
        .collect();
    assert_eq!(handed, expected);
    assert_eq!(db.purge_events(now + 1.second()).await.unwrap(), 303);
}

fn attempt(
    claimed: &creditd_store::ClaimedDelivery,
    number: u32,
    at: Timestamp,
    state: DeliveryState,
    next: Option<Timestamp>,
) -> AttemptRecord {
    AttemptRecord {
        number: 0,
        endpoint_id: claimed.endpoint_id.clone(),
        account_id: claimed.event.account_id.clone(),
        sequence: claimed.event.sequence,
        attempt: number,
        at,
        status_code: Some(if state == DeliveryState::Delivered {
            200
        } else {
            500
        }),
        error: None,
        next_attempt_at: next,
        state,
    }
}

async fn events_are_kept_with_their_batch_and_listed_in_commit_order(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    record(
        &db,
        Changes {
            events: vec![
                event("b", 1, EventType::CreditsGranted, now),
                event("a", 1, EventType::CreditsGranted, now),
            ],
            ..Changes::default()
        },
    )
    .await;
    record(
        &db,
        Changes {
            events: vec![event("a", 2, EventType::BalanceDepleted, now + 1.second())],
            ..Changes::default()
        },
    )
    .await;
    let all = db
        .events_page(None, &EventFilter::default(), 10)
        .await
        .unwrap();
    let order: Vec<(String, u64)> = all
        .iter()
        .map(|e| (e.event.account_id.to_string(), e.event.sequence))
        .collect();
    assert_eq!(order, [("b".into(), 1), ("a".into(), 1), ("a".into(), 2)]);
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
    let rest = db
        .events_page(Some(all[0].position), &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    let past_the_end = db
        .events_page(Some(all[2].position), &EventFilter::default(), 10)
        .await
        .unwrap();
    assert!(past_the_end.is_empty());
    let of_a = EventFilter {
        account: Some(id("a")),
        ..EventFilter::default()
    };
    assert_eq!(db.events_page(None, &of_a, 10).await.unwrap().len(), 2);
    let depleted = EventFilter {
        event_type: Some(EventType::BalanceDepleted),
        ..EventFilter::default()
    };
    let found = db.events_page(None, &depleted, 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].event,
        event("a", 2, EventType::BalanceDepleted, now + 1.second())
    );
    let one = db.event(&id("a"), 2).await.unwrap().unwrap();
    assert_eq!(one.event.event_type, EventType::BalanceDepleted);
    assert!(db.event(&id("a"), 3).await.unwrap().is_none());
    // A second event with the same number is refused, and the batch with it.
    let again = Changes {
        events: vec![event("a", 2, EventType::CreditsGranted, now)],
        ..Changes::default()
    };
    assert!(commit(&db, &again).await.is_err());
}

async fn events_are_handed_to_their_endpoints_and_each_delivery_claimed_once(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    record(
        &db,
        Changes {
            webhook_endpoints: vec![
                endpoint("we_all", None, now),
                endpoint("we_low", Some(vec![EventType::BalanceLow]), now),
            ],
            ..Changes::default()
        },
    )
    .await;
    record(
        &db,
        Changes {
            events: vec![
                event("a", 1, EventType::CreditsGranted, now),
                event("a", 2, EventType::BalanceLow, now),
            ],
            ..Changes::default()
        },
    )
    .await;
    assert_eq!(db.dispatch_events(now, 1).await.unwrap(), 1);
    assert_eq!(db.dispatch_events(now, 10).await.unwrap(), 1);
    assert_eq!(db.dispatch_events(now, 10).await.unwrap(), 0);
    let undelivered = db.oldest_undelivered().await.unwrap();
    assert_eq!(undelivered, Some(now));
    // The account's events newest first, and each one's deliveries by endpoint.
    let account = creditd_ledger::AccountId::parse("a").unwrap();
    let newest: Vec<u64> = db
        .account_events(&account, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.sequence)
        .collect();
    assert_eq!(newest, [2, 1]);
    let low_deliveries: Vec<String> = db
        .event_deliveries(&account, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|d| format!("{} {} {}", d.endpoint_id, d.state, d.attempts))
        .collect();
    assert_eq!(low_deliveries, ["we_all pending 0", "we_low pending 0"]);

    let claimed = db
        .claim_deliveries("we_all", now, "n1", wall_in(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].url, "http://127.0.0.1:9/we_all");
    assert_eq!(claimed[0].attempts, 0);
    // Held by n1: nobody else gets them.
    let other = db
        .claim_deliveries("we_all", now, "n2", wall_in(60), 10)
        .await
        .unwrap();
    assert!(other.is_empty());
    let low = db
        .claim_deliveries("we_low", now, "n2", wall_in(60), 10)
        .await
        .unwrap();
    assert_eq!(low.len(), 1);
    assert_eq!(low[0].event.event_type, EventType::BalanceLow);

    // A failed attempt is due again at its next instant on the service clock, no sooner.
    let retry_at = now + 5.seconds();
    let failed: Vec<AttemptRecord> = claimed
        .iter()
        .map(|c| attempt(c, 1, now, DeliveryState::Pending, Some(retry_at)))
        .collect();
    db.record_attempts("n1", &failed).await.unwrap();
    let early = db
        .claim_deliveries("we_all", now, "n1", wall_in(60), 10)
        .await
        .unwrap();
    assert!(early.is_empty());
    let due = db
        .claim_deliveries("we_all", retry_at, "n1", wall_in(60), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].attempts, 1);
    let delivered: Vec<AttemptRecord> = due
        .iter()
        .map(|c| attempt(c, 2, retry_at, DeliveryState::Delivered, None))
        .collect();
    db.record_attempts("n1", &delivered).await.unwrap();
    let listed = db.attempts_page("we_all", None, 10).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0].attempt, 2, "newest first");
    assert_eq!(listed[0].state, DeliveryState::Delivered);
    let older = db
        .attempts_page("we_all", Some(listed[1].number), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 2);
    assert!(
        db.claim_deliveries("we_all", retry_at + 1.hour(), "n1", wall_in(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A redelivery starts a new round.
    record(
        &db,
        Changes {
            redeliveries: vec![Redelivery {
                endpoint_id: "we_all".into(),
                account_id: id("a"),
                sequence: 1,
                at: retry_at,
            }],
            ..Changes::default()
        },
    )
    .await;
    let round = db
        .claim_deliveries("we_all", retry_at, "n1", wall_in(60), 10)
        .await
        .unwrap();
    assert_eq!(round.len(), 1);
    assert_eq!(round[0].attempts, 0);
}

async fn a_delivery_whose_lease_ran_out_is_claimed_again(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    record(
        &db,
        Changes {
            webhook_endpoints: vec![endpoint("we_1", None, now)],
            events: vec![event("a", 1, EventType::CreditsGranted, now)],
            ..Changes::default()
        },
    )
    .await;
    db.dispatch_events(now, 10).await.unwrap();
    // n1 claims it and dies: its lease is already over.
    let lost = db
        .claim_deliveries("we_1", now, "n1", wall_in(-1), 10)
        .await
        .unwrap();
    assert_eq!(lost.len(), 1);
    let taken = db
        .claim_deliveries("we_1", now, "n2", wall_in(60), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    // n1's late record of it changes nothing of n2's claim.
    db.record_attempts(
        "n1",
        &[attempt(&lost[0], 1, now, DeliveryState::Delivered, None)],
    )
    .await
    .unwrap();
    db.record_attempts(
        "n2",
        &[attempt(&taken[0], 1, now, DeliveryState::Delivered, None)],
    )
    .await
    .unwrap();
    assert_eq!(db.oldest_undelivered().await.unwrap(), None);
}

async fn a_deleted_endpoint_is_handed_nothing_and_its_deliveries_stop(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let live = endpoint("we_1", None, now);
    record(
        &db,
        Changes {
            webhook_endpoints: vec![live.clone()],
            events: vec![event("a", 1, EventType::CreditsGranted, now)],
            ..Changes::default()
        },
    )
    .await;
    db.dispatch_events(now, 10).await.unwrap();
    let mut deleted = live;
    deleted.deleted_at = Some(now);
    record(
        &db,
        Changes {
            webhook_endpoints: vec![deleted],
            events: vec![event("a", 2, EventType::CreditsGranted, now)],
            ..Changes::default()
        },
    )
    .await;
    db.dispatch_events(now, 10).await.unwrap();
    assert!(db.webhook_endpoints().await.unwrap().is_empty());
    assert!(
        db.webhook_endpoint("we_1")
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_some()
    );
    let claimed = db
        .claim_deliveries("we_1", now + 1.hour(), "n1", wall_in(60), 10)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    assert_eq!(db.oldest_undelivered().await.unwrap(), None);
}

async fn the_oldest_undelivered_event_is_that_of_the_first_pending_delivery(db: Db) {
    let first = t("2026-11-21T10:00:00Z");
    let second = first + 1.hour();
    record(
        &db,
        Changes {
            webhook_endpoints: vec![endpoint("we_1", None, first)],
            events: vec![event("b", 1, EventType::CreditsGranted, first)],
            ..Changes::default()
        },
    )
    .await;
    record(
        &db,
        Changes {
            webhook_endpoints: vec![endpoint("we_2", None, second)],
            events: vec![event("a", 1, EventType::CreditsGranted, second)],
            ..Changes::default()
        },
    )
    .await;
    // Not handed out yet, then pending: the older event either way.
    assert_eq!(db.oldest_undelivered().await.unwrap(), Some(first));
    db.dispatch_events(second, 10).await.unwrap();
    assert_eq!(db.oldest_undelivered().await.unwrap(), Some(first));
    let claimed = db
        .claim_deliveries("we_1", second, "n1", wall_in(60), 10)
        .await
        .unwrap();
    let older = claimed
        .iter()
        .find(|c| c.event.account_id == id("b"))
        .unwrap();
    db.record_attempts(
        "n1",
        &[attempt(older, 1, second, DeliveryState::Delivered, None)],
    )
    .await
    .unwrap();
    assert_eq!(db.oldest_undelivered().await.unwrap(), Some(second));
    // Sent to an endpoint made after it (which dispatching skipped), the older event is
    // pending again.
    record(
        &db,
        Changes {
            redeliveries: vec![Redelivery {
                endpoint_id: "we_2".into(),
                account_id: id("b"),
                sequence: 1,
                at: second,
            }],
            ..Changes::default()
        },
    )
    .await;
    assert_eq!(db.oldest_undelivered().await.unwrap(), Some(first));
}

async fn old_events_are_purged(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let later = now + (40 * 24).hours();
    record(
        &db,
        Changes {
            events: vec![
                event("a", 1, EventType::CreditsGranted, now),
                event("a", 2, EventType::CreditsGranted, later),
            ],
            ..Changes::default()
        },
    )
    .await;
    assert_eq!(db.purge_events(now + 1.second()).await.unwrap(), 1);
    let kept = db
        .events_page(None, &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].event.sequence, 2);
}
