//! Reconciliation (SPEC §11): the payment provider's list of paid orders is the truth,
//! and each of its rows is checked against the purchase recorded under its order id.
//!
//! A row is read into a [`PaidOrder`] (or is invalid, with the reason), then classified
//! by [`PaidOrder::status`] against the purchase recorded under its order id, with SPEC
//! §8's sameness ([`OrderTerms::check_retry`]): the same terms are `credited`, other
//! terms `conflicting`, none `missing`. A missing order is recorded as the purchase it
//! is (`paid_at` from the row, so validity runs from the payment), exactly once by its
//! order id, like any purchase.

use jiff::Timestamp;

use crate::{
    AccountId, Amount, Catalog, OrderId, OrderTerms, Purchase, PurchaseCredits, Refusal,
    whole_micros,
};

/// The columns of a reconciliation file, by name (their order is free).
pub const RECONCILIATION_COLUMNS: [&str; 5] =
    ["order_id", "account_id", "credits", "package", "paid_at"];

/// One paid order of the provider's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaidOrder {
    /// The account the order was for.
    pub account_id: AccountId,
    /// The purchase it is.
    pub purchase: Purchase,
}

/// What a row of the list is to creditd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RowStatus {
    /// Recorded, on the same terms.
    Credited,
    /// Not recorded under its order id.
    Missing,
    /// Recorded under its order id on other terms: for a person to look at; never
    /// applied.
    Conflicting,
    /// The row cannot be read, or breaks a rule.
    Invalid,
}

impl PaidOrder {
    /// Reads a row's fields (empty ones absent). Exactly one of `credits` and `package`;
    /// `paid_at` an RFC 3339 instant, not after `now`.
    pub fn read(
        order_id: &str,
        account_id: &str,
        credits: &str,
        package: &str,
        paid_at: &str,
        now: Timestamp,
    ) -> Result<PaidOrder, Refusal> {
        let order_id = OrderId::parse(order_id.trim())?;
        let account_id = AccountId::parse(account_id.trim())?;
        let credits = match (credits.trim(), package.trim()) {
            ("", "") => {
                return Err(Refusal::InvalidReconciliationRow(
                    "give credits or package".into(),
                ));
            }
            (amount, "") => {
                let amount = amount.parse::<u64>().map_err(|_| {
                    Refusal::InvalidReconciliationRow(format!(
                        "credits {amount:?} is not a whole number"
                    ))
                })?;
                PurchaseCredits::Credits(Amount::new(amount)?)
            }
            ("", name) => PurchaseCredits::Package(name.to_owned()),
            _ => {
                return Err(Refusal::InvalidReconciliationRow(
                    "give credits or package, not both".into(),
                ));
            }
        };
        let paid_at: Timestamp = paid_at.trim().parse().map_err(|_| {
            Refusal::InvalidReconciliationRow(format!(
                "paid_at {:?} is not an RFC 3339 instant",
                paid_at.trim()
            ))
        })?;
        let paid_at = whole_micros(paid_at);
        if paid_at > now {
            return Err(Refusal::PaidAtInFuture);
        }
        Ok(PaidOrder {
            account_id,
            purchase: Purchase {
                order_id,
                credits,
                paid_at: Some(paid_at),
                paid: None,
            },
        })
    }

    /// Where the order stands against `recorded`, the purchase recorded under its order
    /// id (its terms), if any. A package the catalog does not have is invalid.
    pub fn status(
        &self,
        recorded: Option<&OrderTerms>,
        catalog: &Catalog,
    ) -> Result<RowStatus, Refusal> {
        let terms = self.purchase.terms(&self.account_id, catalog)?;
        Ok(match recorded {
            None => RowStatus::Missing,
            Some(first) => match first.check_retry(&self.purchase.order_id, &terms) {
                Ok(()) => RowStatus::Credited,
                Err(_) => RowStatus::Conflicting,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-01T00:00:00Z".parse().expect("instant")
    }

    fn order(credits: &str, package: &str, paid_at: &str) -> Result<PaidOrder, Refusal> {
        PaidOrder::read("ord-1", "alice", credits, package, paid_at, now())
    }

    #[test]
    fn a_reconciliation_row_gives_credits_or_a_package_and_a_past_payment_time() {
        assert!(order("100", "", "2026-11-30T10:00:00Z").is_ok());
        assert!(order("", "credits_100", "2026-11-30T10:00:00+08:00").is_ok());
        assert!(order("", "", "2026-11-30T10:00:00Z").is_err());
        assert!(order("100", "credits_100", "2026-11-30T10:00:00Z").is_err());
        assert!(order("0", "", "2026-11-30T10:00:00Z").is_err());
        assert!(order("100", "", "yesterday").is_err());
        assert_eq!(
            order("100", "", "2026-12-02T00:00:00Z"),
            Err(Refusal::PaidAtInFuture)
        );
    }

    #[test]
    fn a_paid_order_is_credited_missing_or_conflicting_by_the_purchase_under_its_id() {
        let catalog = Catalog::default();
        let paid = order("", "credits_100", "2026-11-30T10:00:00Z").expect("row");
        let same = OrderTerms {
            account_id: AccountId::parse("alice").expect("id"),
            credits: 100,
            paid_at: None,
        };
        let other = OrderTerms {
            credits: 500,
            ..same.clone()
        };
        assert_eq!(paid.status(None, &catalog), Ok(RowStatus::Missing));
        assert_eq!(paid.status(Some(&same), &catalog), Ok(RowStatus::Credited));
        assert_eq!(
            paid.status(Some(&other), &catalog),
            Ok(RowStatus::Conflicting)
        );
        let unknown = order("", "credits_7", "2026-11-30T10:00:00Z").expect("row");
        assert!(
            unknown.status(None, &catalog).is_err(),
            "an unknown package"
        );
    }
}
