//! The languages of the pages: English and Simplified Chinese, chosen by `?lang=` or
//! `Accept-Language`. Words come from Fluent files (`locales/`, compiled into the binary
//! by `fluent-templates`); numbers are grouped per language by `num-format`, and dates
//! follow each language's own order.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid, static_loader};
use jiff::Zoned;
use jiff::civil::Date;
use num_format::{Locale, ToFormattedString};

static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en-US",
        // Placeables are never right-to-left text here: no isolation marks around them.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static ENGLISH: LanguageIdentifier = langid!("en-US");
static CHINESE: LanguageIdentifier = langid!("zh-CN");

/// A language the pages are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// `?lang=` if it names a language, else the first of `accepted` (most wanted
    /// first) that the pages have, else English.
    pub fn choose(query: Option<&str>, accepted: &[String]) -> Lang {
        query
            .into_iter()
            .chain(accepted.iter().map(String::as_str))
            .find_map(Lang::from_tag)
            .unwrap_or_default()
    }

    fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or(tag);
        if primary.eq_ignore_ascii_case("zh") {
            Some(Lang::Zh)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The value of `?lang=` and of `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The `lang` attribute of the page.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-Hans",
        }
    }

    /// The language's own name, for the switch between them.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "简体中文",
        }
    }

    /// The tags the catalog's feature names are looked up by.
    pub fn tags(self) -> &'static [&'static str] {
        match self {
            Lang::En => &["en"],
            Lang::Zh => &["zh", "en"],
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        match self {
            Lang::En => &ENGLISH,
            Lang::Zh => &CHINESE,
        }
    }

    /// The words of message `id`.
    pub fn t(self, id: &str) -> String {
        LOCALES.lookup(self.id(), id)
    }

    /// The words of message `id`, if there is such a message.
    pub fn try_t(self, id: &str) -> Option<String> {
        LOCALES.try_lookup(self.id(), id)
    }

    /// The words of message `id` with its arguments.
    pub fn t_with(self, id: &str, args: &[(&'static str, FluentValue<'static>)]) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue<'static>> = args
            .iter()
            .map(|(name, value)| (Cow::Borrowed(*name), value.clone()))
            .collect();
        LOCALES.lookup_with_args(self.id(), id, &args)
    }

    /// `n` with the language's digit grouping (`12,345`).
    pub fn number(self, n: impl ToFormattedString) -> String {
        n.to_formatted_string(match self {
            Lang::En => &Locale::en,
            Lang::Zh => &Locale::zh,
        })
    }

    /// A signed change, with its sign always shown (`+100`, `−40`).
    pub fn signed(self, n: i64) -> String {
        let digits = self.number(n.unsigned_abs());
        match n {
            0 => digits,
            n if n > 0 => format!("+{digits}"),
            _ => format!("\u{2212}{digits}"),
        }
    }

    /// A local date in full (`Dec 3, 2026`, `2026年12月3日`).
    pub fn date(self, date: Date) -> String {
        match self {
            Lang::En => date.strftime("%b %-d, %Y").to_string(),
            Lang::Zh => date.strftime("%Y年%-m月%-d日").to_string(),
        }
    }

    /// A local day within a chart (`Dec 3`, `12月3日`).
    pub fn short_date(self, date: Date) -> String {
        match self {
            Lang::En => date.strftime("%b %-d").to_string(),
            Lang::Zh => date.strftime("%-m月%-d日").to_string(),
        }
    }

    /// A local date and time (`Dec 3, 2026, 14:05`, `2026年12月3日 14:05`).
    pub fn date_time(self, at: &Zoned) -> String {
        match self {
            Lang::En => at.strftime("%b %-d, %Y, %H:%M").to_string(),
            Lang::Zh => at.strftime("%Y年%-m月%-d日 %H:%M").to_string(),
        }
    }

    /// A month (`December 2026`, `2026年12月`).
    pub fn month(self, first_day: Date) -> String {
        match self {
            Lang::En => first_day.strftime("%B %Y").to_string(),
            Lang::Zh => first_day.strftime("%Y年%-m月").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_query_then_accept_language_then_english() {
        let accepted = vec!["fr".to_owned(), "zh-CN".to_owned()];
        assert_eq!(Lang::choose(None, &accepted), Lang::Zh);
        assert_eq!(Lang::choose(Some("en"), &accepted), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), &[]), Lang::En);
    }

    #[test]
    fn numbers_and_dates_are_written_the_languages_way() {
        let date: Date = "2026-12-03".parse().expect("date");
        assert_eq!(Lang::En.number(12_345_u64), "12,345");
        assert_eq!(Lang::En.signed(-40), "\u{2212}40");
        assert_eq!(Lang::En.date(date), "Dec 3, 2026");
        assert_eq!(Lang::Zh.date(date), "2026年12月3日");
        assert_eq!(Lang::Zh.month(date), "2026年12月");
    }

    #[test]
    fn every_message_has_both_languages() {
        let english = include_str!("../../locales/en-US/credits.ftl");
        let chinese = include_str!("../../locales/zh-CN/credits.ftl");
        let ids = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|line| !line.starts_with([' ', '#']) && line.contains(" ="))
                .filter_map(|line| line.split(" =").next().map(str::to_owned))
                .collect()
        };
        assert_eq!(ids(english), ids(chinese));
        let console = ids(include_str!("../../locales/en-US/console.ftl"));
        assert_eq!(
            console,
            ids(include_str!("../../locales/zh-CN/console.ftl"))
        );
        let shared: Vec<&String> = console
            .iter()
            .filter(|id| ids(english).contains(id))
            .collect();
        assert!(
            shared.is_empty(),
            "one id, one message across files: {shared:?}"
        );
        assert_eq!(
            Lang::Zh.t_with(
                "unit-count",
                &[("unit", "second".into()), ("count", 12.into())]
            ),
            "12 秒"
        );
        assert_eq!(
            Lang::En.t_with(
                "unit-count",
                &[("unit", "image".into()), ("count", 1.into())]
            ),
            "1 image"
        );
    }
}
