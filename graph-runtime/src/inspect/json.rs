//! JSON helpers of the inspector: the difference between two states as JSON Pointer paths
//! with their old and new values, and RFC 3339 times.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

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
