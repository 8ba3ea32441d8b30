//! Strict JSON reading, the one way every path (the CLI, the gateway, the component's JSON
//! exports that the Python and JS bindings call) turns text into requests, scenarios and
//! configurations.
//!
//! Unknown fields are refused by the types themselves (`#[serde(deny_unknown_fields)]` on
//! every request, mandate and verdict type); this module adds where: an error names the JSON
//! path of the offending value, `$.task.risk: unknown variant `hgh`, expected one of ...`,
//! instead of serde's bare message.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use serde::de::DeserializeOwned;

/// A value that is not JSON, or not the expected shape, with where in the document it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// The JSON path of the offending value (`$` for the document itself, `$.task.risk`,
    /// `$[2].chain[0].from`).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl core::error::Error for JsonError {}

impl JsonError {
    /// The same error for a value nested at `prefix` (a JSON path such as `$.request`) of an
    /// enclosing document.
    #[must_use]
    pub fn under(mut self, prefix: &str) -> JsonError {
        self.path = match self.path.strip_prefix('$') {
            Some(rest) => format!("{prefix}{rest}"),
            None => format!("{prefix}.{}", self.path),
        };
        self
    }

    /// An error about the whole document (`$`), such as trailing characters.
    pub fn at_root(message: impl fmt::Display) -> JsonError {
        JsonError { path: "$".to_string(), message: message.to_string() }
    }

    /// The error of a `serde_path_to_error`-tracked deserialization, with its JSON path.
    pub fn from_tracked(error: serde_path_to_error::Error<serde_json::Error>) -> JsonError {
        // Text that is not JSON at all has no meaningful value path: name the document.
        let path = if error.inner().is_syntax() || error.inner().is_eof() {
            "$".to_string()
        } else {
            json_path(error.path())
        };
        JsonError { path, message: error.into_inner().to_string() }
    }
}

/// `serde_path_to_error`'s path (`task.risk`, `[0].from`, `.` for the root) as a JSON path.
fn json_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." {
        "$".to_string()
    } else if text.starts_with('[') {
        format!("${text}")
    } else {
        format!("$.{text}")
    }
}

/// Parses `text` as a `T`, strictly (see the module docs).
///
/// The text is parsed into a [`serde_json::Value`] first and the value converted: every type
/// is then read through one deserializer, which keeps the component small (reading each type
/// both from text and from values doubled its size).
///
/// A key given twice in one object is refused (`$: duplicate key `now` at line 1 column 80`):
/// a reader that keeps the first and one that keeps the last would see two different requests.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    let StrictValue(value) =
        serde_json::from_str(text).map_err(|e| JsonError { path: "$".to_string(), message: e.to_string() })?;
    from_value(value)
}

/// Whether `text` is a JSON array, judged by its first character after JSON whitespace (space,
/// tab, line feed, carriage return: RFC 8259 section 2), the one test every host and the
/// component use to tell one request from a batch.
pub fn is_array_text(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('[')
}

/// A [`serde_json::Value`] read from text, refusing duplicate keys (serde_json's own `Value`
/// keeps the last one).
struct StrictValue(serde_json::Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(serde_json::Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(serde_json::Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|StrictValue(v)| v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = alloc::vec::Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Converts an already parsed JSON value to a `T`, strictly (see the module docs).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, JsonError> {
    serde_path_to_error::deserialize(value).map_err(JsonError::from_tracked)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Request;
    use alloc::vec::Vec;

    /// A request that every rule allows, shared by the other modules' JSON tests.
    pub(crate) const REQUEST: &str = r#"{
        "from": {"id": "planner", "trust": 700},
        "to": {"id": "worker", "trust": 700},
        "task": {"id": "t1", "action_kind": "crm.read", "risk": "low"},
        "parent_mandate": {"value_ceiling": 100, "action_kinds": ["crm.*"], "counterparties": ["*"],
                           "budgets": [], "remaining_depth": 2, "expires_at": 2000},
        "requested_mandate": {"value_ceiling": 10, "action_kinds": ["crm.read"], "counterparties": ["*"],
                              "budgets": [], "remaining_depth": 1, "expires_at": 1500},
        "now": 1000
    }"#;

    fn error_of(text: &str) -> String {
        match from_str::<Request>(text) {
            Ok(_) => String::from("parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_valid_request_parses() {
        assert!(from_str::<Request>(REQUEST).is_ok());
    }

    #[test]
    fn a_bad_enum_value_names_its_path_and_the_choices() {
        let error = error_of(&REQUEST.replace(r#""risk": "low""#, r#""risk": "hgh""#));
        assert!(error.starts_with("$.task.risk: unknown variant `hgh`"), "{error}");
        assert!(error.contains("`low`, `medium`, `high`, `critical`"), "{error}");
    }

    #[test]
    fn a_type_error_names_its_path() {
        let error = error_of(&REQUEST.replacen(r#""trust": 700}"#, r#""trust": "high"}"#, 1));
        assert!(error.starts_with("$.from.trust: invalid type: string \"high\""), "{error}");
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        for (from, to, field) in [
            (r#""from": {"#, r#""frmo": 1, "from": {"#, "frmo"),
            (r#""risk": "low""#, r#""risk": "low", "completable_localy": false"#, "completable_localy"),
            (r#""now": 1000"#, r#""now": 1000, "extra": null"#, "extra"),
            (r#""budgets": [], "remaining_depth": 1"#, r#""budgets": [{"unit": "TOKENS", "amount": 1, "x": 2}], "remaining_depth": 1"#, "`x`"),
        ] {
            let text = REQUEST.replacen(from, to, 1);
            assert_ne!(text, REQUEST, "{from} not found");
            let error = error_of(&text);
            assert!(error.contains("unknown field") && error.contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn batch_paths_start_with_the_index_and_prefixes_nest() {
        let text = format!("[{REQUEST}, {}]", REQUEST.replace(r#""id": "t1""#, r#""id": 5"#));
        let error = from_str::<Vec<Request>>(&text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.starts_with("$[1].task.id: invalid type"), "{error}");
        let nested = JsonError { path: "$.task".into(), message: "m".into() }.under("$.request");
        assert_eq!(nested.to_string(), "$.request.task: m");
        let root = JsonError { path: "$".into(), message: "m".into() }.under("$.request");
        assert_eq!(root.path, "$.request");
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        let twice = REQUEST.replacen(r#""now": 1000"#, r#""now": 1000, "now": 1"#, 1);
        assert!(error_of(&twice).starts_with("$: duplicate key `now`"), "{}", error_of(&twice));
        let nested = REQUEST.replacen(r#""trust": 700}"#, r#""trust": 700, "trust": 1000}"#, 1);
        assert!(error_of(&nested).starts_with("$: duplicate key `trust`"), "{}", error_of(&nested));
        assert!(is_array_text(" \n\t[1]") && !is_array_text("\u{feff}[1]") && !is_array_text("{}"));
    }

    #[test]
    fn trailing_garbage_and_text_that_is_not_json_name_the_document() {
        assert!(error_of(&format!("{REQUEST} x")).starts_with("$: trailing characters"));
        assert!(error_of("{not json").starts_with("$: key must be a string"), "{}", error_of("{not json"));
        assert!(error_of("{\"from\": ").starts_with("$: EOF"), "{}", error_of("{\"from\": "));
    }
}
