//! The console's pages as HTML (the body inside [`html::page`](super::html::page)). Every
//! value goes through [`Escape`]; every link and form action is relative to `base`, the
//! console's root as the browser sees it, so the pages work under any nest prefix.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::graph;
use super::html::{Escape, status};
use super::input::Query;
use crate::inspect::{
    AuditView, DiffView, GraphView, HistoryEntry, SessionList, SessionSummary, SessionView,
};
use crate::store::StatusKind;

/// What every page needs to draw links and forms.
pub(super) struct Ctx<'a> {
    /// The console's root, relative to the current page (`./`, `../`, `./ops/`).
    pub base: &'a str,
    /// The CSRF token every form carries.
    pub token: &'a str,
}

/// A path segment with everything but unreserved characters percent-encoded (a session id
/// may hold `/`, `?`, `#`, spaces).
pub(super) fn segment(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// The path of a session's page, relative to the console's root.
pub(super) fn session_path(session: &str) -> String {
    format!("sessions/{}", segment(session))
}

impl Ctx<'_> {
    /// An `href` value (escaped) for `path`, relative to the console's root.
    fn href(&self, path: &str) -> String {
        Escape(&format!("{}{path}", self.base)).to_string()
    }

    /// A link to a session's page.
    fn session_link(&self, session: &str) -> String {
        format!(
            r#"<a class="session-link" href="{}" data-session="{}">{}</a>"#,
            self.href(&session_path(session)),
            Escape(session),
            Escape(session)
        )
    }

    /// The opening of a POST form to `action` with the CSRF token.
    fn form(&self, action: &str, id: &str, class: &str) -> String {
        format!(
            r#"<form method="post" action="{}" id="{}" class="{}"><input type="hidden" name="{}" value="{}">"#,
            self.href(action),
            Escape(id),
            class,
            super::csrf::FIELD,
            Escape(self.token)
        )
    }
}

/// The values a form is filled with again after its submission failed.
#[derive(Debug, Default)]
pub(super) struct Refill {
    /// Which form: `decide`, `edit`, `fork`, `cancel`.
    pub form: &'static str,
    /// The submitted fields.
    pub fields: BTreeMap<String, String>,
}

impl Refill {
    fn get(&self, form: &str, field: &str) -> &str {
        if self.form == form {
            self.fields.get(field).map_or("", String::as_str)
        } else {
            ""
        }
    }

    /// The decision form of `node` was the one submitted.
    fn decided(&self, node: &str) -> bool {
        self.form == "decide" && self.fields.get("node").map(String::as_str) == Some(node)
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The sessions list: the filter form, then a page of sessions or why there is none.
pub(super) fn sessions(
    ctx: &Ctx<'_>,
    query: &Query,
    workflows: &[&str],
    list: Result<&SessionList, &str>,
) -> String {
    let mut out = String::from("<h1>Sessions</h1>");
    let get = |name: &str| query.get(name).map_or("", String::as_str);
    let _ = write!(
        out,
        r#"<form method="get" action="{}" class="filters" id="filters">"#,
        ctx.href("sessions")
    );
    out.push_str(r#"<div><label for="f-status">Status</label><select id="f-status" name="status"><option value="">any</option>"#);
    for kind in StatusKind::ALL {
        let name = kind.as_str();
        let selected = if get("status") == name {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, r#"<option value="{name}"{selected}>{name}</option>"#);
    }
    out.push_str("</select></div>");
    let _ = write!(
        out,
        r#"<div><label for="f-node">Waiting at node</label><input type="text" id="f-node" name="node" value="{}" placeholder="review"></div>"#,
        Escape(get("node"))
    );
    let _ = write!(
        out,
        r#"<div><label for="f-workflow">Workflow</label><input type="text" id="f-workflow" name="workflow" value="{}" list="workflows" placeholder="any"><datalist id="workflows">"#,
        Escape(get("workflow"))
    );
    for name in workflows {
        let _ = write!(out, r#"<option value="{}">"#, Escape(name));
    }
    out.push_str("</datalist></div>");
    let _ = write!(
        out,
        r#"<div><label for="f-older">Older than</label><input type="text" id="f-older" name="older_than" value="{}" placeholder="2h, 7d"></div>"#,
        Escape(get("older_than"))
    );
    let _ = write!(
        out,
        r#"<div><label for="f-limit">Per page</label><input type="number" id="f-limit" name="limit" min="1" value="{}" placeholder="{}"></div>"#,
        Escape(get("limit")),
        super::input::DEFAULT_LIMIT
    );
    out.push_str(r#"<div><button type="submit">Filter</button></div></form>"#);

    let list = match list {
        Ok(list) => list,
        Err(_) => return out,
    };
    if list.sessions.is_empty() {
        out.push_str(r#"<p class="muted" id="no-sessions">No session matches.</p>"#);
    } else {
        summaries(ctx, &mut out, &list.sessions, "sessions");
    }
    out.push_str(r#"<div class="pager">"#);
    if query.contains_key("after") {
        let mut first = query.clone();
        first.remove("after");
        let _ = write!(
            out,
            r#"<a href="{}" id="first-page">« First page</a>"#,
            ctx.href(&with_query("sessions", &first))
        );
    }
    if let Some(next) = &list.next {
        let mut more = query.clone();
        more.insert("after".to_owned(), next.clone());
        let _ = write!(
            out,
            r#"<a href="{}" id="next-page" rel="next">Next page »</a>"#,
            ctx.href(&with_query("sessions", &more))
        );
    }
    out.push_str("</div>");
    out
}

/// `path` with `query` encoded after a `?` (none when it is empty).
pub(super) fn with_query(path: &str, query: &Query) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in query {
        serializer.append_pair(key, value);
    }
    format!("{path}?{}", serializer.finish())
}

/// A table of sessions.
fn summaries(ctx: &Ctx<'_>, out: &mut String, sessions: &[SessionSummary], id: &str) {
    let _ = write!(
        out,
        r#"<table id="{id}"><thead><tr><th>Session</th><th>Workflow</th><th>Status</th><th>Node</th><th>Seq</th><th>Updated</th></tr></thead><tbody>"#
    );
    for s in sessions {
        let node = if s.waiting.is_empty() {
            s.node.clone()
        } else {
            s.waiting.join(", ")
        };
        let workflow = match &s.workflow {
            Some(w) => format!(
                r#"<a href="{}">{}</a>"#,
                ctx.href(&format!("graphs/{}", segment(w))),
                Escape(w)
            ),
            None => r#"<span class="muted">-</span>"#.to_owned(),
        };
        let _ = write!(
            out,
            r#"<tr data-session="{}"><td class="wrap">{}</td><td>{workflow}</td><td>{}</td><td class="mono">{}</td><td>{}</td><td class="mono">{}</td></tr>"#,
            Escape(&s.session),
            ctx.session_link(&s.session),
            status(s.status),
            Escape(&node),
            s.seq,
            Escape(&s.updated_at)
        );
    }
    out.push_str("</tbody></table>");
}

/// Everything the session page shows.
pub(super) struct SessionData {
    /// What the store knows.
    pub summary: SessionSummary,
    /// Its decoded state and decisions (none when its workflow is not registered).
    pub view: Option<SessionView>,
    /// Its checkpoints.
    pub history: Vec<HistoryEntry>,
    /// Its workflow's graph, if registered.
    pub graph: Option<GraphView>,
}

/// The nodes a session's graph marks as current: where it waits, else its cursor (the next
/// node to run, `END` once it completed).
pub(super) fn current_nodes(summary: &SessionSummary) -> Vec<String> {
    if !summary.waiting.is_empty() {
        // A wait inside a child session (`research/review`) marks the parent's node.
        summary
            .waiting
            .iter()
            .map(|w| w.split('/').next().unwrap_or(w).to_owned())
            .collect()
    } else if summary.status == "completed" {
        vec!["END".to_owned()]
    } else {
        vec![summary.node.clone()]
    }
}

/// One session: summary, graph, the decision form, state, history, then the other actions.
pub(super) fn session(ctx: &Ctx<'_>, data: &SessionData, refill: &Refill) -> String {
    let s = &data.summary;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<h1>Session <code id="session-id">{}</code> <span id="status" class="status {st}">{st}</span></h1>"#,
        Escape(&s.session),
        st = Escape(s.status)
    );

    out.push_str(r#"<div class="columns"><section><h2>Summary</h2><dl class="summary">"#);
    let row = |out: &mut String, name: &str, value: String| {
        let _ = write!(out, "<dt>{name}</dt><dd>{value}</dd>");
    };
    row(
        &mut out,
        "Workflow",
        s.workflow.as_deref().map_or("-".to_owned(), |w| {
            format!(
                r#"<a href="{}">{}</a>"#,
                ctx.href(&format!("graphs/{}", segment(w))),
                Escape(w)
            )
        }),
    );
    row(&mut out, "Status", status(s.status));
    if !s.waiting.is_empty() {
        row(
            &mut out,
            "Waiting at",
            format!(
                r#"<code id="waiting">{}</code>"#,
                Escape(&s.waiting.join(", "))
            ),
        );
    }
    row(
        &mut out,
        "Cursor",
        format!("<code>{}</code>", Escape(&s.node)),
    );
    row(&mut out, "Seq", s.seq.to_string());
    row(&mut out, "Created", Escape(&s.created_at).to_string());
    row(&mut out, "Updated", Escape(&s.updated_at).to_string());
    if let Some(wake) = &s.wake_at {
        row(&mut out, "Deadline", Escape(wake).to_string());
    }
    if let Some(lease) = &s.lease {
        row(
            &mut out,
            "Lease",
            format!(
                "{} ({} {})",
                Escape(&lease.owner),
                if lease.expired { "expired" } else { "until" },
                Escape(&lease.expires_at)
            ),
        );
    }
    if let Some(graph) = &data.graph {
        row(
            &mut out,
            "Graph hash",
            format!("<code>{}</code>", Escape(&graph.graph_hash)),
        );
    }
    if let Some(failure) = data.view.as_ref().and_then(|v| v.failure.as_ref()) {
        row(
            &mut out,
            "Failure",
            format!(r#"<span id="failure">{}</span>"#, Escape(failure)),
        );
    }
    out.push_str("</dl>");

    // The decision form of each node it waits at, first: what a person came for.
    if let Some(view) = &data.view
        && s.status == "waiting"
    {
        let mut forms = 0;
        for node in view
            .decisions
            .iter()
            .filter(|n| s.waiting.iter().any(|w| w == *n))
        {
            decision_form(ctx, &mut out, s, node, refill);
            forms += 1;
        }
        if forms == 0 {
            // It waits at something no interrupt node of its workflow names (a child
            // session's node, `research/review`): the whole decision, keyed as the inspector
            // takes it.
            whole_decision_form(ctx, &mut out, s, refill);
        }
    }
    out.push_str("</section>");

    out.push_str(r#"<section><h2>Graph</h2>"#);
    match &data.graph {
        Some(graph) => {
            let _ = write!(
                out,
                r#"<div class="graph-box" id="graph">{}</div>"#,
                graph::svg(graph.workflow, graph.mermaid, &current_nodes(s))
            );
        }
        None => out
            .push_str(r#"<p class="muted">Its workflow is not registered with this console.</p>"#),
    }
    out.push_str("</section></div>");

    if let Some(view) = &data.view {
        let _ = write!(
            out,
            r#"<h2>State</h2><pre class="json" id="state">{}</pre>"#,
            Escape(&pretty(&view.state))
        );
    }

    history_table(ctx, &mut out, &s.session, &data.history);

    out.push_str(r#"<h2>Actions</h2><div class="row">"#);
    if data.view.is_some() {
        actions(ctx, &mut out, s, refill);
    }
    let path = session_path(&s.session);
    out.push_str(&ctx.form(&format!("{path}/delete"), "delete", "card"));
    out.push_str(
        r#"<h3>Delete</h3><p class="hint">Removes the session and all its checkpoints, for good.</p><label><input type="checkbox" name="confirm" value="yes" required> yes, delete it</label><button type="submit" class="danger">Delete</button></form>"#,
    );
    out.push_str("</div>");
    out
}

fn decision_form(ctx: &Ctx<'_>, out: &mut String, s: &SessionSummary, node: &str, refill: &Refill) {
    let path = session_path(&s.session);
    let id = format!("decide-{node}");
    out.push_str(&ctx.form(&format!("{path}/decide"), &id, "card decide"));
    let (input, actor, note) = if refill.decided(node) {
        (
            refill.get("decide", "input"),
            refill.get("decide", "actor"),
            refill.get("decide", "note"),
        )
    } else {
        ("", "", "")
    };
    let _ = write!(
        out,
        r#"<h3>Decide <code>{n}</code></h3><input type="hidden" name="node" value="{n}"><label for="{id}-input">Input of <code>{n}</code>, as JSON</label><textarea id="{id}-input" name="input" required placeholder="the input as JSON">{input}</textarea><p class="hint">Sent as <code>{{&quot;{n}&quot;: &lt;input&gt;}}</code>. An enum variant is <code>&quot;Variant&quot;</code> or <code>{{&quot;Variant&quot;: {{…}}}}</code>; an input of the wrong shape is refused with the shape expected.</p><div class="row"><div><label for="{id}-actor">Actor</label><input type="text" id="{id}-actor" name="actor" value="{actor}" placeholder="who decides"></div><div><label for="{id}-note">Note</label><input type="text" id="{id}-note" name="note" value="{note}" placeholder="why"></div></div><button type="submit">Decide</button></form>"#,
        n = Escape(node),
        id = Escape(&id),
        input = Escape(input),
        actor = Escape(actor),
        note = Escape(note),
    );
}

fn whole_decision_form(ctx: &Ctx<'_>, out: &mut String, s: &SessionSummary, refill: &Refill) {
    let path = session_path(&s.session);
    out.push_str(&ctx.form(&format!("{path}/decide"), "decide", "card decide"));
    let example = s.waiting.first().map_or("node", String::as_str);
    let _ = write!(
        out,
        r#"<h3>Decide</h3><label for="decide-decision">The decision, as JSON keyed by the node's name</label><textarea id="decide-decision" name="decision" required placeholder="{{&quot;{example}&quot;: …}}">{decision}</textarea><div class="row"><div><label for="decide-actor">Actor</label><input type="text" id="decide-actor" name="actor" value="{actor}" placeholder="who decides"></div><div><label for="decide-note">Note</label><input type="text" id="decide-note" name="note" value="{note}" placeholder="why"></div></div><button type="submit">Decide</button></form>"#,
        example = Escape(example),
        decision = Escape(refill.get("decide", "decision")),
        actor = Escape(refill.get("decide", "actor")),
        note = Escape(refill.get("decide", "note")),
    );
}

/// Edit, resume, cancel and fork.
fn actions(ctx: &Ctx<'_>, out: &mut String, s: &SessionSummary, refill: &Refill) {
    let path = session_path(&s.session);
    let kind = StatusKind::parse(s.status);
    let finished = matches!(kind, Some(StatusKind::Completed | StatusKind::Cancelled));
    let who = |out: &mut String, form: &str| {
        let _ = write!(
            out,
            r#"<div class="row"><div><label for="{form}-actor">Actor</label><input type="text" id="{form}-actor" name="actor" value="{}" placeholder="who"></div><div><label for="{form}-note">Note</label><input type="text" id="{form}-note" name="note" value="{}" placeholder="why"></div></div>"#,
            Escape(refill.get(form, "actor")),
            Escape(refill.get(form, "note"))
        );
    };

    if matches!(kind, Some(StatusKind::Waiting | StatusKind::Failed)) {
        out.push_str(&ctx.form(&format!("{path}/edit"), "edit", "card"));
        let _ = write!(
            out,
            r#"<h3>Edit the state</h3><input type="hidden" name="expected_seq" value="{}"><label for="edit-patch">JSON merge patch (RFC 7386: <code>null</code> removes a field)</label><textarea id="edit-patch" name="patch" required placeholder="{{&quot;field&quot;: &quot;new value&quot;}}">{}</textarea>"#,
            s.seq,
            Escape(refill.get("edit", "patch"))
        );
        who(out, "edit");
        out.push_str(r#"<p class="hint">Refused if the session moved on since this page was drawn.</p><button type="submit">Edit</button></form>"#);
    }

    if !finished {
        out.push_str(&ctx.form(&format!("{path}/resume"), "resume", "card"));
        out.push_str(r#"<h3>Resume</h3><p class="hint">Runs it on from its latest checkpoint, here, to its end or its next wait (after a failure, a crash or an edit).</p><button type="submit" class="secondary">Resume</button></form>"#);

        out.push_str(&ctx.form(&format!("{path}/cancel"), "cancel", "card"));
        out.push_str(r#"<h3>Cancel</h3><p class="hint">It never runs again.</p>"#);
        who(out, "cancel");
        out.push_str(r#"<button type="submit" class="danger">Cancel</button></form>"#);
    }

    out.push_str(&ctx.form(&format!("{path}/fork"), "fork", "card"));
    let _ = write!(
        out,
        r#"<h3>Fork</h3><div class="row"><div><label for="fork-new">New session id</label><input type="text" id="fork-new" name="new_session" required value="{}"></div><div><label for="fork-seq">From checkpoint</label><input type="number" id="fork-seq" name="seq" min="0" value="{}" placeholder="{} (latest)"></div></div><label for="fork-patch">JSON merge patch for the copy (optional)</label><textarea id="fork-patch" name="patch">{}</textarea>"#,
        Escape(refill.get("fork", "new_session")),
        Escape(refill.get("fork", "seq")),
        s.seq,
        Escape(refill.get("fork", "patch"))
    );
    who(out, "fork");
    out.push_str(r#"<button type="submit" class="secondary">Fork</button></form>"#);
}

fn history_table(ctx: &Ctx<'_>, out: &mut String, session: &str, history: &[HistoryEntry]) {
    out.push_str(r#"<h2>History</h2><table id="history"><thead><tr><th>Seq</th><th>At</th><th>Node</th><th>Status</th><th>Event</th><th>Failure</th><th>Bytes</th></tr></thead><tbody>"#);
    let mut previous: Option<u64> = None;
    for h in history {
        let changes = previous.map_or(String::new(), |from| {
            format!(
                r#" <a class="muted" href="{}" title="what changed from checkpoint {from}">changes</a>"#,
                ctx.href(&format!(
                    "{}/diff?from={from}&to={}",
                    session_path(session),
                    h.seq
                ))
            )
        });
        let _ = write!(
            out,
            r#"<tr data-seq="{}"><td>{}{changes}</td><td class="mono">{}</td><td class="mono">{}</td><td>{}</td><td class="wrap">{}</td><td class="wrap">{}</td><td>{}</td></tr>"#,
            h.seq,
            h.seq,
            Escape(&h.at),
            Escape(&h.node),
            status(h.status),
            h.event.as_ref().map_or(String::new(), |a| audit(ctx, a)),
            h.failure.as_ref().map_or(String::new(), |a| audit(ctx, a)),
            h.bytes
        );
        previous = Some(h.seq);
    }
    out.push_str("</tbody></table>");
}

/// A decision, edit, failure, cancellation or fork, as a history cell.
fn audit(ctx: &Ctx<'_>, a: &AuditView) -> String {
    let mut out = format!(
        r#"<strong class="event {k}">{k}</strong>"#,
        k = Escape(a.kind)
    );
    if let Some(node) = &a.node {
        let _ = write!(out, " <code>{}</code>", Escape(node));
    }
    if let Some(source) = a.source {
        let _ = write!(out, r#" <span class="muted">({})</span>"#, Escape(source));
    }
    if let Some(actor) = &a.actor {
        let _ = write!(out, " by <strong>{}</strong>", Escape(actor));
    }
    if let Some(note) = &a.note {
        let _ = write!(out, r#" — <em>{}</em>"#, Escape(note));
    }
    if let Some(error) = &a.error {
        let _ = write!(out, r#"<br><code class="error">{}</code>"#, Escape(error));
    }
    if let Some((from, seq)) = &a.from {
        let _ = write!(out, " from {} at {seq}", ctx.session_link(from));
    }
    if let Some(diff) = &a.diff {
        match diff {
            Value::Array(changes) => {
                out.push_str("<br>");
                for change in changes {
                    let path = change.get("path").and_then(Value::as_str).unwrap_or("");
                    let side = |name: &str| {
                        change
                            .get(name)
                            .map_or("(absent)".to_owned(), Value::to_string)
                    };
                    let _ = write!(
                        out,
                        r#"<code>{}</code>: <code>{}</code> → <code>{}</code><br>"#,
                        Escape(if path.is_empty() { "/" } else { path }),
                        Escape(&side("old")),
                        Escape(&side("new"))
                    );
                }
            }
            other => {
                let _ = write!(out, "<br><code>{}</code>", Escape(&other.to_string()));
            }
        }
    }
    out
}

/// A session's history on a page of its own.
pub(super) fn history(ctx: &Ctx<'_>, session: &str, history: &[HistoryEntry]) -> String {
    let mut out = format!(r#"<h1>History of {}</h1>"#, ctx.session_link(session));
    history_table(ctx, &mut out, session, history);
    out
}

/// What changed between two checkpoints.
pub(super) fn diff(ctx: &Ctx<'_>, view: &DiffView) -> String {
    let mut out = format!(
        r#"<h1>Changes of {} from {} to {}</h1>"#,
        ctx.session_link(&view.session),
        view.from,
        view.to
    );
    if view.changes.is_empty() {
        out.push_str(r#"<p class="muted">No change.</p>"#);
        return out;
    }
    out.push_str(r#"<table id="changes"><thead><tr><th>Path</th><th>Old</th><th>New</th></tr></thead><tbody>"#);
    for c in &view.changes {
        let side = |v: &Option<Value>| v.as_ref().map_or("(absent)".to_owned(), Value::to_string);
        let _ = write!(
            out,
            r#"<tr><td class="mono">{}</td><td class="mono wrap">{}</td><td class="mono wrap">{}</td></tr>"#,
            Escape(if c.path.is_empty() { "/" } else { &c.path }),
            Escape(&side(&c.old)),
            Escape(&side(&c.new))
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Workflows' graphs: hash, schema, nodes, the drawing and the Mermaid text.
pub(super) fn graphs(ctx: &Ctx<'_>, graphs: &[GraphView]) -> String {
    let mut out = String::from("<h1>Graphs</h1>");
    if graphs.is_empty() {
        out.push_str(r#"<p class="muted">No workflow is registered with this console.</p>"#);
    }
    for g in graphs {
        let _ = write!(
            out,
            r#"<section class="workflow" data-workflow="{w}"><h2><a href="{}">{w}</a></h2><div class="columns"><div><dl class="summary"><dt>Graph hash</dt><dd><code>{}</code></dd><dt>State schema</dt><dd><code>{}</code></dd></dl><table><thead><tr><th>Node</th><th>Kind</th><th>Deadline</th></tr></thead><tbody>"#,
            ctx.href(&format!("graphs/{}", segment(g.workflow))),
            Escape(&g.graph_hash),
            Escape(&g.state_schema),
            w = Escape(g.workflow),
        );
        for n in &g.nodes {
            let _ = write!(
                out,
                r#"<tr><td class="mono">{}</td><td>{}</td><td>{}</td></tr>"#,
                Escape(n.name),
                if n.interrupt { "interrupt" } else { "" },
                n.wait_ms.map_or(String::new(), |ms| {
                    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
                })
            );
        }
        let _ = write!(
            out,
            r#"</tbody></table><p><a href="{}">Sessions of this workflow</a></p></div><div class="graph-box">{}</div></div><details><summary>Mermaid</summary><pre class="json">{}</pre></details></section>"#,
            ctx.href(&with_query(
                "sessions",
                &Query::from([("workflow".to_owned(), g.workflow.to_owned())])
            )),
            graph::svg(g.workflow, g.mermaid, &[]),
            Escape(g.mermaid)
        );
    }
    out
}

/// Sessions that need a person.
pub(super) fn stuck(
    ctx: &Ctx<'_>,
    query: &Query,
    found: Result<&[SessionSummary], &str>,
) -> String {
    let get = |name: &str| query.get(name).map_or("", String::as_str);
    let mut out = String::from(
        "<h1>Stuck sessions</h1><p class=\"muted\">Failed sessions, sessions waiting longer than the age below, and running sessions whose worker's lease expired that long ago.</p>",
    );
    let _ = write!(
        out,
        r#"<form method="get" action="{}" class="filters"><div><label for="s-older">Older than</label><input type="text" id="s-older" name="older_than" value="{}" placeholder="1h"></div><div><label for="s-limit">At most (of each kind)</label><input type="number" id="s-limit" name="limit" min="1" value="{}" placeholder="50"></div><div><button type="submit">Show</button></div></form>"#,
        ctx.href("stuck"),
        Escape(get("older_than")),
        Escape(get("limit"))
    );
    match found {
        Ok([]) => out.push_str(r#"<p class="muted" id="no-sessions">Nothing is stuck.</p>"#),
        Ok(found) => summaries(ctx, &mut out, found, "stuck"),
        Err(_) => {}
    }
    out
}

/// A page that only says what went wrong (the notice holds the message).
pub(super) fn error(ctx: &Ctx<'_>) -> String {
    format!(
        r#"<p><a href="{}">Back to the sessions</a></p>"#,
        ctx.href("sessions")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(waiting: &[&str]) -> SessionSummary {
        SessionSummary {
            session: "s/1 <x>".to_owned(),
            workflow: Some("support".to_owned()),
            graph_hash: None,
            status: if waiting.is_empty() {
                "running"
            } else {
                "waiting"
            },
            node: waiting.first().map_or("triage", |w| w).to_owned(),
            waiting: waiting.iter().map(|w| (*w).to_owned()).collect(),
            seq: 3,
            created_at: String::new(),
            updated_at: String::new(),
            wake_at: None,
            lease: None,
        }
    }

    fn page(waiting: &[&str], decisions: Vec<&'static str>) -> String {
        let data = SessionData {
            summary: summary(waiting),
            view: Some(SessionView {
                summary: summary(waiting),
                state: serde_json::json!({"text": "</pre><script>"}),
                decisions,
                failure: None,
            }),
            history: Vec::new(),
            graph: None,
        };
        let ctx = Ctx {
            base: "../",
            token: "t0k",
        };
        session(&ctx, &data, &Refill::default())
    }

    #[test]
    fn a_wait_in_a_child_session_marks_the_parents_node() {
        assert_eq!(current_nodes(&summary(&["research/review"])), ["research"]);
        assert_eq!(current_nodes(&summary(&["a", "b"])), ["a", "b"]);
        assert_eq!(current_nodes(&summary(&[])), ["triage"]);
    }

    #[test]
    fn one_form_per_waiting_node_else_the_whole_decision() {
        let html = page(&["review"], vec!["review", "other"]);
        assert!(html.contains(r#"id="decide-review""#));
        assert!(!html.contains(r#"id="decide-other""#));
        assert!(html.contains(r#"action="../sessions/s%2F1%20%3Cx%3E/decide""#));
        assert!(html.contains(r#"name="csrf" value="t0k""#));
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;"));

        let html = page(&["research/review"], vec!["review"]);
        assert!(html.contains(r#"id="decide-decision" name="decision""#));
        assert!(html.contains("{&quot;research/review&quot;: …}"));

        let html = page(&[], vec!["review"]);
        assert!(!html.contains("/decide"), "no decision while it runs");
    }
}
