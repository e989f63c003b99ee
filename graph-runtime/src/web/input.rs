//! What a request brings: its query (the filters of a list), its body (an HTML form or a JSON
//! object), read here rather than by axum's extractors so that every rejection is one of the
//! console's own errors, in the format the client asked for.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::Failure;
use crate::store::{SessionFilter, StatusKind};

/// The most bytes a POST body may have: a decision or a patch, not a bulk import.
pub(super) const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The page size of the sessions list when the query names none.
pub(super) const DEFAULT_LIMIT: usize = 50;

/// A query string's fields; empty values (an HTML form's blank fields) are left out.
pub(super) type Query = BTreeMap<String, String>;

/// The fields of `query` (the part of a URI after `?`).
pub(super) fn query(query: Option<&str>) -> Query {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(key, value)| (key.into_owned(), value.trim().to_owned()))
        .collect()
}

/// A bad-input failure.
pub(super) fn bad(message: impl Into<String>) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        code: "bad_input",
        message: message.into(),
    }
}

/// `limit` from the query: 1 to [`SessionFilter::MAX_LIMIT`], `default` when absent.
pub(super) fn limit(query: &Query, default: usize) -> Result<usize, Failure> {
    let Some(text) = query.get("limit") else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=SessionFilter::MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "`limit` must be a number from 1 to {}, not `{text}`",
            SessionFilter::MAX_LIMIT
        ))),
    }
}

/// A duration such as `30m`, `2h`, `7d` from field `name`.
pub(super) fn duration(query: &Query, name: &str) -> Result<Option<Duration>, Failure> {
    query
        .get(name)
        .map(|text| {
            humantime::parse_duration(text).map_err(|e| {
                bad(format!(
                    "`{name}` is a duration such as `30m`, `2h` or `7d`, not `{text}`: {e}"
                ))
            })
        })
        .transpose()
}

/// A sequence number from field `name` of the query.
pub(super) fn seq(query: &Query, name: &str) -> Result<Option<u64>, Failure> {
    query
        .get(name)
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                bad(format!(
                    "`{name}` is a checkpoint's sequence number, not `{text}`"
                ))
            })
        })
        .transpose()
}

/// The sessions filter a list's query asks for: `status`, `node` (waiting at), `workflow`,
/// `older_than` (not written for that long), `after` (the page cursor), `limit`.
pub(super) fn filter(query: &Query) -> Result<SessionFilter, Failure> {
    let mut filter = SessionFilter::new().limit(limit(query, DEFAULT_LIMIT)?);
    let status = query.get("status");
    if let Some(status) = status {
        let kind = StatusKind::parse(status).ok_or_else(|| {
            bad(format!(
                "unknown status `{status}` (one of: {})",
                StatusKind::ALL.map(StatusKind::as_str).join(", ")
            ))
        })?;
        filter = filter.status(kind);
    }
    if let Some(node) = query.get("node") {
        if status.is_some_and(|s| s != "waiting") {
            return Err(bad(
                "`node` finds sessions waiting at a node: it cannot go with another `status`",
            ));
        }
        filter = filter.waiting_at(node);
    }
    if let Some(workflow) = query.get("workflow") {
        filter = filter.workflow(workflow);
    }
    if let Some(age) = duration(query, "older_than")? {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        filter = filter.updated_before(cutoff);
    }
    if let Some(after) = query.get("after") {
        filter = filter.after(after);
    }
    Ok(filter)
}

/// A POST body: the fields of an HTML form (`application/x-www-form-urlencoded`), or a JSON
/// object whose JSON-valued fields (a decision, a patch) are JSON rather than text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Body {
    /// A form's fields (the last of a repeated name wins).
    Form(BTreeMap<String, String>),
    /// A JSON object.
    Json(Map<String, Value>),
}

impl Body {
    /// Parses `bytes` as JSON when `json`, else as a form.
    pub fn parse(bytes: &[u8], json: bool) -> Result<Body, Failure> {
        if !json {
            return Ok(Body::Form(
                form_urlencoded::parse(bytes)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body::Json(Map::new()));
        }
        match crate::inspect::from_operator_bytes(bytes) {
            Ok(Value::Object(map)) => Ok(Body::Json(map)),
            Ok(_) => Err(bad("the request body must be a JSON object")),
            Err(e) => Err(bad(format!("the request body is not JSON: {e}"))),
        }
    }

    /// A text field (an id, an actor, a note); blank is absent.
    pub fn text(&self, name: &str) -> Result<Option<String>, Failure> {
        let text = match self {
            Body::Form(fields) => fields.get(name).cloned(),
            Body::Json(map) => match map.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(bad(format!("`{name}` must be a string"))),
            },
        };
        Ok(text.filter(|t| !t.trim().is_empty()))
    }

    /// A JSON-valued field as JSON text: a form's field as typed, a JSON body's value as it
    /// is (so `{"input": "Approve"}` is the JSON string `"Approve"`). Blank or `null` is
    /// absent.
    pub fn json(&self, name: &str) -> Option<String> {
        match self {
            Body::Form(fields) => fields.get(name).filter(|t| !t.trim().is_empty()).cloned(),
            Body::Json(map) => map.get(name).filter(|v| !v.is_null()).map(Value::to_string),
        }
    }

    /// A sequence number field; blank is absent.
    pub fn seq(&self, name: &str) -> Result<Option<u64>, Failure> {
        let wrong = || bad(format!("`{name}` must be a checkpoint's sequence number"));
        match self {
            Body::Form(fields) => match fields.get(name).map(|t| t.trim()) {
                None | Some("") => Ok(None),
                Some(text) => text.parse().map(Some).map_err(|_| wrong()),
            },
            Body::Json(map) => match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(wrong),
                Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| wrong()),
                Some(_) => Err(wrong()),
            },
        }
    }

    /// A yes/no field: a checked checkbox (`yes`, `on`, `true`) or JSON `true`.
    pub fn flag(&self, name: &str) -> bool {
        match self {
            Body::Form(fields) => fields
                .get(name)
                .is_some_and(|v| matches!(v.as_str(), "yes" | "on" | "true" | "1")),
            Body::Json(map) => map.get(name) == Some(&Value::Bool(true)),
        }
    }

    /// The form fields, to fill a form again after an error (none for a JSON body).
    pub fn fields(&self) -> BTreeMap<String, String> {
        match self {
            Body::Form(fields) => fields.clone(),
            Body::Json(_) => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_drops_blank_fields_and_decodes() {
        let q = query(Some(
            "status=waiting&node=&workflow=check%20out&after=a%2Fb+c",
        ));
        assert_eq!(q.get("status").map(String::as_str), Some("waiting"));
        assert!(!q.contains_key("node"));
        assert_eq!(q.get("workflow").map(String::as_str), Some("check out"));
        assert_eq!(q.get("after").map(String::as_str), Some("a/b c"));
        assert!(query(None).is_empty());
    }

    #[test]
    fn filters_refuse_what_they_cannot_mean() {
        let f = filter(&query(Some("node=review&older_than=2h&limit=7"))).expect("a filter");
        assert_eq!(f.node.as_deref(), Some("review"));
        assert_eq!(f.status, Some(StatusKind::Waiting));
        assert_eq!(f.limit, 7);
        assert!(f.updated_before.is_some());
        for bad in [
            "limit=0",
            "limit=10001",
            "limit=99999999999999999999999",
            "limit=-1",
            "limit=ten",
            "status=sleeping",
            "status=failed&node=review",
            "older_than=soon",
        ] {
            let e = filter(&query(Some(bad))).expect_err(bad);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn bodies_of_both_kinds() {
        let form =
            Body::parse(b"input=%22Approve%22&actor=alice&note=&seq=4", false).expect("a form");
        assert_eq!(form.json("input").as_deref(), Some("\"Approve\""));
        assert_eq!(form.text("actor").expect("text").as_deref(), Some("alice"));
        assert_eq!(form.text("note").expect("text"), None);
        assert_eq!(form.seq("seq").expect("seq"), Some(4));
        assert!(
            Body::parse(b"seq=x", false)
                .expect("a form")
                .seq("seq")
                .is_err()
        );

        let json = Body::parse(
            br#"{"input": "Approve", "decision": {"review": "Approve"}, "actor": "bob", "seq": 3, "confirm": true}"#,
            true,
        )
        .expect("JSON");
        assert_eq!(json.json("input").as_deref(), Some("\"Approve\""));
        assert_eq!(
            json.json("decision").as_deref(),
            Some(r#"{"review":"Approve"}"#)
        );
        assert_eq!(json.seq("seq").expect("seq"), Some(3));
        assert!(json.flag("confirm"));
        assert!(json.text("decision").is_err(), "not a string");
        assert!(Body::parse(b"[1]", true).is_err());
        assert!(Body::parse(b"{", true).is_err());
        assert_eq!(
            Body::parse(b" ", true).expect("empty"),
            Body::Json(Map::new())
        );
    }
}
