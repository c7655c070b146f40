//! A ledger page's time window as a range of entry numbers.
//!
//! An account's entries are dated in the order of their numbers: the ledger core never
//! runs an account's history backwards (`Account::at` takes a `now` behind the
//! account's own time as that time, and catching up dates each effect at its instant,
//! earliest first). So the entries of a window `[since, until)` are the entries of one
//! range of numbers, and a page of a window reads that range from the key `(account,
//! kind, number)`. Filtering by date instead looked through every entry outside the
//! window until a page was full: on an account of 1.1 million entries, a page of an old
//! window took 0.14 to 0.66 s at the median (docs/BENCHMARKS.md, "cost in history").
//!
//! Each end of the range is found by bisection inside the database ([`FIRST_DATED_FROM`]):
//! one statement, about 21 steps for a million entries, each a descent of the key.

use creditd_ledger::{AccountId, LedgerQuery};
use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Type};

use crate::StoreError;
use crate::instant::to_db;

/// The number from which an account's (`$1`) entries numbered from `$2` and below `$3`
/// are dated at or after `$4` (the range's end if none is), by bisection: each step
/// reads the first entry at or after the middle of the range left (the entries below
/// `low` are dated before `$4`, those from `high` on at or after it). The same text in
/// either database.
const FIRST_DATED_FROM: &str = "WITH RECURSIVE b (low, high) AS (
        SELECT CAST($2 AS BIGINT), (SELECT coalesce(max(number) + 1, 0) FROM history
                                    WHERE account_id = $1 AND kind = 'entry' AND number < $3)
        UNION ALL
        SELECT CASE WHEN (SELECT at FROM history
                          WHERE account_id = $1 AND kind = 'entry'
                            AND number >= (low + high) / 2 AND number < high
                          ORDER BY number LIMIT 1) < $4
                    THEN (SELECT number FROM history
                          WHERE account_id = $1 AND kind = 'entry'
                            AND number >= (low + high) / 2 AND number < high
                          ORDER BY number LIMIT 1) + 1
                    ELSE low END,
               CASE WHEN (SELECT at FROM history
                          WHERE account_id = $1 AND kind = 'entry'
                            AND number >= (low + high) / 2 AND number < high
                          ORDER BY number LIMIT 1) < $4
                    THEN high
                    ELSE (low + high) / 2 END
        FROM b WHERE low < high)
    SELECT min(low) FROM b WHERE low >= high";

/// The numbers `from .. below` of the entries of `query`'s time window among the
/// account's entries numbered below `below`; without a window, all of them (read at
/// once, nothing asked of the database).
pub(crate) async fn window_numbers<DB>(
    connection: &mut DB::Connection,
    id: &AccountId,
    query: &LedgerQuery,
    below: i64,
) -> Result<(i64, i64), StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut from = 0;
    let mut below = below;
    // The end first: the start is then looked for below it.
    for (instant, is_end) in [(query.until(), true), (query.since(), false)] {
        let Some(instant) = instant else { continue };
        let (number,): (i64,) = sqlx::query_as::<DB, (i64,)>(FIRST_DATED_FROM)
            .bind(id.as_str())
            .bind(from)
            .bind(below)
            .bind(to_db(instant))
            .fetch_one(&mut *connection)
            .await?;
        if is_end {
            below = number;
        } else {
            from = number;
        }
    }
    Ok((from, below))
}
