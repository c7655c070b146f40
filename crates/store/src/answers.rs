//! Stored answers (the body a repeated `Idempotency-Key` is answered with again), in
//! format 2 compressed against [`DICTIONARY`] ([`packed`](crate::packed)).
//!
//! The answer is the biggest thing a charge stores: about 400 bytes of JSON against about
//! 300 for its ledger entry and hold together (docs/BENCHMARKS.md, "bytes per change").
//! Compressed against the dictionary a charge's answer takes about 50 bytes; compressed
//! alone, without it, it would take about 210.

use std::cell::RefCell;

use crate::StoreError;
use crate::packed::{Coders, Dictionary};

/// Typical answers: a captured charge, a hold still pending, a released one, a grant's
/// bucket and a problem. zstd takes it as raw content to refer back into.
const DICTIONARY: &str = concat!(
    r#"{"type":"https://creditd.dev/problems/","title":"","status":409,"code":"","detail":""}"#,
    r#"{"id":"b1","kind":"general","source":"purchase","granted":1000,"remaining":1000,"#,
    r#""granted_at":"2026-12-04T16:28:18.850353Z","expires_at":null,"frozen":false}"#,
    r#"{"id":"b2","kind":"agent","source":"daily_login","granted":20,"remaining":20,"#,
    r#""granted_at":"2026-12-04T00:00:00Z","expires_at":"2026-12-05T00:00:00Z","frozen":false,"#,
    r#""campaign":"welcome"}"#,
    r#"{"id":"h2_acct","account_id":"acct","feature":"video_generation","tier":"agent","#,
    r#""quantity":12,"amount":120,"status":"pending","created_at":"2026-12-04T16:28:18Z","#,
    r#""expires_at":"2026-12-04T16:43:18Z","allocations":[{"bucket_id":"b2","kind":"agent","#,
    r#""source":"membership","amount":20},{"bucket_id":"b3","kind":"general","#,
    r#""source":"trial","amount":100}],"captured_quantity":null,"captured_amount":null,"#,
    r#""refunded_amount":null,"settled_at":null}"#,
    r#"{"id":"h3_acct","status":"released","released_amount":120,"#,
    r#"{"id":"h1_acct","account_id":"acct","feature":"ai_extender","tier":"general","#,
    r#""quantity":1,"amount":1,"status":"captured","created_at":"2026-12-04T16:28:18.850353Z","#,
    r#""expires_at":"2026-12-04T16:43:18.850353Z","allocations":[{"bucket_id":"b1","#,
    r#""kind":"general","source":"promotion","amount":1}],"captured_quantity":1,"#,
    r#""captured_amount":1,"refunded_amount":0,"settled_at":"2026-12-04T16:28:18.850353Z"}"#,
);

thread_local! {
    static CODERS: RefCell<Coders> = const { RefCell::new(Coders::new()) };
}

/// Answers as format 2 stores them.
static ANSWERS: Dictionary = Dictionary::new("a stored answer", DICTIONARY, &CODERS);

/// An answer as format 2 stores it.
pub(crate) fn compress(json: &str) -> Result<Vec<u8>, StoreError> {
    ANSWERS.compress(json)
}

/// The JSON of a stored answer, of either format.
pub(crate) fn text(stored: &[u8]) -> Result<String, StoreError> {
    ANSWERS.text(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A charge's answer as the service gives it.
    const CHARGE: &str = r#"{"id":"h10_acct-86","account_id":"acct-86","feature":"ai_extender","tier":"general","quantity":1,"amount":1,"status":"captured","created_at":"2026-12-04T16:28:26.748018Z","expires_at":"2026-12-04T16:43:26.748018Z","allocations":[{"bucket_id":"b1","kind":"general","source":"promotion","amount":1}],"captured_quantity":1,"captured_amount":1,"refunded_amount":0,"settled_at":"2026-12-04T16:28:26.748018Z"}"#;

    #[test]
    fn a_format_2_answer_reads_back_as_the_json_answered() {
        for json in [CHARGE, "{}", r#"{"balance":0}"#, &"x".repeat(100_000)] {
            assert_eq!(text(&compress(json).unwrap()).unwrap(), json);
        }
    }

    #[test]
    fn a_format_1_answer_is_its_json_text() {
        assert_eq!(text(CHARGE.as_bytes()).unwrap(), CHARGE);
    }

    #[test]
    fn a_charges_answer_takes_a_sixth_of_its_json() {
        let stored = compress(CHARGE).unwrap();
        assert!(stored.len() * 6 < CHARGE.len(), "{} bytes", stored.len());
    }

    #[test]
    fn the_dictionary_of_format_2_is_pinned_by_an_answer_written_with_it() {
        let golden = include_bytes!("../tests/golden/format-2/answer.bin");
        assert_eq!(text(golden).unwrap(), CHARGE);
    }

    #[test]
    fn a_damaged_answer_is_refused_not_read() {
        let mut stored = compress(CHARGE).unwrap();
        stored.truncate(stored.len() - 3);
        assert!(text(&stored).is_err());
        assert!(text(&[2, 1, 2, 3]).is_err());
        assert!(text(&[0xff, 0xfe]).is_err());
    }
}
