//! JSON helpers of the inspector: reading an operator's JSON, the difference between two
//! states as JSON Pointer paths with their old and new values, and RFC 3339 times.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Reads JSON an operator wrote (a decision, a merge patch) as a [`Value`], refusing an
/// object that names a key twice. `Value` alone keeps the last of them, so that
/// `{"review": "Approve", "review": {"Reject": …}}` would silently mean the second, while the
/// typed `Input` and state refuse it: a document with two answers to one question is refused
/// rather than read one way or the other. Nesting is limited as `serde_json` limits it.
pub(crate) fn from_operator(text: &str) -> Result<Value, serde_json::Error> {
    from_operator_bytes(text.as_bytes())
}

/// [`from_operator`] on bytes (a request body), which must be UTF-8 as JSON is.
pub(crate) fn from_operator_bytes(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = UniqueKeys::deserialize(&mut reader)?.0;
    reader.end()?;
    Ok(value)
}

/// A JSON value whose objects have no key twice.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Number(value.into())))
    }

    fn visit_u64<E>(self, value: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Number(value.into())))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<UniqueKeys, E> {
        Number::from_f64(value)
            .map(|number| UniqueKeys(Value::Number(number)))
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, value: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::String(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::String(value)))
    }

    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(UniqueKeys(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key `{key}` appears twice in one object"
                )));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(UniqueKeys(Value::Object(object)))
    }
}

/// One difference between two JSON values: what [`Inspector::diff`](super::Inspector::diff)
/// returns and what an edit's audit record keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// Where, as a JSON Pointer (RFC 6901): `/amount`, `/lines/2/sku`; `""` for the whole
    /// value.
    pub path: String,
    /// The value before; absent when it was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after; absent when it was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// Every difference between `old` and `new`, depth first, object keys in order: an object or
/// array present on both sides is compared member by member (arrays by index), anything else
/// that differs is one change at its path.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk(&mut String::new(), old, new, &mut changes);
    changes
}

fn walk(path: &mut String, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(path, x, y, out),
                    (x, y) => out.push(Change {
                        path: path.clone(),
                        old: x.cloned(),
                        new: y.cloned(),
                    }),
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(path, x, y, out),
                    (x, y) => out.push(Change {
                        path: path.clone(),
                        old: x.cloned(),
                        new: y.cloned(),
                    }),
                }
                path.truncate(len);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path: path.clone(),
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-12-07T12:00:00.123Z`).
pub(super) fn time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An operator's JSON reads as `serde_json` reads it, except that a key twice in one
    /// object is refused (`Value` would keep the last: found by the `json_input` fuzz target's
    /// check that the inspector takes only decisions the typed `Input` reads).
    #[test]
    fn operator_json_reads_as_json_but_refuses_a_key_twice() {
        for text in [
            r#"{"ask": {"Text": "yes"}}"#,
            r#"[1, -2, 3.5, "x", null, true, {"a": {"b": []}}, {}]"#,
            r#"{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}"#,
            "18446744073709551615",
            " \"\\u00e9\" ",
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(from_operator(text).unwrap(), expected, "{text}");
        }
        for (text, key) in [
            (r#"{"ask": 5, "ask": {"Text": "x"}}"#, "ask"),
            (r#"{"ask": {"Text": "x", "Text": "y"}}"#, "Text"),
            (r#"[{"a": 1}, {"b": 1, "b": 1}]"#, "b"),
        ] {
            let error = from_operator(text).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("the key `{key}` appears twice in one object")),
                "{text}: {error}"
            );
            assert!(error.contains("line 1 column"), "{error}");
        }
        assert!(from_operator("{} {}").is_err(), "trailing characters");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(from_operator(&deep).is_err(), "nesting is limited");
    }

    #[test]
    fn diff_names_each_changed_leaf_by_its_pointer() {
        let old =
            json!({"amount": 10, "lines": [{"sku": "a"}, {"sku": "b"}], "a/b": 1, "gone": true});
        let new = json!({"amount": 12, "lines": [{"sku": "a"}, {"sku": "c"}, {"sku": "d"}], "a/b": 2, "added": null});
        let paths: Vec<(String, Option<Value>, Option<Value>)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.path, c.old, c.new))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("/a~1b".into(), Some(json!(1)), Some(json!(2))),
                ("/added".into(), None, Some(json!(null))),
                ("/amount".into(), Some(json!(10)), Some(json!(12))),
                ("/gone".into(), Some(json!(true)), None),
                ("/lines/1/sku".into(), Some(json!("b")), Some(json!("c"))),
                ("/lines/2".into(), None, Some(json!({"sku": "d"}))),
            ]
        );
        assert!(diff(&old, &old).is_empty());
        assert_eq!(diff(&json!(1), &json!("x"))[0].path, "");
    }
}
