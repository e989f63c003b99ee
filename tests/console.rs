//! The web console over plain HTTP, without a socket (`tower::ServiceExt::oneshot` on the
//! router, nested at `/ops` as a service mounts it): its JSON API, its CSRF guard, bad input
//! (a 4xx with a JSON body, nothing changed in the store), HTML escaping, links under the
//! prefix. tests/console_browser.rs drives the same pages in a browser.
#![allow(clippy::inconsistent_digit_grouping)] // cents written as dollars_cents

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "support/console.rs"]
mod support;
use support::{COMPLETED, FOREIGN, HOSTILE, HOSTILE_TEXT, WAITING};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `{"error": {"code", "message"}}` body of a failed JSON request.
    fn error(&self) -> (String, String) {
        let body = self.json();
        let code = body["error"]["code"].as_str().expect("an error code");
        let message = body["error"]["message"].as_str().expect("an error message");
        (code.to_owned(), message.to_owned())
    }
}

async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body");
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    }
}

/// A session's path segment, percent-encoded as the console writes it.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get_json(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .expect("a request")
}

fn get_html(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .body(Body::empty())
        .expect("a request")
}

fn post_json(uri: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    let mut request = Request::post(uri)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header("x-csrf-token", token);
    }
    request
        .body(Body::from(body.to_string()))
        .expect("a request")
}

fn post_form(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::ACCEPT, "text/html")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .expect("a request")
}

/// A form body from `fields`, encoded as a browser does.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", segment(k), segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Console {
    app: axum::Router,
    _dir: tempfile::TempDir,
}

async fn console() -> Console {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let inspector = support::fixture(&dir.path().join("console.db")).await;
    Console {
        app: support::app(inspector),
        _dir: dir,
    }
}

impl Console {
    async fn send(&self, request: Request<Body>) -> Answer {
        send(&self.app, request).await
    }

    /// The CSRF token, as a script reads it from any answer.
    async fn token(&self) -> String {
        let answer = self.send(get_json("/ops/graphs")).await;
        answer.headers["x-csrf-token"]
            .to_str()
            .expect("ASCII")
            .to_owned()
    }

    /// A session as the JSON API shows it, and its history's length.
    async fn session(&self, id: &str) -> (Value, usize) {
        let path = format!("/ops/sessions/{}", segment(id));
        let view = self.send(get_json(&path)).await;
        assert_eq!(view.status, StatusCode::OK, "{}", view.body);
        let history = self.send(get_json(&format!("{path}/history"))).await;
        assert_eq!(history.status, StatusCode::OK, "{}", history.body);
        let entries = history.json().as_array().expect("an array").len();
        (view.json(), entries)
    }
}

#[tokio::test]
async fn the_json_api_answers_on_the_same_routes() {
    let c = console().await;

    let list = c.send(get_json("/ops/sessions?node=review")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.headers[header::CONTENT_TYPE], "application/json");
    let ids: Vec<String> = list.json()["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session"].as_str().expect("an id").to_owned())
        .collect();
    assert!(ids.contains(&WAITING.to_owned()), "{ids:?}");
    assert!(!ids.contains(&COMPLETED.to_owned()), "{ids:?}");

    // The root of the prefix is the list too; paging hands out a cursor.
    let page = c.send(get_json("/ops?limit=1")).await.json();
    assert_eq!(page["sessions"].as_array().map(Vec::len), Some(1));
    let next = page["next"].as_str().expect("a next page").to_owned();
    let page2 = c
        .send(get_json(&format!(
            "/ops/sessions?limit=1&after={}",
            segment(&next)
        )))
        .await
        .json();
    assert_ne!(
        page2["sessions"][0]["session"],
        page["sessions"][0]["session"]
    );

    let (view, entries) = c.session(WAITING).await;
    assert_eq!(view["status"], "waiting");
    assert_eq!(view["waiting"], json!(["review"]));
    assert_eq!(view["state"]["total_cents"], 250_00);
    assert_eq!(view["decisions"], json!(["review"]));
    assert!(entries >= 2);

    let graph = c.send(get_json("/ops/graphs/checkout")).await.json();
    assert_eq!(graph["workflow"], "checkout");
    assert!(
        graph["mermaid"]
            .as_str()
            .expect("mermaid")
            .contains("review")
    );
    let graphs = c.send(get_json("/ops/graphs")).await.json();
    assert_eq!(graphs.as_array().map(Vec::len), Some(1));

    let diff = c
        .send(get_json(&format!(
            "/ops/sessions/{WAITING}/diff?from=0&to=1"
        )))
        .await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.body);
    assert_eq!(diff.json()["session"], WAITING);

    let stuck = c.send(get_json("/ops/stuck?older_than=0s")).await;
    assert_eq!(stuck.status, StatusCode::OK, "{}", stuck.body);
    assert!(stuck.body.contains(WAITING));

    // A decision, then the session ran to its end; the history says who and why.
    let token = c.token().await;
    let decided = c
        .send(post_json(
            &format!("/ops/sessions/{WAITING}/decide"),
            Some(&token),
            &json!({"decision": {"review": "Approve"}, "actor": "alice", "note": "known customer"}),
        ))
        .await;
    assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
    let done = decided.json();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["state"]["shipped"], true);
    let history = c
        .send(get_json(&format!("/ops/sessions/{WAITING}/history")))
        .await
        .json();
    let decision = history
        .as_array()
        .expect("history")
        .iter()
        .find_map(|h| h.get("event").filter(|e| e["kind"] == "decision"))
        .expect("the decision in the history")
        .clone();
    assert_eq!(decision["actor"], "alice");
    assert_eq!(decision["note"], "known customer");
    assert_eq!(decision["node"], "review");
}

#[tokio::test]
async fn edit_fork_cancel_and_delete_through_the_api() {
    let c = console().await;
    let token = c.token().await;
    let path = format!("/ops/sessions/{WAITING}");
    let (before, _) = c.session(WAITING).await;

    let edited = c
        .send(post_json(
            &format!("{path}/edit"),
            Some(&token),
            &json!({"patch": {"total_cents": 90_00}, "expected_seq": before["seq"], "actor": "bob"}),
        ))
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.json()["state"]["total_cents"], 90_00);

    // The same edit again expected the old seq: refused, nothing written.
    let stale = c
        .send(post_json(
            &format!("{path}/edit"),
            Some(&token),
            &json!({"patch": {"total_cents": 1}, "expected_seq": before["seq"]}),
        ))
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(stale.error().0, "refused");

    let forked = c
        .send(post_json(
            &format!("{path}/fork"),
            Some(&token),
            &json!({"new_session": "order-copy", "patch": {"total_cents": 120_00}}),
        ))
        .await;
    assert_eq!(forked.status, StatusCode::OK, "{}", forked.body);
    assert_eq!(forked.json()["session"], "order-copy");
    assert_eq!(forked.json()["state"]["total_cents"], 120_00);

    let cancelled = c
        .send(post_json(
            "/ops/sessions/order-copy/cancel",
            Some(&token),
            &json!({"actor": "carol", "note": "duplicate"}),
        ))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.json()["status"], "cancelled");

    let unconfirmed = c
        .send(post_json(
            "/ops/sessions/order-copy/delete",
            Some(&token),
            &json!({}),
        ))
        .await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    let deleted = c
        .send(post_json(
            "/ops/sessions/order-copy/delete",
            Some(&token),
            &json!({"confirm": true}),
        ))
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.json(), json!({"deleted": "order-copy"}));
    let gone = c.send(get_json("/ops/sessions/order-copy")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error().0, "unknown_session");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let c = console().await;
    let token = c.token().await;
    assert_eq!(token.len(), 64);
    let (before, entries) = c.session(WAITING).await;
    let decide = format!("/ops/sessions/{WAITING}/decide");
    let approve = [("node", "review"), ("input", "\"Approve\"")];

    // A form as another site would post it: no token, a wrong one, an empty one.
    for extra in [None, Some("0".repeat(64)), Some(String::new())] {
        let mut fields = approve.to_vec();
        if let Some(t) = &extra {
            fields.push(("csrf", t.as_str()));
        }
        let answer = c.send(post_form(&decide, &form(&fields))).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{extra:?}");
        assert!(answer.body.contains("CSRF"), "{}", answer.body);
    }
    // JSON without the header, or with another token in it.
    for header in [None, Some("f".repeat(64))] {
        let answer = c
            .send(post_json(
                &decide,
                header.as_deref(),
                &json!({"decision": {"review": "Approve"}}),
            ))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.error().0, "csrf");
    }
    // Every other action, too.
    for action in ["edit", "resume", "cancel", "fork", "delete"] {
        let answer = c
            .send(post_json(
                &format!("/ops/sessions/{WAITING}/{action}"),
                None,
                &json!({"patch": {"total_cents": 1}, "new_session": "x", "confirm": true}),
            ))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{action}");
    }
    // A GET cannot change anything.
    let answer = c.send(get_json(&decide)).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);

    let (after, entries_after) = c.session(WAITING).await;
    assert_eq!(after, before);
    assert_eq!(entries_after, entries);
    assert_eq!(
        c.send(get_json("/ops/sessions/x")).await.status,
        StatusCode::NOT_FOUND,
        "no fork was made"
    );

    // With the token, the same form goes through: 303 to the session's page, relative.
    let mut fields = approve.to_vec();
    fields.push(("csrf", &token));
    fields.push(("actor", "alice"));
    let answer = c.send(post_form(&decide, &form(&fields))).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.headers[header::LOCATION],
        format!("../../sessions/{WAITING}?done=decide")
    );
    assert_eq!(c.session(WAITING).await.0["status"], "completed");
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_json_body_and_changes_nothing() {
    let c = console().await;
    let token = c.token().await;
    let (before, entries) = c.session(WAITING).await;
    let foreign_before = c.send(get_json("/ops/sessions/note-1/history")).await.body;
    let waiting = format!("/ops/sessions/{WAITING}");

    let cases: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        (
            "both an input and a decision",
            format!("{waiting}/decide"),
            json!({"node": "review", "input": "Approve", "decision": {"review": "Approve"}}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "a decision that is text, not JSON",
            format!("{waiting}/decide"),
            json!({"decision": "{review: Approve"}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "a decision for the wrong node",
            format!("{waiting}/decide"),
            json!({"decision": {"charge": "Approve"}}),
            StatusCode::CONFLICT,
            "refused",
        ),
        (
            "a decision of the wrong shape",
            format!("{waiting}/decide"),
            json!({"node": "review", "input": {"Maybe": {}}}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "a decision that is not an object",
            format!("{waiting}/decide"),
            json!({"decision": ["review"]}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "no decision",
            format!("{waiting}/decide"),
            json!({}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "a patch that does not decode as the state",
            format!("{waiting}/edit"),
            json!({"patch": {"total_cents": "lots"}}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "an actor that is not text",
            format!("{waiting}/edit"),
            json!({"patch": {"approved": true}, "actor": 7}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "an expected seq that is not a number",
            format!("{waiting}/edit"),
            json!({"patch": {"approved": true}, "expected_seq": "latest"}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
        (
            "an unknown session",
            "/ops/sessions/no-such-order/decide".to_owned(),
            json!({"decision": {"review": "Approve"}}),
            StatusCode::NOT_FOUND,
            "unknown_session",
        ),
        (
            "a session of an unregistered workflow",
            format!("/ops/sessions/{FOREIGN}/decide"),
            json!({"decision": {"ask": true}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unregistered_workflow",
        ),
        (
            "a fork onto an existing session",
            format!("{waiting}/fork"),
            json!({"new_session": COMPLETED}),
            StatusCode::CONFLICT,
            "refused",
        ),
        (
            "a fork from a checkpoint it does not keep",
            format!("{waiting}/fork"),
            json!({"new_session": "copy", "seq": 99}),
            StatusCode::BAD_REQUEST,
            "bad_input",
        ),
    ];
    for (what, uri, body, status, code) in cases {
        let answer = c.send(post_json(&uri, Some(&token), &body)).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        let (got, message) = answer.error();
        assert_eq!(got, code, "{what}: {message}");
        assert!(!message.is_empty());
    }

    // Bodies that do not parse, with the token in the header.
    let raw = |body: &str| {
        Request::post(format!("{waiting}/decide"))
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-csrf-token", &token)
            .body(Body::from(body.to_owned()))
            .expect("a request")
    };
    for body in ["{", "[1, 2]", "\"review\"", "{\"decision\": }"] {
        let answer = c.send(raw(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.error().0, "bad_input", "{body}");
    }
    let huge = c.send(raw(&" ".repeat(3 * 1024 * 1024))).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.error().0, "too_large");

    // A form whose JSON does not parse: the page again, with the message and what was typed.
    let typed = "{\"Approve\"";
    let answer = c
        .send(post_form(
            &format!("{waiting}/decide"),
            &form(&[("node", "review"), ("input", typed), ("csrf", &token)]),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("is not JSON"), "{}", answer.body);
    assert!(answer.body.contains("{&quot;Approve&quot;</textarea>"));
    let answer = c
        .send(post_form(
            &format!("{waiting}/edit"),
            &form(&[("patch", "{"), ("csrf", &token)]),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body.contains("the patch is not JSON"),
        "{}",
        answer.body
    );

    // Bad queries.
    for (uri, status) in [
        ("/ops/sessions?limit=1000000", StatusCode::BAD_REQUEST),
        ("/ops/sessions?limit=0", StatusCode::BAD_REQUEST),
        ("/ops/sessions?status=asleep", StatusCode::BAD_REQUEST),
        ("/ops/sessions?older_than=a+while", StatusCode::BAD_REQUEST),
        ("/ops/sessions?workflow=chekout", StatusCode::NOT_FOUND),
        (
            "/ops/stuck?limit=99999999999999999999",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/ops/sessions/order-big/diff?from=0",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/ops/sessions/order-big/diff?from=0&to=77",
            StatusCode::BAD_REQUEST,
        ),
        ("/ops/graphs/nope", StatusCode::NOT_FOUND),
        ("/ops/sessions/%FF%FE", StatusCode::BAD_REQUEST),
        ("/ops/no/such/page", StatusCode::NOT_FOUND),
    ] {
        let answer = c.send(get_json(uri)).await;
        assert_eq!(answer.status, status, "{uri}: {}", answer.body);
        let (code, message) = answer.error();
        assert!(!code.is_empty() && !message.is_empty(), "{uri}");
    }
    let foreign = c.send(get_json(&format!("/ops/sessions/{FOREIGN}"))).await;
    assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(foreign.error().1.contains("notes"), "{}", foreign.body);

    // Nothing changed.
    let (after, entries_after) = c.session(WAITING).await;
    assert_eq!(after, before);
    assert_eq!(entries_after, entries);
    assert_eq!(
        c.send(get_json("/ops/sessions/note-1/history")).await.body,
        foreign_before
    );
    assert_eq!(
        c.send(get_json("/ops/sessions/copy")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pages_escape_every_value_and_run_no_script() {
    let c = console().await;
    let list = c.send(get_html("/ops/sessions")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ASCII")
            .starts_with("text/html")
    );
    let csp = list.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ASCII");
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
    assert!(
        list.body
            .contains("xss/&lt;script&gt;alert(1)&lt;/script&gt;?a=1&amp;b=&quot;&#39;#")
    );
    assert!(list.body.contains(&format!(
        "href=\"./sessions/{}\"",
        segment(HOSTILE).replace('&', "&amp;")
    )));

    let page = c
        .send(get_html(&format!("/ops/sessions/{}", segment(HOSTILE))))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
    assert!(!page.body.contains(HOSTILE_TEXT));
    for body in [&list.body, &page.body] {
        assert!(!body.to_ascii_lowercase().contains("<script"), "{body}");
    }
    // Its graph marks `review`, and its forms post under the prefix with the token.
    assert!(
        page.body
            .contains(r#"<g class="node interrupt current" data-node="review">"#)
    );
    assert!(page.body.contains(&format!(
        r#"action="../sessions/{}/decide""#,
        segment(HOSTILE).replace('&', "&amp;")
    )));
    let token = c.token().await;
    assert!(
        page.body
            .contains(&format!(r#"name="csrf" value="{token}""#))
    );

    // An error page escapes its message too (the id is echoed back in it).
    let missing = c
        .send(get_html("/ops/sessions/%3Cscript%3Enope%3C%2Fscript%3E"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("&lt;script&gt;nope&lt;/script&gt;"));
    assert!(!missing.body.to_ascii_lowercase().contains("<script"));
}

#[tokio::test]
async fn pages_show_errors_with_their_status() {
    let c = console().await;
    let foreign = c.send(get_html(&format!("/ops/sessions/{FOREIGN}"))).await;
    assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(foreign.body.contains(r#"class="notice error""#));
    assert!(foreign.body.contains("which this inspector does not know"));
    assert!(
        foreign.body.contains(r#"id="history""#),
        "its record and history still show"
    );

    let bad = c.send(get_html("/ops/sessions?limit=100000")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("`limit` must be a number"));
    assert!(
        bad.body.contains(r#"id="filters""#),
        "the filters stay to be fixed"
    );

    let wrong_node = c
        .send(post_form(
            &format!("/ops/sessions/{COMPLETED}/decide"),
            &form(&[
                ("node", "review"),
                ("input", "\"Approve\""),
                ("csrf", &c.token().await),
            ]),
        ))
        .await;
    assert_eq!(wrong_node.status, StatusCode::CONFLICT);
    assert!(wrong_node.body.contains("notice error"));

    let nowhere = c.send(get_html("/ops/nope")).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert!(nowhere.body.contains("no such page"));
}

#[tokio::test]
async fn links_work_under_any_prefix() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let inspector = support::fixture(&dir.path().join("console.db")).await;

    // Nested one level: the root is `/ops`, so its links name the prefix.
    let nested = support::app(inspector.clone());
    let root = send(&nested, get_html("/ops")).await;
    assert!(
        root.body.contains(r#"href="./ops/sessions""#),
        "{}",
        root.body
    );
    assert!(
        root.body
            .contains(&format!(r#"href="./ops/sessions/{WAITING}""#))
    );
    let list = send(&nested, get_html("/ops/sessions")).await;
    assert!(
        list.body
            .contains(&format!(r#"href="./sessions/{WAITING}""#))
    );

    // Nested two levels deep, or not at all.
    let deep = axum::Router::new().nest("/a/b", graph_runtime::web::router(inspector.clone()));
    let page = send(&deep, get_html(&format!("/a/b/sessions/{WAITING}"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"href="../graphs""#));
    let root = send(&deep, get_html("/a/b")).await;
    assert!(root.body.contains(r#"href="./b/sessions""#));
    let bare = graph_runtime::web::router(inspector);
    let root = send(&bare, get_html("/")).await;
    assert!(root.body.contains(r#"href="./sessions""#));
    let diff = send(&bare, get_html(&format!("/sessions/{WAITING}/history"))).await;
    assert!(diff.body.contains(&format!(
        r#"href="../../sessions/{WAITING}/diff?from=0&amp;to=1""#
    )));
}
