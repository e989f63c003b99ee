//! The inspector's command line (feature `cli`): [`Command`], a `clap::Subcommand` a service
//! mounts in its own command line, and [`main`], the whole of a five-line binary.
//!
//! ```no_run
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
//! use graph_runtime::inspect::{self, Inspector};
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let store = SqliteStore::open("checkout.db").expect("open the store");
//!     let inspector = Inspector::new(store.clone()).register(Runner::new(checkout::Workflow, store));
//!     inspect::cli::main(&inspector).await
//! }
//! ```
//!
//! Every command prints a table a person reads at a glance (`-o text`, the default) or JSON
//! for scripts (`-o json`: one document, or JSON Lines for `export`); errors go to stderr with
//! a non-zero exit code (2 bad input, 3 unknown session or workflow, 4 refused by the
//! session's state, 1 otherwise).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use super::{BulkAction, InspectError, Inspector, Operator, SessionSummary, SessionView};
use crate::store::{SessionFilter, StatusKind, Store};

/// How a command prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables and short lines, for a person.
    #[default]
    Text,
    /// JSON, stable for scripts.
    Json,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Which sessions: the filters `sessions`, `export` and the bulk forms take.
#[derive(Debug, Clone, Default, Args)]
pub struct Filter {
    /// Only sessions with this status: running, waiting, completed, failed, cancelled.
    #[arg(long)]
    pub status: Option<String>,
    /// Only sessions waiting at this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Only sessions of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only sessions not written for this long (`30m`, `2h`, `7d`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// Only sessions whose id comes after this one (the `next` of a page).
    #[arg(long)]
    pub after: Option<String>,
}

impl Filter {
    fn to_filter(&self, limit: usize) -> Result<SessionFilter, InspectError> {
        let mut filter = SessionFilter::new();
        if limit == 0 || limit > SessionFilter::MAX_LIMIT {
            return Err(InspectError::BadInput(format!(
                "--limit must be between 1 and {}",
                SessionFilter::MAX_LIMIT
            )));
        }
        filter = filter.limit(limit);
        if let Some(status) = &self.status {
            let kind = StatusKind::parse(status).ok_or_else(|| {
                InspectError::BadInput(format!(
                    "unknown status `{status}` (one of: {})",
                    StatusKind::ALL.map(StatusKind::as_str).join(", ")
                ))
            })?;
            filter = filter.status(kind);
        }
        if let Some(node) = &self.node {
            if self.status.as_deref().is_some_and(|s| s != "waiting") {
                return Err(InspectError::BadInput(
                    "--node finds sessions waiting at a node: it cannot go with another --status"
                        .to_owned(),
                ));
            }
            filter = filter.waiting_at(node);
        }
        if let Some(workflow) = &self.workflow {
            filter = filter.workflow(workflow);
        }
        if let Some(age) = self.older_than {
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            filter = filter.updated_before(cutoff);
        }
        if let Some(after) = &self.after {
            filter = filter.after(after);
        }
        Ok(filter)
    }

    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.node.is_none()
            && self.workflow.is_none()
            && self.older_than.is_none()
            && self.after.is_none()
    }
}

/// Who acts and why, kept in the session's history.
#[derive(Debug, Clone, Default, Args)]
pub struct Who {
    /// Who acts (kept in the session's history).
    #[arg(long)]
    pub by: Option<String>,
    /// Why (kept in the session's history).
    #[arg(long)]
    pub note: Option<String>,
}

impl Who {
    fn operator(&self) -> Operator {
        Operator {
            actor: self.by.clone(),
            note: self.note.clone(),
        }
    }
}

/// A bulk form: the sessions a filter matches, listed unless `--yes`.
#[derive(Debug, Clone, Default, Args)]
pub struct Bulk {
    /// Which sessions.
    #[command(flatten)]
    filter: Filter,
    /// Act on every session the filter matches (without it, only list them).
    #[arg(long)]
    yes: bool,
}

/// The inspector's commands (mount it in a service's own `clap` command line).
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// List sessions (filtered, a page at a time).
    Sessions {
        /// Which sessions.
        #[command(flatten)]
        filter: Filter,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// One session: where it stands and its state.
    Show {
        /// The session id.
        session: String,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// A session's checkpoints with the decisions, edits and failures beside them.
    History {
        /// The session id.
        session: String,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// What changed in a session's state between two checkpoints.
    Diff {
        /// The session id.
        session: String,
        /// The older checkpoint's sequence number.
        from: u64,
        /// The newer one's.
        to: u64,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// Every matching session with its state, as JSON Lines.
    Export {
        /// Which sessions.
        #[command(flatten)]
        filter: Filter,
    },
    /// Give a waiting session its decision, as JSON keyed by the node's name.
    Decide {
        /// The session id.
        session: String,
        /// The decision, e.g. '{"review":"Approve"}'.
        decision: String,
        /// Who acts, and why.
        #[command(flatten)]
        who: Who,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// Change fields of a waiting or failed session's state by a JSON merge patch.
    Edit {
        /// The session id.
        session: String,
        /// The patch, e.g. '{"amount":90}' (null removes a field).
        patch: String,
        /// Refuse unless the session is still at this checkpoint.
        #[arg(long)]
        expected_seq: Option<u64>,
        /// Who acts, and why.
        #[command(flatten)]
        who: Who,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// Run a session on from its latest checkpoint (or, with filters, every match).
    Resume {
        /// The session id (none: the filters' matches).
        session: Option<String>,
        /// The bulk form's filters.
        #[command(flatten)]
        bulk: Bulk,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// Start a new session from a checkpoint of another, optionally patched.
    Fork {
        /// The session to copy.
        session: String,
        /// The new session's id.
        new_session: String,
        /// The checkpoint to start from (default: the latest).
        #[arg(long)]
        seq: Option<u64>,
        /// A JSON merge patch for the copy's state.
        #[arg(long)]
        patch: Option<String>,
        /// Who acts, and why.
        #[command(flatten)]
        who: Who,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a session for good (or, with filters, every match).
    Cancel {
        /// The session id (none: the filters' matches).
        session: Option<String>,
        /// The bulk form's filters.
        #[command(flatten)]
        bulk: Bulk,
        /// Who acts, and why.
        #[command(flatten)]
        who: Who,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// Delete a session and all its checkpoints (or, with filters, every match).
    Delete {
        /// The session id (none: the filters' matches).
        session: Option<String>,
        /// The bulk form's filters.
        #[command(flatten)]
        bulk: Bulk,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// A workflow's graph: nodes, hash, schema, Mermaid (every workflow without a name).
    Graph {
        /// The workflow's name.
        workflow: Option<String>,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
    /// Sessions that need a person: failed, waiting too long, or held by a dead worker.
    Stuck {
        /// How long is too long.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
        older_than: Duration,
        /// At most this many of each kind.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Output options.
        #[command(flatten)]
        common: Common,
    },
}

/// The arguments of the five-line binary: one [`Command`].
#[derive(Debug, Parser)]
#[command(about = "Inspect and steer graph-runtime sessions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Parses the process's arguments as a [`Command`], runs it against `inspector`, prints its
/// result to stdout and any error to stderr; returns the exit code.
pub async fn main<S: Store + Clone>(inspector: &Inspector<S>) -> ExitCode {
    let cli = Cli::parse();
    let code = cli
        .command
        .run(inspector, &mut std::io::stdout(), &mut std::io::stderr())
        .await;
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

impl Command {
    /// Runs the command against `inspector`: its result to `out`, an error to `err`
    /// (`error: …`, or a JSON object `{"error": {"code": …, "message": …}}` with `-o json`).
    /// Returns the exit code: 0, or [`InspectError::exit_code`].
    pub async fn run<S: Store + Clone>(
        self,
        inspector: &Inspector<S>,
        out: &mut (dyn Write + Send),
        err: &mut (dyn Write + Send),
    ) -> i32 {
        let format = self.format();
        match self.execute(inspector, out, format).await {
            Ok(()) => 0,
            Err(error) => {
                let _ = match format {
                    Format::Text => writeln!(err, "error: {error}"),
                    Format::Json => writeln!(
                        err,
                        "{}",
                        serde_json::json!({"error": {"code": error.code(), "message": error.to_string()}})
                    ),
                };
                error.exit_code()
            }
        }
    }

    fn format(&self) -> Format {
        match self {
            Command::Sessions { common, .. }
            | Command::Show { common, .. }
            | Command::History { common, .. }
            | Command::Diff { common, .. }
            | Command::Decide { common, .. }
            | Command::Edit { common, .. }
            | Command::Resume { common, .. }
            | Command::Fork { common, .. }
            | Command::Cancel { common, .. }
            | Command::Delete { common, .. }
            | Command::Graph { common, .. }
            | Command::Stuck { common, .. } => common.output,
            Command::Export { .. } => Format::Json,
        }
    }

    async fn execute<S: Store + Clone>(
        self,
        inspector: &Inspector<S>,
        out: &mut (dyn Write + Send),
        format: Format,
    ) -> Result<(), InspectError> {
        match self {
            Command::Sessions { filter, limit, .. } => {
                let list = inspector.sessions(&filter.to_filter(limit)?).await?;
                emit(out, format, &list, |out| {
                    sessions_table(out, &list.sessions)?;
                    if let Some(next) = &list.next {
                        writeln!(out, "more: --after {next}")?;
                    }
                    Ok(())
                })
            }
            Command::Show { session, .. } => {
                let view = inspector.show(&session).await?;
                emit(out, format, &view, |out| show_text(out, &view))
            }
            Command::History { session, .. } => {
                let history = inspector.history(&session).await?;
                emit(out, format, &history, |out| {
                    let rows = history
                        .iter()
                        .map(|h| {
                            vec![
                                h.seq.to_string(),
                                h.at.clone(),
                                h.node.clone(),
                                h.status.to_owned(),
                                h.event.as_ref().map_or(String::new(), describe_audit),
                                h.failure.as_ref().map_or(String::new(), describe_audit),
                            ]
                        })
                        .collect();
                    table(
                        out,
                        &["SEQ", "AT", "NODE", "STATUS", "EVENT", "FAILURE"],
                        rows,
                    )
                })
            }
            Command::Diff {
                session, from, to, ..
            } => {
                let view = inspector.diff(&session, from, to).await?;
                emit(out, format, &view, |out| {
                    if view.changes.is_empty() {
                        return writeln!(out, "no change between {from} and {to}");
                    }
                    let rows = view
                        .changes
                        .iter()
                        .map(|c| {
                            vec![
                                c.path.clone(),
                                c.old
                                    .as_ref()
                                    .map_or("(absent)".to_owned(), |v| v.to_string()),
                                c.new
                                    .as_ref()
                                    .map_or("(absent)".to_owned(), |v| v.to_string()),
                            ]
                        })
                        .collect();
                    table(out, &["PATH", "OLD", "NEW"], rows)
                })
            }
            Command::Export { filter } => {
                inspector
                    .export(&filter.to_filter(SessionFilter::MAX_LIMIT)?, out)
                    .await?;
                Ok(())
            }
            Command::Decide {
                session,
                decision,
                who,
                ..
            } => {
                let view = inspector
                    .decide(&session, &decision, &who.operator())
                    .await?;
                emit(out, format, &view, |out| show_text(out, &view))
            }
            Command::Edit {
                session,
                patch,
                expected_seq,
                who,
                ..
            } => {
                let view = inspector
                    .edit(&session, &patch, expected_seq, &who.operator())
                    .await?;
                emit(out, format, &view, |out| show_text(out, &view))
            }
            Command::Resume { session, bulk, .. } => match session {
                Some(session) => {
                    refuse_filters(&bulk)?;
                    let view = inspector.resume(&session).await?;
                    emit(out, format, &view, |out| show_text(out, &view))
                }
                None => {
                    run_bulk(
                        inspector,
                        BulkAction::Resume,
                        bulk,
                        Who::default(),
                        out,
                        format,
                    )
                    .await
                }
            },
            Command::Fork {
                session,
                new_session,
                seq,
                patch,
                who,
                ..
            } => {
                let view = inspector
                    .fork(
                        &session,
                        seq,
                        &new_session,
                        patch.as_deref(),
                        &who.operator(),
                    )
                    .await?;
                emit(out, format, &view, |out| show_text(out, &view))
            }
            Command::Cancel {
                session, bulk, who, ..
            } => match session {
                Some(session) => {
                    refuse_filters(&bulk)?;
                    let view = inspector.cancel(&session, &who.operator()).await?;
                    emit(out, format, &view, |out| show_text(out, &view))
                }
                None => run_bulk(inspector, BulkAction::Cancel, bulk, who, out, format).await,
            },
            Command::Delete { session, bulk, .. } => match session {
                Some(session) => {
                    refuse_filters(&bulk)?;
                    inspector.delete(&session).await?;
                    let done = serde_json::json!({"deleted": session});
                    emit(out, format, &done, |out| writeln!(out, "deleted {session}"))
                }
                None => {
                    run_bulk(
                        inspector,
                        BulkAction::Delete,
                        bulk,
                        Who::default(),
                        out,
                        format,
                    )
                    .await
                }
            },
            Command::Graph { workflow, .. } => {
                let graphs = match workflow {
                    Some(name) => vec![inspector.graph(&name)?],
                    None => inspector.graphs(),
                };
                emit(out, format, &graphs, |out| {
                    for graph in &graphs {
                        writeln!(out, "workflow      {}", graph.workflow)?;
                        writeln!(out, "graph hash    {}", graph.graph_hash)?;
                        writeln!(out, "state schema  {}", graph.state_schema)?;
                        let rows = graph
                            .nodes
                            .iter()
                            .map(|n| {
                                vec![
                                    n.name.to_owned(),
                                    if n.interrupt { "interrupt" } else { "" }.to_owned(),
                                    n.wait_ms.map_or(String::new(), |ms| {
                                        humantime::format_duration(Duration::from_millis(ms))
                                            .to_string()
                                    }),
                                ]
                            })
                            .collect();
                        table(out, &["NODE", "KIND", "DEADLINE"], rows)?;
                        writeln!(out, "\n{}", graph.mermaid)?;
                    }
                    Ok(())
                })
            }
            Command::Stuck {
                older_than, limit, ..
            } => {
                if limit == 0 || limit > SessionFilter::MAX_LIMIT {
                    return Err(InspectError::BadInput(format!(
                        "--limit must be between 1 and {}",
                        SessionFilter::MAX_LIMIT
                    )));
                }
                let stuck = inspector.stuck(older_than, limit).await?;
                emit(out, format, &stuck, |out| sessions_table(out, &stuck))
            }
        }
    }
}

fn refuse_filters(bulk: &Bulk) -> Result<(), InspectError> {
    if bulk.filter.is_empty() && !bulk.yes {
        Ok(())
    } else {
        Err(InspectError::BadInput(
            "give either a session id or filters (with --yes to act), not both".to_owned(),
        ))
    }
}

async fn run_bulk<S: Store + Clone>(
    inspector: &Inspector<S>,
    action: BulkAction,
    bulk: Bulk,
    who: Who,
    out: &mut (dyn Write + Send),
    format: Format,
) -> Result<(), InspectError> {
    if bulk.filter.is_empty() {
        return Err(InspectError::BadInput(format!(
            "`{}` needs a session id, or filters (--status, --node, --workflow, --older-than) \
             for every session they match",
            action.as_str()
        )));
    }
    let filter = bulk.filter.to_filter(SessionFilter::MAX_LIMIT)?;
    let report = inspector
        .bulk(action, &filter, !bulk.yes, &who.operator())
        .await?;
    emit(out, format, &report, |out| {
        if report.dry_run {
            writeln!(
                out,
                "{} sessions would be {}d (add --yes to do it):",
                report.sessions.len(),
                report.action.trim_end_matches('e')
            )?;
            for session in &report.sessions {
                writeln!(out, "  {session}")?;
            }
            return Ok(());
        }
        writeln!(
            out,
            "{}d {} of {} sessions",
            report.action.trim_end_matches('e'),
            report.done,
            report.sessions.len()
        )?;
        for (session, error) in &report.failed {
            writeln!(out, "  {session}: {error}")?;
        }
        Ok(())
    })
}

/// Writes `value` as JSON, or calls `text` for a person.
fn emit<T: Serialize>(
    out: &mut (dyn Write + Send),
    format: Format,
    value: &T,
    text: impl FnOnce(&mut (dyn Write + Send)) -> std::io::Result<()>,
) -> Result<(), InspectError> {
    let written = match format {
        Format::Json => serde_json::to_writer_pretty(&mut *out, value)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        Format::Text => text(out),
    };
    written.map_err(|e| InspectError::Runtime(crate::Error::Store(Box::new(e))))
}

fn sessions_table(
    out: &mut (dyn Write + Send),
    sessions: &[SessionSummary],
) -> std::io::Result<()> {
    if sessions.is_empty() {
        return writeln!(out, "no sessions");
    }
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.session.clone(),
                s.workflow.clone().unwrap_or_default(),
                s.status.to_owned(),
                if s.waiting.is_empty() {
                    s.node.clone()
                } else {
                    s.waiting.join(",")
                },
                s.seq.to_string(),
                s.updated_at.clone(),
            ]
        })
        .collect();
    table(
        out,
        &["SESSION", "WORKFLOW", "STATUS", "NODE", "SEQ", "UPDATED"],
        rows,
    )
}

fn show_text(out: &mut (dyn Write + Send), view: &SessionView) -> std::io::Result<()> {
    let s = &view.summary;
    writeln!(out, "session   {}", s.session)?;
    writeln!(out, "workflow  {}", s.workflow.as_deref().unwrap_or("-"))?;
    let status = if s.waiting.is_empty() {
        s.status.to_owned()
    } else {
        format!("{} at {}", s.status, s.waiting.join(", "))
    };
    writeln!(out, "status    {status}")?;
    writeln!(out, "node      {}", s.node)?;
    writeln!(out, "seq       {}", s.seq)?;
    writeln!(out, "created   {}", s.created_at)?;
    writeln!(out, "updated   {}", s.updated_at)?;
    if let Some(wake) = &s.wake_at {
        writeln!(out, "deadline  {wake}")?;
    }
    if let Some(lease) = &s.lease {
        let state = if lease.expired { "expired" } else { "until" };
        writeln!(
            out,
            "lease     {} ({state} {})",
            lease.owner, lease.expires_at
        )?;
    }
    if let Some(failure) = &view.failure {
        writeln!(out, "failure   {failure}")?;
    }
    let state = serde_json::to_string_pretty(&view.state).map_err(std::io::Error::other)?;
    writeln!(out, "state\n{state}")
}

fn describe_audit(audit: &super::AuditView) -> String {
    let mut text = audit.kind.to_owned();
    if let Some(node) = &audit.node {
        text.push(' ');
        text.push_str(node);
    }
    if audit.source == Some("deadline") {
        text.push_str(" (deadline)");
    }
    if let Some(error) = &audit.error {
        text.push_str(": ");
        text.push_str(error);
    }
    if let Some((from, seq)) = &audit.from {
        text.push_str(&format!(" from {from}@{seq}"));
    }
    if let Some(diff) = &audit.diff {
        text.push(' ');
        text.push_str(&diff.to_string());
    }
    if let Some(actor) = &audit.actor {
        text.push_str(" by ");
        text.push_str(actor);
    }
    if let Some(note) = &audit.note {
        text.push_str(&format!(" ({note})"));
    }
    text
}

/// Writes `rows` under `headers`, each column as wide as its widest cell.
fn table(
    out: &mut (dyn Write + Send),
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut (dyn Write + Send), cells: Vec<&str>| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, headers.to_vec())?;
    for row in &rows {
        line(out, row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}
