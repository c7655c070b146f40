//! The catalog: features and their prices, plans, packages and policies.
//!
//! It is configuration, not state: the server loads it once (SPEC's defaults, or a TOML
//! file over them) and passes it to every command. The defaults are the TOML text in
//! `default_catalog.toml`, so the built-in catalog and the file format are one thing.

use std::sync::Arc;

use indexmap::IndexMap;
use jiff::Span;
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::limits::{Currency, MAX_QUANTITY};
use crate::{CreditKind, PurchaseCredits, Refusal};

mod file;

/// The built-in catalog of SPEC §3, in the configuration file's own format.
pub const DEFAULT_CATALOG_TOML: &str = include_str!("default_catalog.toml");

/// Longest trial a plan may configure: ten years keeps every trial end in range.
pub const MAX_TRIAL_DAYS: u32 = 3_650;

/// What a feature is, which decides the kinds of credit that pay for it (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A tool: paid with general credits only.
    Tool,
    /// An AI Agent task: paid with agent credits first, then general credits.
    Agent,
}

impl Category {
    /// Whether credits of `kind` may pay for a feature of this category.
    pub fn accepts(self, kind: CreditKind) -> bool {
        match self {
            Category::Tool => kind == CreditKind::General,
            Category::Agent => true,
        }
    }

    /// The name used in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Tool => "tool",
            Category::Agent => "agent",
        }
    }
}

/// The model tier a use runs on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, strum::IntoStaticStr, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum Tier {
    /// General models (the default).
    #[default]
    General,
    /// Premium models (e.g. Midjourney).
    Premium,
}

/// A price fixed at the moment a hold is placed: `per_block × ceil(quantity / block)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Price {
    /// Credits per started block.
    pub per_block: u64,
    /// Units per block (5 seconds of video, 1 image…), at least 1.
    pub block: u32,
}

impl Price {
    /// The cost of `quantity` units: every started block is paid in full.
    pub fn cost(self, quantity: u32) -> u64 {
        debug_assert!(self.block >= 1 && quantity <= MAX_QUANTITY);
        let blocks = quantity.div_ceil(self.block);
        // Catalog prices are at most MAX_AMOUNT and quantities MAX_QUANTITY, so the
        // product stays below 10^14: saturation is never reached.
        u64::from(blocks).saturating_mul(self.per_block)
    }
}

/// A paid feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name, as callers send it (`agent.poster`).
    pub name: Arc<str>,
    /// Tool or agent task.
    pub category: Category,
    /// What one unit of quantity is (image, second, item…), for people.
    pub unit: String,
    /// Units per priced block.
    pub block: u32,
    /// The quantity of a use that names none.
    pub default_quantity: u32,
    /// Price per block in the general tier, if it has one.
    pub general: Option<u64>,
    /// Price per block in the premium tier, if it has one.
    pub premium: Option<u64>,
    /// What people read, by language tag (`en`, `zh`), in the catalog's order.
    pub names: IndexMap<String, String>,
}

impl Feature {
    /// The feature's name in words for a reader who accepts `languages` (most wanted
    /// first, as `Accept-Language` tags): the first one the catalog has, matched whole
    /// or by its primary subtag (`zh-CN` finds `zh`), else English, else the feature's id.
    pub fn display_name(&self, languages: &[&str]) -> &str {
        let find = |tag: &str| {
            self.names
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(tag))
                .map(|(_, text)| text.as_str())
        };
        languages
            .iter()
            .find_map(|tag| find(tag).or_else(|| find(tag.split('-').next().unwrap_or(tag))))
            .or_else(|| find("en"))
            .unwrap_or(&self.name)
    }

    /// The price in `tier`, or `tier_not_available`.
    pub fn price(&self, tier: Tier) -> Result<Price, Refusal> {
        let per_block = match tier {
            Tier::General => self.general,
            Tier::Premium => self.premium,
        };
        per_block
            .map(|per_block| Price {
                per_block,
                block: self.block,
            })
            .ok_or_else(|| Refusal::TierNotAvailable {
                feature: self.name.to_string(),
                tier,
            })
    }
}

/// A membership plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The plan's name (`pro`).
    pub name: Arc<str>,
    /// Length of the trial in calendar days of the account's zone.
    pub trial_days: u32,
    /// General credits granted when the trial starts.
    pub trial_credits: u64,
    /// `subscription` credits of each monthly distribution.
    pub monthly_credits: u64,
    /// `membership_agent` credits of each monthly distribution.
    pub monthly_agent_credits: u64,
}

/// A credit package that can be bought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The package's name (`credits_100`).
    pub name: Arc<str>,
    /// Credits it grants.
    pub credits: u64,
    /// Its list price in minor units (cents).
    pub price_minor: u64,
    /// ISO 4217 currency of the price.
    pub currency: Currency,
}

/// Service-wide policies.
#[derive(Clone, Debug)]
pub struct Policies {
    /// Agent credits of one daily login.
    pub daily_login_credits: u64,
    /// How long purchased credits last after the payment (calendar, default 2 years).
    pub purchase_validity: Span,
    /// How long credits returned into an expired bucket stay usable (default 24 h).
    pub refund_grace: Span,
    /// TTL of a hold that names none.
    pub hold_ttl_default_seconds: u32,
    /// Shortest TTL a hold may ask for.
    pub hold_ttl_min_seconds: u32,
    /// Longest TTL a hold may ask for.
    pub hold_ttl_max_seconds: u32,
    /// Zone of an account created without one.
    pub default_time_zone: TimeZone,
    /// How long before a bucket's end `credits.expiring_soon` is told (default 7
    /// calendar days in the account's zone).
    pub expiry_notice: Span,
    /// `balance.low` below this total for accounts that set no threshold of their own
    /// (default none).
    pub low_balance_threshold: Option<u64>,
    /// Largest reconciliation file accepted, in bytes (default 256 MiB: a million rows
    /// fit several times over).
    pub reconciliation_max_bytes: u64,
}

/// Everything configurable about prices and plans; see the module docs.
#[derive(Clone, Debug)]
pub struct Catalog {
    features: IndexMap<Arc<str>, Feature>,
    plans: IndexMap<Arc<str>, Plan>,
    packages: IndexMap<Arc<str>, Package>,
    policies: Policies,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The text is not TOML of the catalog's form.
    #[error("catalog is not valid TOML of the expected form: {0}")]
    Syntax(#[from] toml::de::Error),
    /// A value breaks a rule.
    #[error("catalog {place}: {problem}")]
    Invalid {
        /// Where: `features.ai_model.block`.
        place: String,
        /// What is wrong.
        problem: String,
    },
}

impl Catalog {
    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Result<&Feature, Refusal> {
        self.features
            .get(name)
            .ok_or_else(|| Refusal::UnknownFeature(name.to_owned()))
    }

    /// The plan called `name`.
    pub fn plan(&self, name: &str) -> Result<&Plan, Refusal> {
        self.plans
            .get(name)
            .ok_or_else(|| Refusal::UnknownPlan(name.to_owned()))
    }

    /// The plan called `name`, or the default plan when no name is given: the
    /// catalog's first (SPEC §2's plans are listed most common first).
    pub fn plan_or_default(&self, name: Option<&str>) -> Result<&Plan, Refusal> {
        match name {
            Some(name) => self.plan(name),
            None => self.plans.values().next().ok_or(Refusal::NoPlan),
        }
    }

    /// The package called `name`.
    pub fn package(&self, name: &str) -> Result<&Package, Refusal> {
        self.packages
            .get(name)
            .ok_or_else(|| Refusal::UnknownPackage(name.to_owned()))
    }

    /// The credits a purchase buys: a package counts as its credits (SPEC §8).
    pub fn credits_of(&self, bought: &PurchaseCredits) -> Result<u64, Refusal> {
        match bought {
            PurchaseCredits::Package(name) => Ok(self.package(name)?.credits),
            PurchaseCredits::Credits(amount) => Ok(amount.get()),
        }
    }

    /// Every feature, in the configuration's order.
    pub fn features(&self) -> impl Iterator<Item = &Feature> {
        self.features.values()
    }

    /// Every plan, in the configuration's order.
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }

    /// Every package, in the configuration's order.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.packages.values()
    }

    /// The policies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (feature, category, block, general, premium, default quantity)
    type PriceRow = (&'static str, Category, u32, Option<u64>, Option<u64>, u32);

    #[test]
    fn feature_names_are_the_faqs_words_in_the_readers_language() {
        let catalog = Catalog::default();
        let name = |feature: &str, languages: &[&str]| {
            catalog
                .feature(feature)
                .map(|f| f.display_name(languages).to_owned())
        };
        assert_eq!(
            name("agent.poster", &["en-US"]).as_deref(),
            Ok("Poster Generation")
        );
        assert_eq!(
            name("ai_background", &["zh-CN", "en"]).as_deref(),
            Ok("AI 背景")
        );
        assert_eq!(
            name("agent.web_page", &["fr"]).as_deref(),
            Ok("Web Page Creation")
        );
        assert_eq!(name("private_model", &[]).as_deref(), Ok("Private Models"));
    }

    /// SPEC §3's table.
    const SPEC_PRICES: [PriceRow; 14] = [
        ("ai_background", Category::Tool, 1, Some(2), None, 2),
        ("ai_model", Category::Tool, 1, Some(2), None, 2),
        ("footwear_model", Category::Tool, 1, Some(2), None, 2),
        ("private_model", Category::Tool, 1, Some(20), None, 1),
        ("image_color_change", Category::Tool, 1, Some(1), None, 1),
        ("ai_extender", Category::Tool, 1, Some(1), None, 1),
        ("agent.image_editing", Category::Agent, 1, Some(1), None, 1),
        (
            "agent.image_generation",
            Category::Agent,
            1,
            Some(2),
            Some(3),
            1,
        ),
        ("agent.video_editing", Category::Agent, 1, Some(4), None, 1),
        (
            "agent.video_generation",
            Category::Agent,
            5,
            Some(20),
            Some(20),
            5,
        ),
        (
            "agent.brand_creation",
            Category::Agent,
            1,
            Some(10),
            Some(15),
            1,
        ),
        ("agent.poster", Category::Agent, 1, Some(10), Some(15), 1),
        ("agent.web_page", Category::Agent, 1, Some(10), Some(15), 1),
        ("agent.ppt", Category::Agent, 1, Some(10), Some(15), 1),
    ];

    #[test]
    fn default_catalog_has_spec_features_prices_and_default_quantities() {
        let catalog = Catalog::default();
        let names: Vec<&str> = catalog.features().map(|f| &*f.name).collect();
        let spec_names: Vec<&str> = SPEC_PRICES.iter().map(|row| row.0).collect();
        assert_eq!(names, spec_names);
        for (name, category, block, general, premium, default_quantity) in SPEC_PRICES {
            let f = catalog.feature(name).expect("feature");
            assert_eq!(
                (
                    f.category,
                    f.block,
                    f.general,
                    f.premium,
                    f.default_quantity
                ),
                (category, block, general, premium, default_quantity),
                "{name}"
            );
        }
    }

    #[test]
    fn default_catalog_has_spec_plan_packages_and_policies() {
        let catalog = Catalog::default();
        let pro = catalog.plan("pro").expect("pro");
        assert_eq!(
            (
                pro.trial_days,
                pro.trial_credits,
                pro.monthly_credits,
                pro.monthly_agent_credits
            ),
            (7, 50, 500, 100)
        );
        let packages: Vec<(&str, u64, u64)> = catalog
            .packages()
            .map(|p| (&*p.name, p.credits, p.price_minor))
            .collect();
        assert_eq!(
            packages,
            [
                ("credits_100", 100, 499),
                ("credits_500", 500, 1999),
                ("credits_2000", 2000, 6999)
            ]
        );
        let p = catalog.policies();
        assert_eq!(p.daily_login_credits, 10);
        assert_eq!(
            p.purchase_validity.fieldwise(),
            Span::new().years(2).fieldwise()
        );
        assert_eq!(
            p.refund_grace.fieldwise(),
            Span::new().hours(24).fieldwise()
        );
        assert_eq!(
            (
                p.hold_ttl_default_seconds,
                p.hold_ttl_min_seconds,
                p.hold_ttl_max_seconds
            ),
            (900, 1, 86_400)
        );
    }

    #[test]
    fn cost_is_price_times_started_blocks() {
        let catalog = Catalog::default();
        let video = catalog
            .feature("agent.video_generation")
            .and_then(|f| f.price(Tier::General))
            .expect("price");
        assert_eq!(video.cost(5), 20);
        assert_eq!(video.cost(7), 40, "7 s = 2 blocks of 5 s");
        assert_eq!(video.cost(12), 60);
        assert_eq!(video.cost(0), 0);
        let background = catalog
            .feature("ai_background")
            .and_then(|f| f.price(Tier::General));
        assert_eq!(background.map(|p| p.cost(2)), Ok(4));
    }

    #[test]
    fn a_tier_without_a_price_is_not_available() {
        let catalog = Catalog::default();
        let refusal = catalog
            .feature("agent.video_editing")
            .and_then(|f| f.price(Tier::Premium));
        assert_eq!(refusal.map_err(|r| r.code()), Err("tier_not_available"));
        assert_eq!(
            catalog.feature("agent.nope").map_err(|r| r.code()).err(),
            Some("unknown_feature")
        );
    }

    #[test]
    fn a_config_file_replaces_the_sections_it_has_and_keeps_other_defaults() {
        let catalog = Catalog::from_toml(
            r#"
            [policies]
            daily_login_credits = 25

            [plans.max]
            trial_days = 3
            trial_credits = 10
            monthly_credits = 2000
            monthly_agent_credits = 400
            "#,
        )
        .expect("valid");
        assert_eq!(catalog.policies().daily_login_credits, 25);
        assert_eq!(catalog.policies().hold_ttl_default_seconds, 900);
        assert!(
            catalog.plan("pro").is_err(),
            "[plans] replaces the built-in plans"
        );
        assert_eq!(catalog.plan("max").map(|p| p.monthly_credits), Ok(2000));
        assert_eq!(catalog.features().count(), 14, "features kept");
    }

    #[test]
    fn a_config_file_with_bad_values_is_refused_with_the_place() {
        let cases = [
            (
                "[features.x]\ncategory='tool'\nunit='u'\nblock=0\ndefault_quantity=1\nprices={general=1}",
                "features.x.block",
            ),
            (
                "[features.x]\ncategory='tool'\nunit='u'\nblock=1\ndefault_quantity=1\nprices={}",
                "features.x.prices",
            ),
            ("[policies]\nrefund_grace='-PT1H'", "policies.refund_grace"),
            (
                "[policies]\nhold_ttl_default_seconds=0",
                "policies.hold_ttl_default_seconds",
            ),
            (
                "[policies]\ndefault_time_zone='Nowhere/Land'",
                "policies.default_time_zone",
            ),
            (
                "[packages.p]\ncredits=5\nprice_minor=1\ncurrency='usd'",
                "packages.p.currency",
            ),
        ];
        for (text, place) in cases {
            match Catalog::from_toml(text) {
                Err(CatalogError::Invalid { place: found, .. }) => assert_eq!(found, place),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            Catalog::from_toml("[policies]\nunknown = 1"),
            Err(CatalogError::Syntax(_))
        ));
    }

    #[test]
    fn the_default_plan_is_the_catalogs_first() {
        let catalog = Catalog::default();
        let first = catalog.plans().next().unwrap();
        assert_eq!(catalog.plan_or_default(None).unwrap().name, first.name);
        assert!(matches!(
            catalog.plan_or_default(Some("nope")),
            Err(Refusal::UnknownPlan(_))
        ));
        let planless = Catalog::from_toml("[plans]").unwrap();
        assert_eq!(planless.plan_or_default(None).err(), Some(Refusal::NoPlan));
    }

    #[test]
    fn a_package_counts_as_its_credits() {
        let catalog = Catalog::default();
        let package = catalog.packages().next().unwrap();
        let bought = PurchaseCredits::Package(package.name.to_string());
        assert_eq!(catalog.credits_of(&bought), Ok(package.credits));
        let amount = crate::Amount::new(42).unwrap();
        assert_eq!(
            catalog.credits_of(&PurchaseCredits::Credits(amount)),
            Ok(42)
        );
        let unknown = PurchaseCredits::Package("nope".into());
        assert!(matches!(
            catalog.credits_of(&unknown),
            Err(Refusal::UnknownPackage(_))
        ));
    }
}
