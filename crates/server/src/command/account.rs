//! Account commands in a batch: the ledger core decides, the batch keeps what it
//! decided (the account's new state, its history, the purchases recorded).

use creditd_ledger::{AccountCommand, AccountId, Effect, Purchase};
use creditd_store::{PurchaseRecord, StoredEntry, entry_number};
use jiff::Timestamp;

use super::{Batch, Outcome, Refused, Slot};

impl Batch<'_> {
    /// Runs `command` on the account `id` as of `now`. An account that does not exist
    /// is opened first if the command may open it (and kept only if the command
    /// succeeds). A purchase under an order id already recorded answers the first
    /// record, or is refused when it is not the same purchase.
    pub(super) fn on_account(
        &mut self,
        id: &AccountId,
        command: &AccountCommand,
        now: Timestamp,
    ) -> Result<Outcome, Refused> {
        let catalog = &self.core.catalog;
        if let AccountCommand::Purchase(purchase) = command
            && let Some(first) = self.purchases.get(&purchase.order_id)
        {
            let terms = purchase.terms(id, catalog)?;
            first.terms().check_retry(&purchase.order_id, &terms)?;
            return Ok(Outcome::Purchased {
                record: first.clone(),
                new: false,
            });
        }
        let slot = self.accounts.entry(id.clone()).or_default();
        let opened = slot.account.is_none();
        let account = match &mut slot.account {
            Some(account) => account,
            None => slot.account.insert(command.open(id.clone(), catalog, now)?),
        };
        let mut moment = account.at(catalog, now, &mut slot.history);
        let applied = moment.apply(command);
        let recorded_at = moment.now();
        drop(moment);
        let effect = match applied {
            Ok(effect) => effect,
            Err(refusal) => {
                if opened {
                    // A refused command leaves no trace, not even a new empty account.
                    *slot = Slot::default();
                } else {
                    // Time's effects happened whether or not the command was refused:
                    // catching up to it recorded them, and they are kept.
                    slot.touched = true;
                }
                return Err(refusal.into());
            }
        };
        slot.touched = true;
        Ok(match effect {
            Effect::Account => Outcome::Account {
                account: Box::new(account.clone()),
                low_balance_threshold: account.low_balance_threshold(catalog),
                // Opening is the answer only to the command whose purpose it is; a
                // membership change that opened the account answers the change.
                created: opened && matches!(command, AccountCommand::Open { .. }),
            },
            Effect::DailyLogin(login) => Outcome::DailyLogin(login),
            Effect::Granted { bucket, frozen } => Outcome::Granted { bucket, frozen },
            Effect::HoldPlaced(hold) => Outcome::Hold {
                account: id.clone(),
                hold,
                created: true,
            },
            Effect::HoldSettled(hold) => Outcome::Hold {
                account: id.clone(),
                hold,
                created: false,
            },
            Effect::Adjusted(entries) => {
                // The adjustment's entries are the last recorded.
                let first = slot.history.entries.len().saturating_sub(entries.len());
                let entries = entries
                    .into_iter()
                    .zip(first..)
                    .map(|(entry, index)| StoredEntry {
                        seq: entry_number(slot.entry_seq, index),
                        entry,
                    })
                    .collect();
                Outcome::Adjusted {
                    account: id.clone(),
                    entries,
                }
            }
            Effect::CaughtUp => Outcome::CaughtUp,
            Effect::Purchased(receipt) => {
                let AccountCommand::Purchase(Purchase { paid_at, paid, .. }) = command else {
                    unreachable!("only a purchase records a purchase")
                };
                let record = PurchaseRecord {
                    order_id: receipt.order_id,
                    account_id: id.clone(),
                    credits: receipt.credits,
                    bucket_id: receipt.bucket_id,
                    paid_at: receipt.paid_at,
                    paid_at_requested: *paid_at,
                    expires_at: receipt.expires_at,
                    paid: paid.clone(),
                    recorded_at,
                };
                self.purchases
                    .insert(record.order_id.clone(), record.clone());
                self.changes.purchases.push(record.clone());
                Outcome::Purchased { record, new: true }
            }
        })
    }
}
