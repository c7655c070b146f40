//! The catalog's file format (TOML, the form of `default_catalog.toml`): how a file is
//! read, merged over the built-in catalog, and checked into the model of `catalog.rs`,
//! every field range-checked with the place it was found.

use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use jiff::Span;
use serde::Deserialize;

use super::*;
use crate::limits::{Currency, MAX_AMOUNT, MAX_QUANTITY};
use crate::time;

impl Catalog {
    /// Reads a catalog file: the sections it has replace the built-in ones, the policy
    /// fields it leaves out keep their built-in values.
    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(text)?;
        let mut merged = builtin_file();
        if file.features.is_some() {
            merged.features = file.features;
        }
        if file.plans.is_some() {
            merged.plans = file.plans;
        }
        if file.packages.is_some() {
            merged.packages = file.packages;
        }
        merged.policies = file.policies.over(merged.policies);
        Catalog::from_file(merged)
    }

    fn from_file(file: CatalogFile) -> Result<Catalog, CatalogError> {
        let features = file
            .features
            .unwrap_or_default()
            .into_iter()
            .map(|(name, f)| f.check(&name).map(|f| (Arc::clone(&f.name), f)))
            .collect::<Result<IndexMap<_, _>, _>>()?;
        if features.is_empty() {
            return Err(invalid("features", "at least one feature is needed"));
        }
        let plans = file
            .plans
            .unwrap_or_default()
            .into_iter()
            .map(|(name, p)| p.check(&name).map(|p| (Arc::clone(&p.name), p)))
            .collect::<Result<IndexMap<_, _>, _>>()?;
        let packages = file
            .packages
            .unwrap_or_default()
            .into_iter()
            .map(|(name, p)| p.check(&name).map(|p| (Arc::clone(&p.name), p)))
            .collect::<Result<IndexMap<_, _>, _>>()?;
        let policies = file.policies.check()?;
        Ok(Catalog {
            features,
            plans,
            packages,
            policies,
        })
    }
}

impl Default for Catalog {
    /// SPEC §3's catalog.
    fn default() -> Self {
        Catalog::from_file(builtin_file()).expect("the built-in catalog is valid (unit-tested)")
    }
}

fn builtin_file() -> CatalogFile {
    toml::from_str(DEFAULT_CATALOG_TOML).expect("the built-in catalog parses (unit-tested)")
}

fn invalid(place: impl Into<String>, problem: impl Into<String>) -> CatalogError {
    CatalogError::Invalid {
        place: place.into(),
        problem: problem.into(),
    }
}

fn check_range<T: PartialOrd + fmt::Display>(
    place: String,
    value: T,
    min: T,
    max: T,
) -> Result<T, CatalogError> {
    if min <= value && value <= max {
        Ok(value)
    } else {
        Err(invalid(place, format!("{value} is not in {min} … {max}")))
    }
}

/// Largest reconciliation file a catalog may allow: 4 GiB.
const MAX_RECONCILIATION_BYTES: u64 = 1 << 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    features: Option<IndexMap<String, FeatureFile>>,
    plans: Option<IndexMap<String, PlanFile>>,
    packages: Option<IndexMap<String, PackageFile>>,
    #[serde(default)]
    policies: PoliciesFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureFile {
    category: Category,
    unit: String,
    block: u32,
    default_quantity: u32,
    prices: PricesFile,
    #[serde(default)]
    names: IndexMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricesFile {
    general: Option<u64>,
    premium: Option<u64>,
}

impl FeatureFile {
    fn check(self, name: &str) -> Result<Feature, CatalogError> {
        let at = |field: &str| format!("features.{name}.{field}");
        if name.is_empty() {
            return Err(invalid("features", "a feature needs a name"));
        }
        let block = check_range(at("block"), self.block, 1, MAX_QUANTITY)?;
        let default_quantity = check_range(
            at("default_quantity"),
            self.default_quantity,
            1,
            MAX_QUANTITY,
        )?;
        if self.prices.general.is_none() && self.prices.premium.is_none() {
            return Err(invalid(at("prices"), "at least one tier needs a price"));
        }
        for (tier, price) in [
            ("general", self.prices.general),
            ("premium", self.prices.premium),
        ] {
            if let Some(price) = price {
                check_range(at(&format!("prices.{tier}")), price, 0, MAX_AMOUNT)?;
            }
        }
        for (language, text) in &self.names {
            if language.is_empty() || text.trim().is_empty() {
                return Err(invalid(
                    at("names"),
                    "each name needs a language tag and some words",
                ));
            }
        }
        Ok(Feature {
            name: name.into(),
            category: self.category,
            unit: self.unit,
            block,
            default_quantity,
            general: self.prices.general,
            premium: self.prices.premium,
            names: self.names,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    trial_days: u32,
    trial_credits: u64,
    monthly_credits: u64,
    monthly_agent_credits: u64,
}

impl PlanFile {
    fn check(self, name: &str) -> Result<Plan, CatalogError> {
        let at = |field: &str| format!("plans.{name}.{field}");
        Ok(Plan {
            name: name.into(),
            trial_days: check_range(at("trial_days"), self.trial_days, 0, MAX_TRIAL_DAYS)?,
            trial_credits: check_range(at("trial_credits"), self.trial_credits, 0, MAX_AMOUNT)?,
            monthly_credits: check_range(
                at("monthly_credits"),
                self.monthly_credits,
                0,
                MAX_AMOUNT,
            )?,
            monthly_agent_credits: check_range(
                at("monthly_agent_credits"),
                self.monthly_agent_credits,
                0,
                MAX_AMOUNT,
            )?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageFile {
    credits: u64,
    price_minor: u64,
    currency: String,
}

impl PackageFile {
    fn check(self, name: &str) -> Result<Package, CatalogError> {
        let at = |field: &str| format!("packages.{name}.{field}");
        let currency = Currency::parse(&self.currency)
            .map_err(|_| invalid(at("currency"), "a three-letter ISO 4217 code is needed"))?;
        Ok(Package {
            name: name.into(),
            credits: check_range(at("credits"), self.credits, 1, MAX_AMOUNT)?,
            price_minor: self.price_minor,
            currency,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PoliciesFile {
    daily_login_credits: Option<u64>,
    purchase_validity: Option<Span>,
    refund_grace: Option<Span>,
    hold_ttl_default_seconds: Option<u32>,
    hold_ttl_min_seconds: Option<u32>,
    hold_ttl_max_seconds: Option<u32>,
    default_time_zone: Option<String>,
    expiry_notice: Option<Span>,
    low_balance_threshold: Option<u64>,
    reconciliation_max_bytes: Option<u64>,
}

impl PoliciesFile {
    /// These fields where given, `base`'s elsewhere.
    fn over(self, base: PoliciesFile) -> PoliciesFile {
        PoliciesFile {
            daily_login_credits: self.daily_login_credits.or(base.daily_login_credits),
            purchase_validity: self.purchase_validity.or(base.purchase_validity),
            refund_grace: self.refund_grace.or(base.refund_grace),
            hold_ttl_default_seconds: self
                .hold_ttl_default_seconds
                .or(base.hold_ttl_default_seconds),
            hold_ttl_min_seconds: self.hold_ttl_min_seconds.or(base.hold_ttl_min_seconds),
            hold_ttl_max_seconds: self.hold_ttl_max_seconds.or(base.hold_ttl_max_seconds),
            default_time_zone: self.default_time_zone.or(base.default_time_zone),
            expiry_notice: self.expiry_notice.or(base.expiry_notice),
            low_balance_threshold: self.low_balance_threshold.or(base.low_balance_threshold),
            reconciliation_max_bytes: self
                .reconciliation_max_bytes
                .or(base.reconciliation_max_bytes),
        }
    }

    fn check(self) -> Result<Policies, CatalogError> {
        let missing = |field: &str| invalid(format!("policies.{field}"), "missing");
        let positive = |field: &str, span: Option<Span>| {
            let span = span.ok_or_else(|| missing(field))?;
            time::check_positive(span)
                .map_err(|_| invalid(format!("policies.{field}"), "must be a positive duration"))
        };
        let min = self
            .hold_ttl_min_seconds
            .ok_or_else(|| missing("hold_ttl_min_seconds"))?;
        let max = self
            .hold_ttl_max_seconds
            .ok_or_else(|| missing("hold_ttl_max_seconds"))?;
        let min = check_range("policies.hold_ttl_min_seconds".into(), min, 1, max)?;
        let default = self
            .hold_ttl_default_seconds
            .ok_or_else(|| missing("hold_ttl_default_seconds"))?;
        let zone_name = self
            .default_time_zone
            .ok_or_else(|| missing("default_time_zone"))?;
        Ok(Policies {
            daily_login_credits: check_range(
                "policies.daily_login_credits".into(),
                self.daily_login_credits
                    .ok_or_else(|| missing("daily_login_credits"))?,
                0,
                MAX_AMOUNT,
            )?,
            purchase_validity: positive("purchase_validity", self.purchase_validity)?,
            refund_grace: positive("refund_grace", self.refund_grace)?,
            hold_ttl_default_seconds: check_range(
                "policies.hold_ttl_default_seconds".into(),
                default,
                min,
                max,
            )?,
            hold_ttl_min_seconds: min,
            hold_ttl_max_seconds: max,
            default_time_zone: time::parse_time_zone(&zone_name)
                .map_err(|refusal| invalid("policies.default_time_zone", refusal.to_string()))?,
            expiry_notice: positive("expiry_notice", self.expiry_notice)?,
            reconciliation_max_bytes: check_range(
                "policies.reconciliation_max_bytes".into(),
                self.reconciliation_max_bytes
                    .ok_or_else(|| missing("reconciliation_max_bytes"))?,
                1,
                MAX_RECONCILIATION_BYTES,
            )?,
            low_balance_threshold: self
                .low_balance_threshold
                .map(|threshold| {
                    check_range(
                        "policies.low_balance_threshold".into(),
                        threshold,
                        1,
                        MAX_AMOUNT,
                    )
                })
                .transpose()?,
        })
    }
}
