//! Each test checks one promise of the `Store` interface, on a fresh database of each
//! backend: a SQLite file, and a PostgreSQL database made for the test (see
//! `postgres_or_skip`).

use creditd_ledger::{
    Account, AccountId, Amount, Catalog, CreditKind, EntryType, Expiry, Grant, GrantSource,
    History, HoldId, HoldStatus, LedgerQuery, OrderId, Use,
};
use creditd_store::{
    ApiKeyRecord, AuditRecord, Changes, ConsoleSession, IdempotencyKey, IdempotencyRecord,
    PurchaseRecord, Store,
};
use jiff::{Timestamp, ToSpan, tz::TimeZone};

/// The conformance tests, each run on both backends.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        $(mod $test {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                super::$test(creditd_store::open(&url).await.unwrap()).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(database) = crate::postgres_or_skip().await {
                    super::$test(creditd_store::open(database.url()).await.unwrap()).await;
                    database.drop().await;
                }
            }
        })*
    };
}

on_every_backend!(
    a_committed_account_reads_back_equal_with_its_ledger_and_settled_holds,
    ledger_pages_filter_by_type_and_window_and_continue_before_a_sequence,
    a_ledger_window_pages_through_exactly_its_entries,
    an_uncommitted_transaction_changes_nothing,
    a_second_ledger_entry_with_the_same_number_is_refused_and_the_batch_rolls_back,
    idempotency_records_and_purchases_are_found_by_key_and_purged_by_age,
    api_keys_are_listed_and_revoked_once,
    a_setting_keeps_its_first_value,
    a_transaction_reading_an_account_waits_for_the_one_writing_it,
    a_transaction_begun_while_the_one_before_commits_reads_what_it_wrote,
    accounts_are_due_when_their_next_effect_has_come,
    one_commit_writes_every_kind_of_change,
    accounts_are_listed_by_prefix_in_id_order_page_after_page,
    settled_holds_and_purchases_are_listed_newest_first_page_after_page,
    audit_records_are_listed_newest_first_by_account_page_after_page,
    a_console_session_is_found_by_id_until_and_after_it_ends,
);

pub(crate) type Db = Box<dyn Store>;

pub(crate) fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub(crate) fn id(text: &str) -> AccountId {
    AccountId::parse(text).unwrap()
}

/// A grant of `amount` general credits, with no campaign or note.
fn general(amount: u64, source: GrantSource, expiry: Expiry) -> Grant {
    Grant {
        kind: CreditKind::General,
        amount: Amount::new(amount).unwrap(),
        source,
        expiry,
        campaign: None,
        note: None,
    }
}

/// An account with a 10-credit promotion expiring in an hour and a hold of 4 captured
/// for half (ledger: grant, debit, refund), and the changes that store it.
pub(crate) fn account_with_history(name: &str, now: Timestamp) -> (Account, Changes) {
    let catalog = Catalog::default();
    let mut account = Account::open(id(name), TimeZone::UTC, now);
    let mut history = History::default();
    let mut moment = account.at(&catalog, now, &mut history);
    moment
        .grant(Grant {
            note: Some("welcome".into()),
            ..general(10, GrantSource::Promotion, Expiry::ValidFor(1.hour()))
        })
        .unwrap();
    let hold = moment
        .place_hold(&Use {
            feature: "ai_background".into(),
            ..Use::default()
        })
        .unwrap();
    moment.capture(hold.id(), Some(1)).unwrap();
    drop(moment);
    let changes = changes_for(&account, 0, &history);
    (account, changes)
}

pub(crate) fn changes_for(account: &Account, entry_seq: u64, history: &History) -> Changes {
    let mut changes = Changes::default();
    changes.record(account.clone(), entry_seq, history.clone());
    changes
}

/// Commits `changes` in a transaction of their own, which first reads the accounts they
/// write (as the writer does: a transaction writes only accounts it read).
pub(crate) async fn commit(db: &Db, changes: &Changes) -> Result<(), creditd_store::StoreError> {
    let mut ids: Vec<AccountId> = changes
        .accounts
        .iter()
        .map(|stored| stored.account.id().clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = db.begin().await.unwrap();
    tx.read(&ids, &[], &[]).await?;
    tx.commit(changes).await
}

/// The ledger entries and settled holds of `changes` as rows of `history` in `format`
/// (1 or 2), as the versions that wrote it did: account, kind, number, data.
pub(crate) fn history_in(
    changes: &Changes,
    format: u8,
) -> impl Iterator<Item = (&AccountId, &'static str, u64, Vec<u8>)> {
    let entries = changes
        .entries
        .iter()
        .map(move |(id, stored)| (id, "entry", stored.seq, stored_in(format, &stored.entry)));
    let holds = changes
        .settled_holds
        .iter()
        .map(move |(id, hold)| (id, "hold", hold.id().get(), stored_in(format, hold)));
    entries.chain(holds)
}

/// One of the core's values as a row of an earlier `format` held it: 1, JSON; 2,
/// postcard where instants and named values take their text spelling (serde_test's
/// `Readable` tells them the format is read by people, as the store's own format 2
/// encoder does).
pub(crate) fn stored_in<T: serde::Serialize>(format: u8, value: &T) -> Vec<u8> {
    use serde_test::Configure;
    match format {
        1 => serde_json::to_vec(value).unwrap(),
        2 => postcard::to_stdvec(&value.readable()).unwrap(),
        other => panic!("format {other} is this version's own: commit to write it"),
    }
}

fn key(n: usize) -> IdempotencyKey {
    IdempotencyKey {
        owner: "k1".into(),
        key: format!("key-{n}"),
    }
}

/// `accounts` accounts named `user-{first}`… with a history each (5 rows: state, three
/// entries, a hold) and an idempotency record each: one batch.
pub(crate) fn batch(first: usize, accounts: usize) -> (Vec<Account>, Changes) {
    let now = t("2026-11-21T10:00:00Z");
    let mut all = Changes::default();
    let mut made = Vec::new();
    for n in first..first + accounts {
        let (account, changes) = account_with_history(&format!("user-{n}"), now);
        all.accounts.extend(changes.accounts);
        all.entries.extend(changes.entries);
        all.settled_holds.extend(changes.settled_holds);
        all.idempotency.push(IdempotencyRecord {
            key: key(n),
            account: Some(account.id().clone()),
            fingerprint: format!("{n:064}"),
            status: 201,
            body: format!(r#"{{"n":{n}}}"#),
            created_at: now,
        });
        made.push(account);
    }
    (made, all)
}

/// Every account reads back as made, with its three entries and its settled hold, and
/// every idempotency record is found.
pub(crate) async fn assert_reads(db: &Db, accounts: &[Account]) {
    let page = LedgerQuery::new(None, None, None, None).unwrap();
    for account in accounts {
        let stored = db.account(account.id()).await.unwrap().unwrap();
        assert_eq!(&stored.account, account);
        let seqs: Vec<u64> = db
            .ledger_page(account.id(), &page, None)
            .await
            .unwrap()
            .iter()
            .map(|row| row.seq)
            .collect();
        assert_eq!(seqs, [3, 2, 1], "{}", account.id());
        assert!(
            db.settled_hold(account.id(), HoldId::new(1))
                .await
                .unwrap()
                .is_some()
        );
    }
    let keys: Vec<IdempotencyKey> = (0..accounts.len()).map(key).collect();
    let mut tx = db.begin().await.unwrap();
    let found = tx.read(&[], &keys, &[]).await.unwrap().idempotency;
    let mut bodies: Vec<String> = found.into_iter().map(|record| record.body).collect();
    bodies.sort();
    let mut answered: Vec<String> = (0..accounts.len())
        .map(|n| format!(r#"{{"n":{n}}}"#))
        .collect();
    answered.sort();
    assert_eq!(bodies, answered);
    tx.commit(&Changes::default()).await.unwrap();
}

async fn a_committed_account_reads_back_equal_with_its_ledger_and_settled_holds(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let (account, changes) = account_with_history("user-1", now);
    commit(&db, &changes).await.unwrap();

    let stored = db.account(&id("user-1")).await.unwrap().unwrap();
    assert_eq!(stored.account, account);
    assert_eq!(stored.entry_seq, 3);
    let page = db
        .ledger_page(
            &id("user-1"),
            &LedgerQuery::new(None, None, None, None).unwrap(),
            None,
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = page.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 2, 1], "newest first");
    let expected: Vec<_> = changes
        .entries
        .iter()
        .rev()
        .map(|(_, e)| e.entry.clone())
        .collect();
    let read: Vec<_> = page.into_iter().map(|row| row.entry).collect();
    assert_eq!(read, expected);
    let hold = db
        .settled_hold(&id("user-1"), creditd_ledger::HoldId::new(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hold.status(), HoldStatus::Captured);
    assert!(db.account(&id("nobody")).await.unwrap().is_none());
}

async fn ledger_pages_filter_by_type_and_window_and_continue_before_a_sequence(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let (_, changes) = account_with_history("user-1", now);
    commit(&db, &changes).await.unwrap();
    let user = id("user-1");

    let debits = LedgerQuery::new(None, Some(EntryType::Debit), None, None).unwrap();
    let page = db.ledger_page(&user, &debits, None).await.unwrap();
    assert!(page.iter().all(|e| e.entry.entry_type == EntryType::Debit) && !page.is_empty());
    let grants = LedgerQuery::new(None, Some(EntryType::Grant), None, None).unwrap();
    let page: Vec<u64> = db
        .ledger_page(&user, &grants, None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let granted: Vec<u64> = changes
        .entries
        .iter()
        .rev()
        .filter(|(_, e)| e.entry.entry_type == EntryType::Grant)
        .map(|(_, e)| e.seq)
        .collect();
    assert!(!granted.is_empty());
    assert_eq!(page, granted);

    let one = LedgerQuery::new(Some(1), None, None, None).unwrap();
    let first = db.ledger_page(&user, &one, None).await.unwrap();
    let second = db
        .ledger_page(&user, &one, Some(first[0].seq))
        .await
        .unwrap();
    assert_eq!((first[0].seq, second[0].seq), (3, 2));

    let until_now = LedgerQuery::new(None, None, None, Some(now)).unwrap();
    assert!(
        db.ledger_page(&user, &until_now, None)
            .await
            .unwrap()
            .is_empty()
    );
    let since_now = LedgerQuery::new(None, None, Some(now), None).unwrap();
    assert_eq!(
        db.ledger_page(&user, &since_now, None).await.unwrap().len(),
        3
    );
}

/// A window's pages, read through the cursor, hold exactly the entries dated in it,
/// newest first, whichever entries share an instant with a window's end (the store finds
/// a window's entries by number, `crate::window` in the store).
pub(crate) async fn a_ledger_window_pages_through_exactly_its_entries(db: Db) {
    let start = t("2026-11-21T10:00:00Z");
    let catalog = Catalog::default();
    let mut account = Account::open(id("user-1"), TimeZone::UTC, start);
    let mut entries = Vec::new();
    // Ten batches of four grants, two instants a batch a minute apart.
    for batch in 0..10_i64 {
        let mut history = History::default();
        let mut moment = account.at(&catalog, start + (2 * batch).minutes(), &mut history);
        for grant in 0..4_i64 {
            if grant == 2 {
                drop(moment);
                moment = account.at(&catalog, start + (2 * batch + 1).minutes(), &mut history);
            }
            moment
                .grant(general(
                    1,
                    GrantSource::Promotion,
                    Expiry::ValidFor(400.days()),
                ))
                .unwrap();
        }
        drop(moment);
        let before = u64::try_from(entries.len()).unwrap();
        let changes = changes_for(&account, before, &history);
        entries.extend(changes.entries.iter().map(|(_, stored)| stored.clone()));
        commit(&db, &changes).await.unwrap();
    }
    let user = id("user-1");
    let instant = |minutes: i64| start + minutes.minutes();
    for (since, until) in [
        (None, Some(instant(7))),
        (Some(instant(7)), None),
        (Some(instant(3)), Some(instant(12))),
        (Some(instant(5)), Some(instant(6))),
        (Some(instant(6)), Some(instant(5))),
        (Some(instant(-5)), Some(instant(0))),
        (Some(instant(19)), Some(instant(60))),
        (Some(instant(20)), None),
    ] {
        let query = LedgerQuery::new(Some(3), None, since, until).unwrap();
        let expected: Vec<u64> = entries
            .iter()
            .rev()
            .filter(|stored| query.matches(&stored.entry))
            .map(|stored| stored.seq)
            .collect();
        let mut read = Vec::new();
        let mut cursor = None;
        loop {
            let page = db.ledger_page(&user, &query, cursor).await.unwrap();
            read.extend(page.iter().map(|stored| stored.seq));
            match page.last() {
                Some(last) if page.len() == 3 => cursor = Some(last.seq),
                _ => break,
            }
        }
        assert_eq!(read, expected, "since {since:?}, until {until:?}");
    }
}

#[tokio::test]
async fn a_ledger_window_pages_through_exactly_its_entries_folded_or_not() {
    // Folding once 16 rows are unfolded: some of the account's entries are in the table
    // and the newest in the SQLite store's backlog.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let db = creditd_store::SqliteStore::open_folding_at(&url, true, 16)
        .await
        .unwrap();
    a_ledger_window_pages_through_exactly_its_entries(Box::new(db)).await;
}

async fn an_uncommitted_transaction_changes_nothing(db: Db) {
    let (_, changes) = account_with_history("user-1", t("2026-11-21T10:00:00Z"));
    let mut tx = db.begin().await.unwrap();
    assert!(
        tx.read(&[id("user-1")], &[], &[])
            .await
            .unwrap()
            .accounts
            .is_empty()
    );
    drop(tx);
    assert!(db.account(&id("user-1")).await.unwrap().is_none());
    // The writer is free again, and the changes commit once.
    commit(&db, &changes).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        tx.read(&[id("user-1"), id("user-2")], &[], &[])
            .await
            .unwrap()
            .accounts
            .len(),
        1
    );
}

async fn a_second_ledger_entry_with_the_same_number_is_refused_and_the_batch_rolls_back(db: Db) {
    let (_, changes) = account_with_history("user-1", t("2026-11-21T10:00:00Z"));
    commit(&db, &changes).await.unwrap();
    let mut again = Changes::default();
    again.entries.push(changes.entries[0].clone());
    again.settings.push(("x".into(), "1".into()));
    assert!(commit(&db, &again).await.is_err());
    assert_eq!(db.setting("x").await.unwrap(), None);
}

async fn idempotency_records_and_purchases_are_found_by_key_and_purged_by_age(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let key = IdempotencyKey {
        owner: "k1".into(),
        key: "retry-me".into(),
    };
    let record = IdempotencyRecord {
        key: key.clone(),
        account: None,
        fingerprint: "ab".repeat(32),
        status: 402,
        body: r#"{"code":"insufficient_credits"}"#.into(),
        created_at: now,
    };
    let purchase = PurchaseRecord {
        order_id: OrderId::parse("order-1").unwrap(),
        account_id: id("user-1"),
        credits: 100,
        bucket_id: creditd_ledger::BucketId::new(3),
        paid_at: now,
        paid_at_requested: None,
        expires_at: now + 10.hours(),
        paid: Some(creditd_ledger::Payment {
            amount_minor: 499,
            currency: creditd_ledger::Currency::parse("USD").unwrap(),
        }),
        recorded_at: now,
    };
    let mut changes = Changes::default();
    changes.idempotency.push(record.clone());
    changes.purchases.push(purchase.clone());
    commit(&db, &changes).await.unwrap();

    let mut tx = db.begin().await.unwrap();
    let other = IdempotencyKey {
        owner: "k2".into(),
        key: "retry-me".into(),
    };
    assert_eq!(
        tx.read(&[], &[key, other], &[]).await.unwrap().idempotency,
        [record]
    );
    let orders = [
        OrderId::parse("order-1").unwrap(),
        OrderId::parse("order-2").unwrap(),
    ];
    let found = tx.read(&[], &[], &orders).await.unwrap().purchases;
    assert_eq!(found, std::slice::from_ref(&purchase));
    drop(tx);
    assert_eq!(db.purchase(&orders[0]).await.unwrap(), Some(purchase));
    assert_eq!(db.purchase(&orders[1]).await.unwrap(), None);

    assert_eq!(db.purge_idempotency(now).await.unwrap(), 0);
    assert_eq!(db.purge_idempotency(now + 1.second()).await.unwrap(), 1);
}

async fn api_keys_are_listed_and_revoked_once(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let key = ApiKeyRecord {
        id: "k1".into(),
        name: "backend".into(),
        role: "service".into(),
        secret_hash: [7; 32],
        created_at: now,
        revoked_at: None,
    };
    let mut changes = Changes::default();
    changes.new_api_keys.push(key.clone());
    changes.settings.push(("token_secret".into(), "s".into()));
    commit(&db, &changes).await.unwrap();
    assert_eq!(db.api_keys().await.unwrap(), [key]);
    assert_eq!(
        db.setting("token_secret").await.unwrap().as_deref(),
        Some("s")
    );

    for at in [now + 1.second(), now + 2.seconds()] {
        let mut revoke = Changes::default();
        revoke.revoked_api_keys.push(("k1".into(), at));
        commit(&db, &revoke).await.unwrap();
    }
    let revoked = db.api_key("k1").await.unwrap().unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(now + 1.second()),
        "the first revocation stands"
    );
}

async fn accounts_are_due_when_their_next_effect_has_come(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let (_, changes) = account_with_history("user-1", now);
    commit(&db, &changes).await.unwrap();
    assert!(db.due_accounts(now, 10).await.unwrap().is_empty());
    let due: Vec<AccountId> = db
        .due_accounts(now + 1.hour(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(due, [id("user-1")]);
}

async fn one_commit_writes_every_kind_of_change(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let catalog = Catalog::default();
    let mut account = Account::open(id("member"), TimeZone::UTC, now);
    let mut history = History::default();
    let mut moment = account.at(&catalog, now, &mut history);
    moment.activate("pro", now + 960.hours()).unwrap();
    drop(moment);
    let mut changes = changes_for(&account, 0, &history);
    assert_eq!(changes.distributions.len(), 1);
    let (_, more) = account_with_history("other", now);
    changes.accounts.extend(more.accounts);
    changes.entries.extend(more.entries);
    changes.settled_holds.extend(more.settled_holds);
    changes.idempotency.push(IdempotencyRecord {
        key: IdempotencyKey {
            owner: "k1".into(),
            key: "x".into(),
        },
        account: Some(id("member")),
        fingerprint: "f".into(),
        status: 201,
        body: "{}".into(),
        created_at: now,
    });
    changes.new_api_keys.push(ApiKeyRecord {
        id: "k1".into(),
        name: "n".into(),
        role: "viewer".into(),
        secret_hash: [1; 32],
        created_at: now,
        revoked_at: None,
    });
    changes.settings.push(("s".into(), "v".into()));
    commit(&db, &changes).await.unwrap();

    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        tx.read(&[id("member"), id("other")], &[], &[])
            .await
            .unwrap()
            .accounts
            .len(),
        2
    );
    let key = IdempotencyKey {
        owner: "k1".into(),
        key: "x".into(),
    };
    assert_eq!(
        tx.read(&[], &[key], &[]).await.unwrap().idempotency.len(),
        1
    );
    drop(tx);
    let all = LedgerQuery::new(None, None, None, None).unwrap();
    for name in ["member", "other"] {
        assert!(
            !db.ledger_page(&id(name), &all, None)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert!(
        db.settled_hold(&id("other"), creditd_ledger::HoldId::new(1))
            .await
            .unwrap()
            .is_some()
    );
    assert!(db.api_key("k1").await.unwrap().is_some());
    assert_eq!(db.setting("s").await.unwrap().as_deref(), Some("v"));
    // The distribution's key refuses a second one of the same month.
    let again = Changes {
        distributions: changes.distributions.clone(),
        ..Changes::default()
    };
    assert!(commit(&db, &again).await.is_err());
}

async fn a_setting_keeps_its_first_value(db: Db) {
    for value in ["first", "second"] {
        let changes = Changes {
            settings: vec![("token_secret".into(), value.into())],
            ..Changes::default()
        };
        commit(&db, &changes).await.unwrap();
    }
    assert_eq!(
        db.setting("token_secret").await.unwrap().as_deref(),
        Some("first")
    );
}

/// Two write transactions on one account: the second reads it only once the first has
/// committed, so it sees the first's change (the promise of `Store::begin`).
async fn a_transaction_reading_an_account_waits_for_the_one_writing_it(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let (_, changes) = account_with_history("user-1", now);
    commit(&db, &changes).await.unwrap();

    let mut first = db.begin().await.unwrap();
    let stored = first
        .read(&[id("user-1")], &[], &[])
        .await
        .unwrap()
        .accounts;
    let mut account = stored[0].account.clone();
    let mut history = History::default();
    let catalog = Catalog::default();
    let mut moment = account.at(&catalog, now, &mut history);
    moment
        .grant(general(5, GrantSource::Promotion, Expiry::Never))
        .unwrap();
    drop(moment);
    let change = changes_for(&account, stored[0].entry_seq, &history);

    let second = async {
        let mut second = db.begin().await.unwrap();
        let read = second.read(&[id("user-1")], &[], &[]).await.unwrap();
        second.commit(&Changes::default()).await.unwrap();
        read.accounts[0].entry_seq
    };
    let first = async {
        // Give the second transaction the chance to start reading first.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        first.commit(&change).await.unwrap();
    };
    let (seen, ()) = tokio::join!(second, first);
    assert_eq!(seen, 4, "the second transaction saw the first one's entry");
}

/// Adds a grant of `amount` to `account`: the changes that store it, numbered on from
/// `entry_seq`.
pub(crate) fn granted(account: &mut Account, entry_seq: u64, amount: u64) -> Changes {
    let now = t("2026-11-21T10:00:00Z");
    let catalog = Catalog::default();
    let mut history = History::default();
    account
        .at(&catalog, now, &mut history)
        .grant(general(amount, GrantSource::Promotion, Expiry::Never))
        .unwrap();
    changes_for(account, entry_seq, &history)
}

/// A transaction begun while the one before it is still on its way to the disk reads
/// what that one wrote (the promise of `WriteTransaction::hand_off`): the account, its
/// idempotency record and its purchase.
async fn a_transaction_begun_while_the_one_before_commits_reads_what_it_wrote(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let (mut account, changes) = account_with_history("user-1", now);
    commit(&db, &changes).await.unwrap();

    let mut first = db.begin().await.unwrap();
    first.read(&[id("user-1")], &[], &[]).await.unwrap();
    let mut change = granted(&mut account, 3, 5);
    let record = IdempotencyRecord {
        key: key(1),
        account: Some(id("user-1")),
        fingerprint: "cd".repeat(32),
        status: 201,
        body: r#"{"granted":5}"#.into(),
        created_at: now,
    };
    let purchase = PurchaseRecord {
        order_id: OrderId::parse("order-1").unwrap(),
        account_id: id("user-1"),
        credits: 5,
        bucket_id: creditd_ledger::BucketId::new(2),
        paid_at: now,
        paid_at_requested: None,
        expires_at: now + 10.hours(),
        paid: None,
        recorded_at: now,
    };
    change.idempotency.push(record.clone());
    change.purchases.push(purchase.clone());
    let first = first.hand_off(&change).await.unwrap();

    let mut second = db.begin().await.unwrap();
    let read = second
        .read(
            &[id("user-1")],
            &[key(1)],
            &[OrderId::parse("order-1").unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(read.accounts.len(), 1);
    assert_eq!(read.accounts[0].account, account);
    assert_eq!(read.accounts[0].entry_seq, 4);
    assert_eq!(read.idempotency, [record]);
    assert_eq!(read.purchases, [purchase]);
    let again = granted(&mut account, 4, 7);
    let second = second.hand_off(&again).await.unwrap();
    first.await.unwrap();
    second.await.unwrap();
    let stored = db.account(&id("user-1")).await.unwrap().unwrap();
    assert_eq!((stored.account, stored.entry_seq), (account, 5));
}

#[tokio::test]
async fn one_node_at_a_time_runs_the_jobs_on_postgres() {
    let Some(database) = crate::postgres_or_skip().await else {
        return;
    };
    let first = creditd_store::open(database.url()).await.unwrap();
    let second = creditd_store::open(database.url()).await.unwrap();
    assert!(first.leads_jobs().await.unwrap());
    assert!(!second.leads_jobs().await.unwrap());
    assert!(first.leads_jobs().await.unwrap(), "it keeps leading");
    first.close().await;
    // PostgreSQL releases the lock once the session's backend has ended, just after.
    let mut took_over = false;
    for _ in 0..100 {
        took_over = second.leads_jobs().await.unwrap();
        if took_over {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(took_over, "the next node takes over");
    second.close().await;
    database.drop().await;
}

#[tokio::test]
async fn a_sqlite_database_has_one_node_which_runs_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let db = creditd_store::open(&url).await.unwrap();
    assert!(db.leads_jobs().await.unwrap());
}

async fn accounts_are_listed_by_prefix_in_id_order_page_after_page(db: Db) {
    let prefix = |text: &str| creditd_ledger::AccountIdPrefix::parse(text).unwrap();
    let now = t("2026-11-21T10:00:00Z");
    let mut changes = Changes::default();
    for name in [
        "user-2", "user-10", "user-1", "user", "usex", "Z-user", "user~",
    ] {
        let Ok(account_id) = AccountId::parse(name) else {
            continue; // `~` is no account id character: it cannot be stored
        };
        changes.record(
            Account::open(account_id, TimeZone::UTC, now),
            0,
            History::default(),
        );
    }
    commit(&db, &changes).await.unwrap();
    let names = |page: Vec<creditd_store::StoredAccount>| -> Vec<String> {
        page.iter().map(|s| s.account.id().to_string()).collect()
    };
    let all = db.accounts_page(&prefix("user"), None, 10).await.unwrap();
    assert_eq!(names(all), ["user", "user-1", "user-10", "user-2"]);
    let first = db.accounts_page(&prefix("user-"), None, 2).await.unwrap();
    assert_eq!(names(first), ["user-1", "user-10"]);
    let next = db
        .accounts_page(&prefix("user-"), Some(&id("user-10")), 2)
        .await
        .unwrap();
    assert_eq!(names(next), ["user-2"]);
    let everyone = db.accounts_page(&prefix(""), None, 10).await.unwrap();
    assert_eq!(
        names(everyone),
        ["Z-user", "user", "user-1", "user-10", "user-2", "usex"]
    );
}

/// A PostgreSQL database whose own collation orders otherwise (ICU's English puts
/// `Z-user` after `usex`) lists accounts in the same bytewise order as SQLite: the keys
/// are `COLLATE "C"` (migration 0014).
#[tokio::test]
async fn accounts_are_listed_bytewise_whatever_the_postgres_database_collation() {
    let icu = "LOCALE_PROVIDER icu ICU_LOCALE 'en' TEMPLATE template0";
    if let Some(database) = crate::postgres::postgres_created_with_or_skip(icu).await {
        let db = creditd_store::open(database.url()).await.unwrap();
        accounts_are_listed_by_prefix_in_id_order_page_after_page(db).await;
        database.drop().await;
    }
}

async fn settled_holds_and_purchases_are_listed_newest_first_page_after_page(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let catalog = Catalog::default();
    let mut account = Account::open(id("user-1"), TimeZone::UTC, now);
    let mut history = History::default();
    let mut moment = account.at(&catalog, now, &mut history);
    moment
        .grant(general(100, GrantSource::Compensation, Expiry::Never))
        .unwrap();
    // Holds 1 … 4: settled as captured, released, captured; hold 4 stays pending.
    let holds: Vec<_> = (0..4)
        .map(|_| {
            moment.place_hold(&Use {
                feature: "ai_extender".into(),
                ..Use::default()
            })
        })
        .collect::<Result<_, _>>()
        .unwrap();
    moment.capture(holds[2].id(), None).unwrap();
    moment.release(holds[1].id()).unwrap();
    moment.capture(holds[0].id(), None).unwrap();
    drop(moment);
    commit(&db, &changes_for(&account, 0, &history))
        .await
        .unwrap();

    let ids = |page: &[creditd_ledger::Hold]| page.iter().map(|h| h.id().get()).collect::<Vec<_>>();
    let user = id("user-1");
    let first = db.settled_holds_page(&user, None, None, 2).await.unwrap();
    assert_eq!(
        ids(&first),
        [3, 2],
        "newest first, pending holds are not settled"
    );
    let next = db
        .settled_holds_page(&user, None, Some(first[1].id()), 2)
        .await
        .unwrap();
    assert_eq!(ids(&next), [1]);
    let captured = db
        .settled_holds_page(&user, Some(HoldStatus::Captured), None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&captured), [3, 1]);

    let purchase = |order: &str, minutes: i64| PurchaseRecord {
        order_id: OrderId::parse(order).unwrap(),
        account_id: user.clone(),
        credits: 100,
        bucket_id: creditd_ledger::BucketId::new(9),
        paid_at: now,
        paid_at_requested: None,
        expires_at: now + 10.hours(),
        paid: None,
        recorded_at: now + minutes.minutes(),
    };
    let changes = Changes {
        purchases: vec![
            purchase("order-a", 0),
            purchase("order-c", 1),
            purchase("order-b", 1),
            PurchaseRecord {
                account_id: id("user-2"),
                ..purchase("order-z", 5)
            },
        ],
        ..Changes::default()
    };
    commit(&db, &changes).await.unwrap();
    let orders = |page: &[PurchaseRecord]| {
        page.iter()
            .map(|p| p.order_id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let first = db.purchases_page(&user, None, 2).await.unwrap();
    assert_eq!(
        orders(&first),
        ["order-c", "order-b"],
        "ties newest order id first"
    );
    let next = db
        .purchases_page(&user, Some(&first[1].position()), 2)
        .await
        .unwrap();
    assert_eq!(
        orders(&next),
        ["order-a"],
        "another account's purchase is not listed"
    );
}

async fn audit_records_are_listed_newest_first_by_account_page_after_page(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let record = |action: &str, account: Option<&str>| AuditRecord {
        at: now,
        key_id: "k1".into(),
        key_name: "Dana (support)".into(),
        via: "console".into(),
        action: action.into(),
        account_id: account.map(id),
        reason: Some("ticket 12".into()),
        detail: "{}".into(),
    };
    let changes = Changes {
        audit: vec![
            record("grant", Some("user-1")),
            record("key.create", None),
            record("adjust", Some("user-1")),
            record("adjust", Some("user-2")),
        ],
        ..Changes::default()
    };
    commit(&db, &changes).await.unwrap();
    let actions = |page: &[creditd_store::StoredAudit]| {
        page.iter()
            .map(|a| a.record.action.clone())
            .collect::<Vec<_>>()
    };
    let all = db.audit_page(None, None, 10).await.unwrap();
    assert_eq!(actions(&all), ["adjust", "adjust", "key.create", "grant"]);
    assert_eq!(all[3].record, record("grant", Some("user-1")));
    let user = id("user-1");
    let first = db.audit_page(Some(&user), None, 1).await.unwrap();
    assert_eq!(actions(&first), ["adjust"]);
    let next = db
        .audit_page(Some(&user), Some(first[0].number), 5)
        .await
        .unwrap();
    assert_eq!(actions(&next), ["grant"]);
}

async fn a_console_session_is_found_by_id_until_and_after_it_ends(db: Db) {
    let now = t("2026-11-21T10:00:00Z");
    let session = ConsoleSession {
        id: "ab".repeat(32),
        key_id: "k1".into(),
        csrf: "c".repeat(43),
        created_at: now,
        expires_at: now + 8.hours(),
        ended_at: None,
    };
    let begin = Changes {
        console_sessions: vec![session.clone()],
        ..Changes::default()
    };
    commit(&db, &begin).await.unwrap();
    assert_eq!(
        db.console_session(&session.id).await.unwrap(),
        Some(session.clone())
    );
    let ended = ConsoleSession {
        ended_at: Some(now + 1.hours()),
        ..session.clone()
    };
    let end = Changes {
        console_sessions: vec![ended.clone()],
        ..Changes::default()
    };
    commit(&db, &end).await.unwrap();
    assert_eq!(db.console_session(&session.id).await.unwrap(), Some(ended));
    assert_eq!(db.console_session("other").await.unwrap(), None);
}
