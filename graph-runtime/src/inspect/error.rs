//! What can go wrong in an inspector call, and how each surface reports it.

/// Why an [`Inspector`](super::Inspector) call did nothing. Every variant means nothing was
/// changed in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// No session has this id.
    #[error("no session `{0}`")]
    UnknownSession(String),

    /// The session belongs to a workflow this inspector was not given.
    #[error(
        "session `{session}` belongs to workflow {}, which this inspector does not know \
         (registered: {})",
        workflow.as_deref().map_or("(unrecorded)".to_owned(), |w| format!("`{w}`")),
        list(registered)
    )]
    UnregisteredWorkflow {
        /// The session.
        session: String,
        /// Its workflow as the store recorded it (`None` for a session written by a release
        /// that did not record it).
        workflow: Option<String>,
        /// The workflows this inspector knows.
        registered: Vec<&'static str>,
    },

    /// A workflow name that is not registered.
    #[error("no workflow `{name}` (registered: {})", list(registered))]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The workflows this inspector knows.
        registered: Vec<&'static str>,
    },

    /// Input from a person or a script is not what the call needs: malformed JSON, a
    /// decision of the wrong shape, a patch whose result is not a state, a bad filter.
    #[error("{0}")]
    BadInput(String),

    /// The session is not in a state the call applies to (it does not wait at that node,
    /// it runs, it has completed, another writer moved it on): nothing was written.
    #[error(transparent)]
    Refused(crate::Error),

    /// The runtime or the store failed.
    #[error(transparent)]
    Runtime(crate::Error),
}

impl InspectError {
    /// The HTTP status a web surface answers with: 404 for an unknown session or workflow,
    /// 400 for bad input, 409 when the session's state refuses the call, 422 for a session
    /// of an unregistered workflow, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            InspectError::UnknownSession(_) | InspectError::UnknownWorkflow { .. } => 404,
            InspectError::BadInput(_) => 400,
            InspectError::Refused(_) => 409,
            InspectError::UnregisteredWorkflow { .. } => 422,
            InspectError::Runtime(_) => 500,
        }
    }

    /// The process exit code a command line uses: 2 for bad input (as for a usage error),
    /// 3 for an unknown session or workflow, 4 when the session's state refuses the call,
    /// 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            InspectError::BadInput(_) => 2,
            InspectError::UnknownSession(_) | InspectError::UnknownWorkflow { .. } => 3,
            InspectError::Refused(_) => 4,
            InspectError::UnregisteredWorkflow { .. } | InspectError::Runtime(_) => 1,
        }
    }

    /// A short machine-readable name of the variant (`unknown_session`, `bad_input`, …), for
    /// JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            InspectError::UnknownSession(_) => "unknown_session",
            InspectError::UnregisteredWorkflow { .. } => "unregistered_workflow",
            InspectError::UnknownWorkflow { .. } => "unknown_workflow",
            InspectError::BadInput(_) => "bad_input",
            InspectError::Refused(_) => "refused",
            InspectError::Runtime(_) => "runtime",
        }
    }
}

impl From<crate::Error> for InspectError {
    fn from(error: crate::Error) -> Self {
        use crate::Error as E;
        match error {
            E::SessionNotFound(session) => InspectError::UnknownSession(session),
            E::NotWaiting { .. }
            | E::Conflict { .. }
            | E::Refused { .. }
            | E::Cancelled(_)
            | E::SessionExists(_)
            | E::CheckpointNotFound { .. }
            | E::LeaseLost { .. } => InspectError::Refused(error),
            E::InvalidSessionId { .. } => InspectError::BadInput(error.to_string()),
            other => InspectError::Runtime(other),
        }
    }
}

fn list(names: &[&'static str]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
