//! The web console (feature `web`): an [`axum::Router`] over an [`Inspector`]
//! that a service nests under a path of its choice, to find, read and steer its sessions in a
//! browser: the sessions list with filters and paging, one session (summary, state, history of
//! decisions, edits, failures and forks, its graph with the current node marked, a decision
//! form for the node it waits at, edit, resume, cancel, fork and delete), the workflows'
//! graphs and the sessions that need a person.
//!
//! ```
//! # use graph_runtime::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
//! # pub struct Order { pub ok: bool }
//! # #[workflow(state = Order)]
//! # pub mod checkout {
//! #     use super::*;
//! #     edge!(START -> review);
//! #     edge!(review -> END);
//! #     #[node(interrupt)] async fn review(o: &mut Order, ok: bool) { o.ok = ok; }
//! # }
//! use graph_runtime::inspect::Inspector;
//! use graph_runtime::web;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("checkout.db");
//! let store = SqliteStore::open(path)?;
//! let inspector = Inspector::new(store.clone()).register(Runner::new(checkout::Workflow, store));
//! // Behind the service's own authentication: the console has none.
//! let app: axum::Router = axum::Router::new().nest("/ops", web::router(inspector));
//! // Then serve `app` as the service serves its other routes: `axum::serve(listener, app)`.
//! # Ok(()) }
//! ```
//!
//! `examples/console.rs` serves it over the checkout example's `checkout.db`.
//!
//! # No authentication of its own
//!
//! Whoever reaches the console can read every session's state and decide, edit, cancel and
//! delete sessions. **Mount it behind the service's authentication and authorization**
//! (a tower layer on the nested router, or a reverse proxy). It records the `actor` a form
//! gives, which is what the operator typed, not an authenticated identity.
//!
//! # Pages and the JSON API
//!
//! Every route answers HTML to a browser and JSON to a client whose `Accept` header names
//! `application/json` before `text/html` (or whose POST body is JSON and whose `Accept` does
//! not name `text/html`): the same routes, no `/api` mirror. Paths are relative to where the
//! router is nested; a session id is one percent-encoded path segment. Nested at `/ops`, the
//! console's root is `/ops` (axum routes `/ops/` to the service's own fallback, not to the
//! nested router); its pages link to `/ops/sessions` and the rest.
//!
//! | Route | Page | JSON |
//! |---|---|---|
//! | `GET /`, `GET /sessions` | sessions list; query `status`, `node` (waiting at), `workflow`, `older_than` (`2h`, `7d`), `after` (the page cursor), `limit` (1 to 10,000; 50) | [`SessionList`](crate::inspect::SessionList) |
//! | `GET /sessions/{id}` | the session: summary, graph, forms, state, history | [`SessionView`](crate::inspect::SessionView) |
//! | `GET /sessions/{id}/history` | its history | [`HistoryEntry`](crate::inspect::HistoryEntry)s |
//! | `GET /sessions/{id}/diff?from=&to=` | what changed between two checkpoints | [`DiffView`](crate::inspect::DiffView) |
//! | `POST /sessions/{id}/decide` | `node` and `input` (the node's input as JSON), or `decision` (`{"review": …}`); `actor`, `note` | the session |
//! | `POST /sessions/{id}/edit` | `patch` (a JSON merge patch), `expected_seq`, `actor`, `note` | the session |
//! | `POST /sessions/{id}/resume` | — | the session |
//! | `POST /sessions/{id}/cancel` | `actor`, `note` | the session |
//! | `POST /sessions/{id}/fork` | `new_session`, `seq` (default: latest), `patch`, `actor`, `note` | the new session |
//! | `POST /sessions/{id}/delete` | `confirm` (`yes`, or JSON `true`) | `{"deleted": id}` |
//! | `GET /graphs`, `GET /graphs/{workflow}` | graphs drawn as SVG, with Mermaid text | [`GraphView`](crate::inspect::GraphView)s, one |
//! | `GET /stuck` | failed, long-waiting and abandoned sessions; query `older_than` (1h), `limit` (50) | [`SessionSummary`]s |
//!
//! A POST takes an HTML form (`application/x-www-form-urlencoded`) or a JSON object
//! (`application/json`; `input`, `decision` and `patch` are then JSON values, not text) of at
//! most 2 MiB. A page answers a successful POST with `303 See Other` to the session's page;
//! JSON, with `200` and the result. Decide and resume run the session here, to its end or its
//! next wait, before answering; each action runs on a task of its own, so a client that goes
//! away does not stop it halfway.
//!
//! Errors are `4xx`/`5xx` with, for JSON, `{"error": {"code": …, "message": …}}` (the codes
//! of [`InspectError::code`], and `csrf`, `not_found`, `too_large`), and for a page, the page
//! again with the message on top and the form filled as it was sent. A request that fails
//! changes nothing.
//!
//! # CSRF
//!
//! Every POST must carry the router's CSRF token, as the form field `csrf` (the console's
//! forms embed it) or the header `x-csrf-token` (every answer carries it in that header, so a
//! script reads it from any GET). The token is 32 bytes from the operating system's random
//! generator drawn when [`router`] is called, compared in constant time; a POST without it is
//! `403` and changes nothing. Another site can make an operator's browser send a POST but
//! cannot read the console's pages, so it cannot know the token. The token lives as long as
//! the router: several replicas of one service each draw their own, so a form served by one
//! and posted to another is refused (route an operator to one replica, or reload the page).
//!
//! Pages are sent with `Cache-Control: no-store` and a `Content-Security-Policy` that allows
//! no script, no outside resource and no framing by another site. Nothing is fetched from the
//! network: the stylesheet is inline, the graph is SVG drawn on the server.

mod csrf;
mod graph;
mod html;
mod input;
mod pages;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body as RawBody;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use self::csrf::Csrf;
use self::html::{Notice, page};
use self::input::{Body, Query, bad};
use self::pages::{Refill, SessionData, session_path};
use crate::inspect::{InspectError, Inspector, Operator, SessionSummary};
use crate::store::Store;

/// The console over `inspector`: a router to nest in the service's own
/// (`Router::new().nest("/ops", web::router(inspector))`), or to serve as it is. Draws the
/// router's CSRF token from the system's random generator (see the [module docs](self)).
///
/// ```
/// use graph_runtime::inspect::Inspector;
/// use graph_runtime::prelude::*;
///
/// let app: axum::Router = axum::Router::new()
///     .nest("/ops", graph_runtime::web::router(Inspector::new(MemoryStore::new())));
/// ```
pub fn router<S: Store + Clone>(inspector: Inspector<S>) -> Router {
    let console = Arc::new(Console {
        inspector,
        csrf: Csrf::new(),
    });
    Router::new()
        .route("/", get(list::<S>))
        .route("/sessions", get(list::<S>))
        .route("/sessions/{session}", get(session::<S>))
        .route("/sessions/{session}/history", get(history::<S>))
        .route("/sessions/{session}/diff", get(diff::<S>))
        .route("/sessions/{session}/decide", post(decide::<S>))
        .route("/sessions/{session}/edit", post(edit::<S>))
        .route("/sessions/{session}/resume", post(resume::<S>))
        .route("/sessions/{session}/cancel", post(cancel::<S>))
        .route("/sessions/{session}/fork", post(fork::<S>))
        .route("/sessions/{session}/delete", post(delete::<S>))
        .route("/graphs", get(graphs::<S>))
        .route("/graphs/{workflow}", get(graph::<S>))
        .route("/stuck", get(stuck::<S>))
        .fallback(not_found::<S>)
        .with_state(console)
}

/// The router's state.
struct Console<S> {
    inspector: Inspector<S>,
    csrf: Csrf,
}

type Shared<S> = State<Arc<Console<S>>>;

/// Why a request did nothing, as the console answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl From<InspectError> for Failure {
    fn from(error: InspectError) -> Self {
        Failure {
            status: StatusCode::from_u16(error.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<PathRejection> for Failure {
    fn from(rejection: PathRejection) -> Self {
        bad(format!(
            "the path does not name a session: {}",
            rejection.body_text()
        ))
    }
}

/// What every handler knows about its request: where the console's routes are relative to
/// the page, whether to answer JSON, the query, the headers a POST needs.
struct Req {
    base: String,
    json: bool,
    query: Query,
    headers: HeaderMap,
}

impl<T: Send + Sync> FromRequestParts<T> for Req {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &T) -> Result<Self, Self::Rejection> {
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |o| o.0.path().to_owned());
        Ok(Req {
            base: base(parts.uri.path(), &original),
            json: wants_json(&parts.headers),
            query: input::query(parts.uri.query()),
            headers: parts.headers.clone(),
        })
    }
}

/// The console's routes' folder relative to the page at `inner` (the path inside the
/// console) whose full path is `original`: `../` from `/sessions/x`; from the console's root,
/// `./` if the browser's path ends with `/`, else `./` and its last segment (`./ops/` at
/// `/ops`). Links never point at the root itself, which is `/ops` or `/ops/` depending on how
/// the service mounts it, but at `sessions`, `graphs`, `stuck`.
fn base(inner: &str, original: &str) -> String {
    let slashes = inner.matches('/').count();
    if inner == "/" || slashes == 0 {
        if original.ends_with('/') {
            return "./".to_owned();
        }
        return match original.rsplit('/').next() {
            Some(last) if !last.is_empty() => format!("./{last}/"),
            _ => "./".to_owned(),
        };
    }
    if slashes == 1 {
        "./".to_owned()
    } else {
        "../".repeat(slashes - 1)
    }
}

/// Whether the client asked for JSON rather than a page.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json = accept.find("application/json");
    let html = accept.find("text/html");
    match (json, html) {
        (Some(j), Some(h)) => j < h,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        // A script that posts JSON and names no format wants JSON back.
        (None, None) => is_json_body(headers),
    }
}

fn is_json_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.trim_start().to_ascii_lowercase();
            t.starts_with("application/json") || t.contains("+json")
        })
}

impl Req {
    fn ctx<'a, S>(&'a self, console: &'a Console<S>) -> pages::Ctx<'a> {
        pages::Ctx {
            base: &self.base,
            token: console.csrf.token(),
        }
    }

    /// The notice a redirect after an action asked for (`?done=decide`).
    fn done(&self) -> Option<Notice> {
        let text = match self.query.get("done")?.as_str() {
            "decide" => "Decision recorded: the session ran on.",
            "edit" => "State edited.",
            "resume" => "Resumed: the session ran on.",
            "cancel" => "Cancelled.",
            "fork" => "Forked: this is the new session.",
            "delete" => "Session deleted.",
            _ => return None,
        };
        Some(Notice::Done(text.to_owned()))
    }

    /// A page.
    fn page<S>(
        &self,
        console: &Console<S>,
        status: StatusCode,
        title: &str,
        notice: Option<&Notice>,
        body: &str,
    ) -> Response {
        let html = page(&self.base, title, notice, body);
        let mut response = (status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        common_headers(headers, console);
        response
    }

    /// A JSON answer.
    fn json<S, T: Serialize>(
        &self,
        console: &Console<S>,
        status: StatusCode,
        value: &T,
    ) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => {
                let mut response = (status, body).into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                common_headers(headers, console);
                response
            }
            Err(e) => self.fail(
                console,
                Failure {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "runtime",
                    message: format!("the answer does not serialize as JSON: {e}"),
                },
            ),
        }
    }

    /// An error: JSON `{"error": …}`, or a page that says it.
    fn fail<S>(&self, console: &Console<S>, failure: Failure) -> Response {
        if failure.status.is_server_error() {
            tracing::warn!(code = failure.code, message = %failure.message, "web console");
        }
        if self.json {
            let body = serde_json::json!({
                "error": {"code": failure.code, "message": failure.message}
            });
            return self.json(console, failure.status, &body);
        }
        let title = failure
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_owned();
        let body = pages::error(&self.ctx(console));
        self.page(
            console,
            failure.status,
            &title,
            Some(&Notice::Error(failure.message)),
            &body,
        )
    }

    /// `303 See Other` to `path` (relative to the console's routes).
    fn redirect(&self, path: &str) -> Response {
        let location = format!("{}{path}", self.base);
        match HeaderValue::from_str(&location) {
            Ok(value) => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                response.headers_mut().insert(header::LOCATION, value);
                response
            }
            // Unreachable: paths are percent-encoded ASCII. Say so rather than panic.
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "bad redirect").into_response(),
        }
    }
}

fn common_headers<S>(headers: &mut HeaderMap, console: &Console<S>) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Ok(token) = HeaderValue::from_str(console.csrf.token()) {
        headers.insert(csrf::HEADER, token);
    }
}

/// Reads a POST's body and checks its CSRF token (header or field): a failure is `413` for
/// a body too large, `403` for a missing or wrong token, `400` for a body that does not parse.
async fn read_post<S>(console: &Console<S>, req: &Req, body: RawBody) -> Result<Body, Failure> {
    let bytes = axum::body::to_bytes(body, input::BODY_LIMIT)
        .await
        .map_err(|_| Failure {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: format!(
                "the request body is larger than {} bytes (or was cut short)",
                input::BODY_LIMIT
            ),
        })?;
    let parsed = Body::parse(&bytes, is_json_body(&req.headers));
    let header = req.headers.get(csrf::HEADER).and_then(|v| v.to_str().ok());
    let field = parsed
        .as_ref()
        .ok()
        .and_then(|b| b.text(csrf::FIELD).ok().flatten());
    if !console.csrf.check(header) && !console.csrf.check(field.as_deref()) {
        return Err(Failure {
            status: StatusCode::FORBIDDEN,
            code: "csrf",
            message: "this request carries no valid CSRF token (reload the page and try again): \
                      nothing was changed"
                .to_owned(),
        });
    }
    parsed
}

fn operator(body: &Body) -> Result<Operator, Failure> {
    let mut who = Operator::new();
    if let Some(actor) = body.text("actor")? {
        who = who.by(actor);
    }
    if let Some(note) = body.text("note")? {
        who = who.note(note);
    }
    Ok(who)
}

/// Everything the session page shows. A session of an unregistered workflow is shown from
/// its record and history, with the reason it cannot be decoded.
async fn load<S: Store + Clone>(
    inspector: &Inspector<S>,
    session: &str,
) -> Result<(SessionData, Option<Failure>), Failure> {
    let (view, warning) = match inspector.show(session).await {
        Ok(view) => (Some(view), None),
        Err(error @ InspectError::UnregisteredWorkflow { .. }) => {
            (None, Some(Failure::from(error)))
        }
        Err(error) => return Err(error.into()),
    };
    let summary = match &view {
        Some(view) => view.summary.clone(),
        None => SessionSummary::from(&inspector.record(session).await?),
    };
    let history = inspector.history(session).await?;
    let graph = match &summary.workflow {
        Some(name) => inspector.graph(name).ok(),
        None => match inspector.graphs().as_slice() {
            [only] if view.is_some() => Some(only.clone()),
            _ => None,
        },
    };
    Ok((
        SessionData {
            summary,
            view,
            history,
            graph,
        },
        warning,
    ))
}

/// The session page with `notice` (and the submitted form refilled), or, when the session
/// cannot be read, an error page.
async fn session_page<S: Store + Clone>(
    console: &Console<S>,
    req: &Req,
    session: &str,
    status: StatusCode,
    notice: Option<Notice>,
    refill: &Refill,
) -> Response {
    match load(&console.inspector, session).await {
        Ok((data, warning)) => {
            let (status, notice) = match (warning, notice) {
                (Some(w), None) => (w.status, Some(Notice::Error(w.message))),
                (_, notice) => (status, notice),
            };
            let body = pages::session(&req.ctx(console), &data, refill);
            req.page(console, status, session, notice.as_ref(), &body)
        }
        Err(failure) => req.fail(console, failure),
    }
}

async fn list<S: Store + Clone>(State(console): Shared<S>, req: Req) -> Response {
    let result = match input::filter(&req.query) {
        Ok(filter) => console
            .inspector
            .sessions(&filter)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    if req.json {
        return match result {
            Ok(list) => req.json(&console, StatusCode::OK, &list),
            Err(failure) => req.fail(&console, failure),
        };
    }
    let names: Vec<&str> = console
        .inspector
        .graphs()
        .iter()
        .map(|g| g.workflow)
        .collect();
    let (status, notice) = match &result {
        Ok(_) => (StatusCode::OK, req.done()),
        Err(f) => (f.status, Some(Notice::Error(f.message.clone()))),
    };
    let body = pages::sessions(
        &req.ctx(&console),
        &req.query,
        &names,
        result.as_ref().map_err(|f| f.message.as_str()),
    );
    req.page(&console, status, "Sessions", notice.as_ref(), &body)
}

async fn session<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
) -> Response {
    let session = match path {
        Ok(Path(session)) => session,
        Err(rejection) => return req.fail(&console, rejection.into()),
    };
    if req.json {
        return match console.inspector.show(&session).await {
            Ok(view) => req.json(&console, StatusCode::OK, &view),
            Err(error) => req.fail(&console, error.into()),
        };
    }
    session_page(
        &console,
        &req,
        &session,
        StatusCode::OK,
        req.done(),
        &Refill::default(),
    )
    .await
}

async fn history<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
) -> Response {
    let session = match path {
        Ok(Path(session)) => session,
        Err(rejection) => return req.fail(&console, rejection.into()),
    };
    match console.inspector.history(&session).await {
        Ok(history) if req.json => req.json(&console, StatusCode::OK, &history),
        Ok(history) => {
            let body = pages::history(&req.ctx(&console), &session, &history);
            req.page(&console, StatusCode::OK, &session, None, &body)
        }
        Err(error) => req.fail(&console, error.into()),
    }
}

async fn diff<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
) -> Response {
    let session = match path {
        Ok(Path(session)) => session,
        Err(rejection) => return req.fail(&console, rejection.into()),
    };
    let seqs = input::seq(&req.query, "from").and_then(|from| {
        let to = input::seq(&req.query, "to")?;
        match (from, to) {
            (Some(from), Some(to)) => Ok((from, to)),
            _ => Err(bad(
                "a diff needs `from` and `to`, two checkpoints' sequence numbers",
            )),
        }
    });
    let (from, to) = match seqs {
        Ok(seqs) => seqs,
        Err(failure) => return req.fail(&console, failure),
    };
    match console.inspector.diff(&session, from, to).await {
        Ok(view) if req.json => req.json(&console, StatusCode::OK, &view),
        Ok(view) => {
            let body = pages::diff(&req.ctx(&console), &view);
            req.page(&console, StatusCode::OK, &session, None, &body)
        }
        Err(error) => req.fail(&console, error.into()),
    }
}

/// A POST on a session: reads the body (CSRF checked), runs `act`, and answers: JSON with
/// the result, or a redirect to `then` (relative to the console's routes) with `?done=name`;
/// on failure, the session page again with the error and the form as it was sent.
async fn act<S, T, F>(
    console: &Console<S>,
    req: &Req,
    path: Result<Path<String>, PathRejection>,
    raw: RawBody,
    name: &'static str,
    action: F,
) -> Response
where
    S: Store + Clone,
    T: Serialize,
    F: AsyncFnOnce(&Inspector<S>, &str, &Body) -> Result<(T, String), Failure>,
{
    let session = match path {
        Ok(Path(session)) => session,
        Err(rejection) => return req.fail(console, rejection.into()),
    };
    let body = match read_post(console, req, raw).await {
        Ok(body) => body,
        Err(failure) => return req.fail(console, failure),
    };
    match action(&console.inspector, &session, &body).await {
        Ok((result, _)) if req.json => req.json(console, StatusCode::OK, &result),
        Ok((_, then)) => {
            let mut done = Query::new();
            done.insert("done".to_owned(), name.to_owned());
            req.redirect(&pages::with_query(&then, &done))
        }
        Err(failure) if req.json => req.fail(console, failure),
        Err(failure) => {
            let refill = Refill {
                form: name,
                fields: body.fields(),
            };
            let notice = Notice::Error(failure.message.clone());
            session_page(
                console,
                req,
                &session,
                failure.status,
                Some(notice),
                &refill,
            )
            .await
        }
    }
}

/// Runs a POST's handling on a task of its own, so that a client that goes away (a closed
/// tab, a proxy's timeout) does not cancel a decision or a resume halfway through its run.
async fn detached(handling: impl Future<Output = Response> + Send + 'static) -> Response {
    match tokio::spawn(handling).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "a web console action did not finish");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the action did not finish: see the service's log",
            )
                .into_response()
        }
    }
}

async fn decide<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
    raw: RawBody,
) -> Response {
    detached(async move {
        act(
            &console,
            &req,
            path,
            raw,
            "decide",
            async |inspector, session, body| {
                let decision = match (
                    body.text("node")?,
                    body.json("input"),
                    body.json("decision"),
                ) {
                    (Some(node), Some(input), None) => {
                        // Parsed here so that an error names the input, not a wrapper the person
                        // never typed.
                        let input = crate::inspect::from_operator(&input)
                            .map_err(|e| bad(format!("the input of `{node}` is not JSON: {e}")))?;
                        serde_json::json!({ node: input }).to_string()
                    }
                    (None, None, Some(decision)) => decision,
                    (Some(node), None, None) => {
                        return Err(bad(format!("give the input of `{node}`, as JSON")));
                    }
                    _ => {
                        return Err(bad(
                            "a decision is either `node` and `input` (the node's input as JSON) or \
                     `decision` (`{\"node\": input}`)",
                        ));
                    }
                };
                let view = inspector
                    .decide(session, &decision, &operator(body)?)
                    .await?;
                Ok((view, session_path(session)))
            },
        )
        .await
    })
    .await
}

async fn edit<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
    raw: RawBody,
) -> Response {
    detached(async move {
        act(
            &console,
            &req,
            path,
            raw,
            "edit",
            async |inspector, session, body| {
                let patch = body.json("patch").ok_or_else(|| {
                    bad("give `patch`, a JSON merge patch such as {\"field\": 1}")
                })?;
                let expected = body.seq("expected_seq")?;
                let view = inspector
                    .edit(session, &patch, expected, &operator(body)?)
                    .await?;
                Ok((view, session_path(session)))
            },
        )
        .await
    })
    .await
}

async fn resume<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
    raw: RawBody,
) -> Response {
    detached(async move {
        act(
            &console,
            &req,
            path,
            raw,
            "resume",
            async |inspector, session, _| {
                let view = inspector.resume(session).await?;
                Ok((view, session_path(session)))
            },
        )
        .await
    })
    .await
}

async fn cancel<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
    raw: RawBody,
) -> Response {
    detached(async move {
        act(
            &console,
            &req,
            path,
            raw,
            "cancel",
            async |inspector, session, body| {
                let view = inspector.cancel(session, &operator(body)?).await?;
                Ok((view, session_path(session)))
            },
        )
        .await
    })
    .await
}

async fn fork<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
    raw: RawBody,
) -> Response {
    detached(async move {
        act(
            &console,
            &req,
            path,
            raw,
            "fork",
            async |inspector, session, body| {
                let new_session = body
                    .text("new_session")?
                    .ok_or_else(|| bad("give `new_session`, the new session's id"))?;
                let seq = body.seq("seq")?;
                let patch = body.json("patch");
                let view = inspector
                    .fork(
                        session,
                        seq,
                        &new_session,
                        patch.as_deref(),
                        &operator(body)?,
                    )
                    .await?;
                Ok((view, session_path(&new_session)))
            },
        )
        .await
    })
    .await
}

async fn delete<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
    raw: RawBody,
) -> Response {
    detached(async move {
        act(
            &console,
            &req,
            path,
            raw,
            "delete",
            async |inspector, session, body| {
                if !body.flag("confirm") {
                    return Err(bad(
                        "deleting needs `confirm` (tick the box; JSON `\"confirm\": true`)",
                    ));
                }
                inspector.delete(session).await?;
                Ok((
                    serde_json::json!({ "deleted": session }),
                    "sessions".to_owned(),
                ))
            },
        )
        .await
    })
    .await
}

async fn graphs<S: Store + Clone>(State(console): Shared<S>, req: Req) -> Response {
    let graphs = console.inspector.graphs();
    if req.json {
        return req.json(&console, StatusCode::OK, &graphs);
    }
    let body = pages::graphs(&req.ctx(&console), &graphs);
    req.page(&console, StatusCode::OK, "Graphs", None, &body)
}

async fn graph<S: Store + Clone>(
    State(console): Shared<S>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
) -> Response {
    let name = match path {
        Ok(Path(name)) => name,
        Err(rejection) => return req.fail(&console, rejection.into()),
    };
    match console.inspector.graph(&name) {
        Ok(graph) if req.json => req.json(&console, StatusCode::OK, &graph),
        Ok(graph) => {
            let body = pages::graphs(&req.ctx(&console), std::slice::from_ref(&graph));
            req.page(&console, StatusCode::OK, graph.workflow, None, &body)
        }
        Err(error) => req.fail(&console, error.into()),
    }
}

async fn stuck<S: Store + Clone>(State(console): Shared<S>, req: Req) -> Response {
    let asked = input::duration(&req.query, "older_than")
        .and_then(|age| Ok((age, input::limit(&req.query, input::DEFAULT_LIMIT)?)));
    let result = match asked {
        Ok((age, limit)) => console
            .inspector
            .stuck(age.unwrap_or(Duration::from_secs(3600)), limit)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    if req.json {
        return match result {
            Ok(found) => req.json(&console, StatusCode::OK, &found),
            Err(failure) => req.fail(&console, failure),
        };
    }
    let (status, notice) = match &result {
        Ok(_) => (StatusCode::OK, None),
        Err(f) => (f.status, Some(Notice::Error(f.message.clone()))),
    };
    let body = pages::stuck(
        &req.ctx(&console),
        &req.query,
        result.as_deref().map_err(|f| f.message.as_str()),
    );
    req.page(&console, status, "Stuck sessions", notice.as_ref(), &body)
}

async fn not_found<S: Store + Clone>(State(console): Shared<S>, req: Req) -> Response {
    req.fail(
        &console,
        Failure {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "no such page in the console".to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_where_the_page_is() {
        assert_eq!(base("/", "/"), "./");
        assert_eq!(base("/", "/ops"), "./ops/");
        assert_eq!(base("/", "/ops/"), "./");
        assert_eq!(base("/", "/a/b%20c"), "./b%20c/");
        assert_eq!(base("/sessions", "/ops/sessions"), "./");
        assert_eq!(base("/sessions/x", "/ops/sessions/x"), "../");
        assert_eq!(
            base("/sessions/a%2Fb/decide", "/sessions/a%2Fb/decide"),
            "../../"
        );
        assert_eq!(base("", ""), "./");
    }

    #[test]
    fn json_is_asked_for_by_accept_or_a_json_body() {
        let headers = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(name.clone(), HeaderValue::from_static(value));
            }
            map
        };
        assert!(wants_json(&headers(&[(
            header::ACCEPT,
            "application/json"
        )])));
        assert!(!wants_json(&headers(&[(
            header::ACCEPT,
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )])));
        assert!(wants_json(&headers(&[(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8"
        )])));
        assert!(!wants_json(&headers(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::ACCEPT, "text/html")
        ])));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
