//! Reading a request's JSON strictly, and saying what is wrong with it in plain words.
//!
//! serde_json keeps the last of two equal keys (`{"amount":1,"amount":500}` would grant
//! 500), so the body is first read into a [`Value`] by a visitor that refuses a
//! repeated key. The same visitor reads an integral float (`3125.0`, `5e3`) as the
//! integer it is, up to 2^53 where every integer is exact: JSON Schema calls such a
//! number an integer, and so does creditd. Then the value is read into the request's
//! type through `serde_path_to_error`, so a refusal names the field, and serde's
//! wording ("invalid type: floating point `1.5`, expected i64") becomes a sentence
//! ("amount must be a whole number from 1 to 9, not 1.5").

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Largest integer a float carries exactly (2^53): an integral float up to it is read
/// as an integer.
const MAX_EXACT_FLOAT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Parses `bytes` as JSON, refusing a key repeated in one object.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Reads `value` into `T`; the error is a sentence naming the field, and its range as
/// `range` tells it (a field's range in words, such as "from 1 to 1000000000").
pub fn read<T: DeserializeOwned>(
    value: Value,
    range: impl Fn(&str) -> Option<String>,
) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        plain(&path, &error.into_inner().to_string(), &range)
    })
}

/// serde's message about the field at `path` (`.` for the body itself), in words.
fn plain(path: &str, message: &str, range: impl Fn(&str) -> Option<String>) -> String {
    let field = if path == "." { "the body" } else { path };
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return if path == "." {
            format!("{missing} is required")
        } else {
            format!("{path}.{missing} is required")
        };
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .replace(" or ", ", ")
            .replace('`', "");
        // The path ends with the unknown field itself.
        let parent = path
            .strip_suffix(name)
            .unwrap_or(path)
            .trim_end_matches('.');
        let place = if parent.is_empty() {
            String::new()
        } else {
            format!(" in {parent}")
        };
        return format!("there is no field {name}{place}; the fields are {known}");
    }
    let typed = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.rsplit_once(", expected "));
    if let Some((got, expected)) = typed {
        let within = range(path).map_or_else(String::new, |words| format!(" {words}"));
        return format!(
            "{field} must be {}{within}, not {}",
            expected_words(expected),
            got_words(got)
        );
    }
    if message.starts_with("must ") {
        format!("{field} {message}")
    } else if field == "the body" {
        format!("the body: {message}")
    } else {
        format!("{field}: {message}")
    }
}

/// What serde says a field expects, as a person would say it.
fn expected_words(expected: &str) -> String {
    match expected {
        "i64" | "i32" | "i16" | "i8" | "u64" | "u32" | "u16" | "u8" | "usize" | "isize" => {
            "a whole number".to_owned()
        }
        "a string" => "a string".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array".to_owned(),
        other if other.starts_with("struct ") || other == "a map" => "an object".to_owned(),
        other => other.to_owned(),
    }
}

/// What serde says a field got, as a person would say it.
fn got_words(got: &str) -> String {
    let quoted = |kind: &str| {
        got.strip_prefix(kind)
            .map(|value| value.trim_matches('`').to_owned())
    };
    if let Some(number) = quoted("floating point ").or_else(|| quoted("integer ")) {
        return number;
    }
    if let Some(text) = got.strip_prefix("string ") {
        return format!("the string {text}");
    }
    match got {
        "map" => "an object".to_owned(),
        "sequence" => "an array".to_owned(),
        "unit value" | "null" => "null".to_owned(),
        other => other
            .trim_start_matches("boolean ")
            .trim_matches('`')
            .to_owned(),
    }
}

/// Reads a [`Value`], refusing repeated keys and making integral floats integers.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        if value.fract() == 0.0 && value.abs() <= MAX_EXACT_FLOAT_INTEGER {
            // Exact: integral and within 2^53.
            #[allow(clippy::cast_possible_truncation)]
            return Ok(Value::from(value as i64));
        }
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object; send it once"
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Grant {
        amount: i64,
        source: String,
    }

    fn refusal(body: &str) -> String {
        let range = |field: &str| (field == "amount").then(|| "from 1 to 9".to_owned());
        match parse_strict(body.as_bytes()).and_then(|value| read::<Grant>(value, range)) {
            Ok(grant) => panic!("{body} was read as {grant:?}"),
            Err(said) => said,
        }
    }

    #[test]
    fn a_repeated_key_is_refused_even_when_nested() {
        let said = refusal(r#"{"amount":1,"amount":500,"source":"x"}"#);
        assert!(said.contains(r#""amount" appears twice"#), "{said}");
        assert!(parse_strict(br#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse_strict(br#"[{"b":1},{"b":2}]"#).is_ok());
    }

    #[test]
    fn an_integral_float_is_the_integer_it_is() {
        let grant: Grant = read(
            parse_strict(br#"{"amount":3125.0,"source":"x"}"#).unwrap(),
            |_| None,
        )
        .unwrap();
        assert_eq!(grant.amount, 3125);
        let grant: Grant = read(
            parse_strict(br#"{"amount":5e3,"source":"x"}"#).unwrap(),
            |_| None,
        )
        .unwrap();
        assert_eq!(grant.amount, 5000);
    }

    #[test]
    fn refusals_name_the_field_in_plain_words() {
        assert_eq!(
            refusal(r#"{"amount":1.5,"source":"x"}"#),
            "amount must be a whole number from 1 to 9, not 1.5"
        );
        assert_eq!(
            refusal(r#"{"amount":"5","source":"x"}"#),
            "amount must be a whole number from 1 to 9, not the string \"5\""
        );
        assert_eq!(refusal(r#"{"source":"x"}"#), "amount is required");
        assert_eq!(
            refusal(r#"{"amount":1,"source":"x","extra":1}"#),
            "there is no field extra; the fields are amount, source"
        );
        assert_eq!(
            refusal(r#"{"amount":1e20,"source":"x"}"#),
            "amount must be a whole number from 1 to 9, not 1e+20"
        );
    }

    #[test]
    fn an_instant_out_of_range_says_the_range() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Clock {
            #[serde(default, deserialize_with = "crate::dto::instant_in_micros")]
            now: Option<jiff::Timestamp>,
        }
        for wrong in ["9999-12-31T23:59:59Z", "2026-02-30T00:00:00Z", "tomorrow"] {
            let body = format!(r#"{{"now":"{wrong}"}}"#);
            let said = parse_strict(body.as_bytes())
                .and_then(|value| read::<Clock>(value, |_| None))
                .expect_err(wrong);
            assert!(
                said.starts_with("now must be an RFC 3339 instant"),
                "{said}"
            );
            assert!(said.contains("9999-12-30T22:00:00Z"), "{said}");
            assert!(!said.contains("parameter"), "{said}");
        }
        let latest = format!(r#"{{"now":"{}"}}"#, crate::dto::LATEST_INSTANT);
        assert!(
            parse_strict(latest.as_bytes())
                .and_then(|value| read::<Clock>(value, |_| None))
                .is_ok()
        );
    }
}
