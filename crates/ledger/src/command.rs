//! Account commands as values, and the rules around running one.
//!
//! Every write on one account (SPEC §6) is an [`AccountCommand`]: the server parses a
//! request into one, the core runs it on a [`Moment`] and answers with an [`Effect`] or
//! a [`Refusal`]. Around that sit three rules that used to live in the service: which
//! commands open an account that does not exist yet and in which zone
//! ([`AccountCommand::open`]), and when a purchase under an order id already recorded is
//! the same purchase ([`OrderTerms::check_retry`], SPEC §8).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::{
    Account, AccountId, Adjustment, Amount, Bucket, Catalog, DailyLogin, Grant, Hold, HoldId,
    LedgerEntry, Moment, OrderId, Purchase, PurchaseReceipt, Refusal, Use,
};

/// One write on one account.
#[derive(Clone, Debug)]
pub enum AccountCommand {
    /// Create the account, or change its zone (`PUT /v1/accounts/{id}`).
    Open {
        /// The zone; `None` keeps the account's (or, opening it, the default).
        time_zone: Option<TimeZone>,
        /// The account's own low-balance threshold: `Some(Some(n))` sets it,
        /// `Some(None)` turns `balance.low` off for the account, `None` keeps it.
        low_balance_threshold: Option<Option<Amount>>,
    },
    /// Start a trial of a plan (default: the catalog's first).
    StartTrial {
        /// The plan's name.
        plan: Option<String>,
    },
    /// Start or renew a paid membership until `period_end`.
    Activate {
        /// The plan's name (default: the catalog's first).
        plan: Option<String>,
        /// When the paid period ends.
        period_end: Timestamp,
    },
    /// Lapse the membership now.
    Cancel,
    /// The daily login.
    DailyLogin,
    /// A promotion or compensation.
    Grant(Grant),
    /// A confirmed purchase.
    Purchase(Purchase),
    /// Reserve the cost of a use.
    PlaceHold(Use),
    /// A hold captured at once.
    Charge(Use),
    /// Charge a pending hold for what was delivered (all of it if `quantity` is `None`).
    Capture {
        /// The hold.
        hold: HoldId,
        /// The quantity delivered.
        quantity: Option<u32>,
    },
    /// Return everything a pending hold reserved.
    Release(HoldId),
    /// An admin's adjustment.
    Adjust(Adjustment),
    /// Record the time-based effects due (the sweeper, a ledger read).
    CatchUp,
}

/// What a command did, beside the new state and the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The account itself is the answer (opened, zone or membership changed).
    Account,
    /// The daily login's answer.
    DailyLogin(DailyLogin),
    /// A new bucket, frozen or not.
    Granted {
        /// The bucket.
        bucket: Bucket,
        /// Whether it is frozen now.
        frozen: bool,
    },
    /// A recorded purchase.
    Purchased(PurchaseReceipt),
    /// A new hold: pending, or captured at once (a charge).
    HoldPlaced(Hold),
    /// A hold captured or released.
    HoldSettled(Hold),
    /// The ledger entries of an adjustment, in the history's order.
    Adjusted(Vec<LedgerEntry>),
    /// Time's effects recorded; nothing else.
    CaughtUp,
}

impl AccountCommand {
    /// Whether the command may open the account it names when it does not exist. SPEC
    /// §6: writes on an unknown account create it; but a hold belongs to an account that
    /// exists, and catching up a missing account has nothing to record.
    pub fn opens_account(&self) -> bool {
        !matches!(
            self,
            AccountCommand::Capture { .. } | AccountCommand::Release(_) | AccountCommand::CatchUp
        )
    }

    /// The account this command opens as `id` when none exists, at `now`: in the zone
    /// the command names, else the catalog's default zone. `Err(UnknownAccount)` when
    /// the command needs an existing account.
    pub fn open(
        &self,
        id: AccountId,
        catalog: &Catalog,
        now: Timestamp,
    ) -> Result<Account, Refusal> {
        if !self.opens_account() {
            return Err(Refusal::UnknownAccount(id));
        }
        let zone = match self {
            AccountCommand::Open {
                time_zone: Some(zone),
                ..
            } => zone.clone(),
            _ => catalog.policies().default_time_zone.clone(),
        };
        Ok(Account::open(id, zone, now))
    }
}

impl Moment<'_> {
    /// Runs `command`: it applies completely, or is refused and changes nothing.
    pub fn apply(&mut self, command: &AccountCommand) -> Result<Effect, Refusal> {
        self.caught_up()?;
        let effect = self.run(command)?;
        self.observe_balance();
        Ok(effect)
    }

    fn run(&mut self, command: &AccountCommand) -> Result<Effect, Refusal> {
        Ok(match command {
            AccountCommand::Open {
                time_zone,
                low_balance_threshold,
            } => {
                if let Some(zone) = time_zone {
                    self.set_time_zone(zone.clone());
                }
                if let Some(threshold) = low_balance_threshold {
                    self.set_low_balance_threshold(*threshold);
                }
                Effect::Account
            }
            AccountCommand::StartTrial { plan } => {
                let plan = self.catalog().plan_or_default(plan.as_deref())?;
                self.start_trial(&plan.name.clone())?;
                Effect::Account
            }
            AccountCommand::Activate { plan, period_end } => {
                let plan = self.catalog().plan_or_default(plan.as_deref())?;
                self.activate(&plan.name.clone(), *period_end)?;
                Effect::Account
            }
            AccountCommand::Cancel => {
                self.cancel()?;
                Effect::Account
            }
            AccountCommand::DailyLogin => Effect::DailyLogin(self.daily_login()?),
            AccountCommand::Grant(grant) => {
                let bucket = self.grant(grant.clone())?;
                let frozen = self.account().is_frozen(&bucket);
                Effect::Granted { bucket, frozen }
            }
            AccountCommand::Purchase(purchase) => {
                Effect::Purchased(self.purchase(purchase.clone())?)
            }
            AccountCommand::PlaceHold(intended) => Effect::HoldPlaced(self.place_hold(intended)?),
            AccountCommand::Charge(intended) => Effect::HoldPlaced(self.charge(intended)?),
            AccountCommand::Capture { hold, quantity } => {
                Effect::HoldSettled(self.capture(*hold, *quantity)?)
            }
            AccountCommand::Release(hold) => Effect::HoldSettled(self.release(*hold)?),
            AccountCommand::Adjust(adjustment) => {
                Effect::Adjusted(self.adjust(adjustment.clone())?)
            }
            AccountCommand::CatchUp => Effect::CaughtUp,
        })
    }
}

/// The terms that make a purchase the same purchase as one recorded before under its
/// order id (SPEC §8): the account, the credits (a package counts as its credits), and
/// `paid_at` where both requests give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderTerms {
    /// The account credited.
    pub account_id: AccountId,
    /// The credits bought.
    pub credits: u64,
    /// `paid_at` as the request gave it, if it did.
    pub paid_at: Option<Timestamp>,
}

impl Purchase {
    /// This purchase's terms on `account`.
    pub fn terms(&self, account: &AccountId, catalog: &Catalog) -> Result<OrderTerms, Refusal> {
        Ok(OrderTerms {
            account_id: account.clone(),
            credits: catalog.credits_of(&self.credits)?,
            paid_at: self.paid_at,
        })
    }
}

impl OrderTerms {
    /// Whether `retry`, a purchase under `order`, is the purchase first recorded on
    /// these terms: then its first answer stands and nothing is granted again.
    /// Anything else under that order id is refused.
    pub fn check_retry(&self, order: &OrderId, retry: &OrderTerms) -> Result<(), Refusal> {
        let paid_at_agrees = match (self.paid_at, retry.paid_at) {
            (Some(first), Some(again)) => first == again,
            _ => true,
        };
        if self.account_id == retry.account_id && self.credits == retry.credits && paid_at_agrees {
            Ok(())
        } else {
            Err(Refusal::OrderConflict(order.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreditKind, Expiry, GrantSource, History, PurchaseCredits};

    fn at(text: &str) -> Timestamp {
        text.parse().expect("instant")
    }

    fn id(text: &str) -> AccountId {
        AccountId::parse(text).expect("account id")
    }

    #[test]
    fn writes_open_an_account_but_hold_settlement_and_catching_up_do_not() {
        let catalog = Catalog::default();
        let now = at("2026-03-01T00:00:00Z");
        let opening = [
            AccountCommand::Open {
                time_zone: None,
                low_balance_threshold: None,
            },
            AccountCommand::DailyLogin,
            AccountCommand::Cancel,
            AccountCommand::PlaceHold(Use::default()),
        ];
        for command in opening {
            assert!(command.open(id("a"), &catalog, now).is_ok(), "{command:?}");
        }
        let needing_an_account = [
            AccountCommand::Capture {
                hold: HoldId::new(1),
                quantity: None,
            },
            AccountCommand::Release(HoldId::new(1)),
            AccountCommand::CatchUp,
        ];
        for command in needing_an_account {
            assert_eq!(
                command.open(id("a"), &catalog, now).err(),
                Some(Refusal::UnknownAccount(id("a"))),
                "{command:?}"
            );
        }
    }

    #[test]
    fn a_new_account_takes_the_zone_its_command_names_else_the_default() {
        let catalog = Catalog::default();
        let now = at("2026-03-01T00:00:00Z");
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
        let named = AccountCommand::Open {
            time_zone: Some(shanghai.clone()),
            low_balance_threshold: None,
        };
        let opened = named.open(id("a"), &catalog, now).expect("opens");
        assert_eq!(opened.time_zone(), &shanghai);
        let other = AccountCommand::DailyLogin
            .open(id("b"), &catalog, now)
            .expect("opens");
        assert_eq!(other.time_zone(), &catalog.policies().default_time_zone);
    }

    #[test]
    fn membership_commands_without_a_plan_use_the_default_plan() {
        let catalog = Catalog::default();
        let now = at("2026-03-01T00:00:00Z");
        let command = AccountCommand::Activate {
            plan: None,
            period_end: at("2026-04-01T00:00:00Z"),
        };
        let mut account = command.open(id("a"), &catalog, now).expect("opens");
        let mut history = History::default();
        let effect = account.at(&catalog, now, &mut history).apply(&command);
        assert_eq!(effect, Ok(Effect::Account));
        let default = catalog.plan_or_default(None).expect("a plan");
        assert_eq!(account.membership().plan(), Some(&*default.name));
    }

    #[test]
    fn a_grant_answers_its_bucket_and_whether_it_is_frozen() {
        let catalog = Catalog::default();
        let now = at("2026-03-01T00:00:00Z");
        let command = AccountCommand::Grant(Grant {
            kind: CreditKind::General,
            amount: Amount::new(5).expect("amount"),
            source: GrantSource::Promotion,
            expiry: Expiry::Never,
            campaign: None,
            note: None,
        });
        let mut account = command.open(id("a"), &catalog, now).expect("opens");
        let mut history = History::default();
        let effect = account.at(&catalog, now, &mut history).apply(&command);
        match effect {
            Ok(Effect::Granted { bucket, frozen }) => {
                assert_eq!((bucket.remaining(), frozen), (5, false));
            }
            other => panic!("{other:?}"),
        }
    }

    fn terms(account: &str, credits: u64, paid_at: Option<&str>) -> OrderTerms {
        OrderTerms {
            account_id: id(account),
            credits,
            paid_at: paid_at.map(at),
        }
    }

    #[test]
    fn purchase_sameness_is_account_credits_and_paid_at_where_both_give_it() {
        let order = OrderId::parse("o-1").expect("order id");
        let first = terms("a", 100, Some("2026-03-01T00:00:00Z"));
        for same in [
            terms("a", 100, Some("2026-03-01T00:00:00Z")),
            terms("a", 100, None),
        ] {
            assert_eq!(first.check_retry(&order, &same), Ok(()));
        }
        assert_eq!(terms("a", 100, None).check_retry(&order, &first), Ok(()));
        for other in [
            terms("b", 100, None),
            terms("a", 101, None),
            terms("a", 100, Some("2026-03-01T00:00:01Z")),
        ] {
            assert_eq!(
                first.check_retry(&order, &other),
                Err(Refusal::OrderConflict(order.clone()))
            );
        }
    }

    #[test]
    fn purchase_sameness_counts_a_package_as_its_credits() {
        let catalog = Catalog::default();
        let package = catalog.packages().next().expect("a package");
        let purchase = |credits| Purchase {
            order_id: OrderId::parse("o-1").expect("order id"),
            credits,
            paid_at: None,
            paid: None,
        };
        let by_package = purchase(PurchaseCredits::Package(package.name.to_string()))
            .terms(&id("a"), &catalog)
            .expect("terms");
        let by_credits = purchase(PurchaseCredits::Credits(
            Amount::new(package.credits).expect("amount"),
        ))
        .terms(&id("a"), &catalog)
        .expect("terms");
        assert_eq!(by_package, by_credits);
    }
}
