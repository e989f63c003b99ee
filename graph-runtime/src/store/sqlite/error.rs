//! Errors: [`SqliteError`], what every SQLite failure becomes, its [`Context`] (the file and
//! the busy timeout), and [`StoreClosed`], the error of a call after
//! [`SqliteStore::close`](super::SqliteStore::close).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::ErrorCode;

use crate::error::Error;
use crate::error::StoreFault;

/// The error inside [`Error::Store`], [`Error::StoreBusy`] or [`Error::StoreDamaged`] for
/// everything SQLite reports.
///
/// Its message already says what failed, where, and what SQLite said, so it has no `source`.
#[derive(Debug)]
pub(super) struct SqliteError {
    pub(super) message: String,
    #[allow(dead_code)] // kept for `Debug`: the original error with its extended code
    pub(super) sqlite: Option<rusqlite::Error>,
    /// Which store variant of [`Error`] it goes into.
    pub(super) fault: StoreFault,
}

impl SqliteError {
    /// An error whose kind is that of SQLite's code (none: [`StoreFault::Failed`]).
    fn new(message: String, sqlite: Option<rusqlite::Error>) -> Self {
        let fault = sqlite
            .as_ref()
            .and_then(rusqlite::Error::sqlite_error_code)
            .map_or(StoreFault::Failed, fault_of);
        SqliteError {
            message,
            sqlite,
            fault,
        }
    }

    pub(super) fn into_error(self) -> Error {
        self.fault.error(Box::new(self))
    }

    /// The error for one of several callers that share it (a failed group commit).
    pub(super) fn shared(self: &Arc<Self>) -> Error {
        self.fault.error(Box::new(Arc::clone(self)))
    }
}

/// Which store variant of [`Error`] a SQLite result code goes into: busy and locked can
/// succeed later, a corrupt file or one that is not a database never will, and the rest
/// (I/O errors, a full disk, permissions, a file that cannot be opened) are [`Error::Store`].
pub(super) fn fault_of(code: ErrorCode) -> StoreFault {
    match code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreFault::Busy,
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreFault::Damaged,
        _ => StoreFault::Failed,
    }
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqliteError {}

/// The error inside [`Error::Store`] (not [`Error::StoreBusy`]: retrying on a closed handle
/// never succeeds) for any call on a [`SqliteStore`](super::SqliteStore) (or one of its
/// clones) after [`SqliteStore::close`](super::SqliteStore::close).
///
/// ```
/// use graph_runtime::{Error, SqliteStore};
/// use graph_runtime::store::{Store, StoreClosed};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> graph_runtime::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("orders.db"))?;
/// let clone = store.clone();
/// store.close().await?;
/// let error = clone.latest("order-1").await.unwrap_err();
/// let closed = match &error {
///     Error::Store(e) => e.downcast_ref::<StoreClosed>(),
///     _ => None,
/// };
/// assert!(closed.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StoreClosed {
    file: Arc<str>,
}

impl StoreClosed {
    /// The file of the closed store, as it was given to `open`.
    ///
    /// ```
    /// # use graph_runtime::store::StoreClosed;
    /// fn report(closed: &StoreClosed) -> String {
    ///     format!("{} is closed", closed.file())
    /// }
    /// # let _ = report;
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl fmt::Display for StoreClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the SQLite store `{}` was closed with `SqliteStore::close`; open it again to use it",
            self.file
        )
    }
}

impl std::error::Error for StoreClosed {}

/// A closed store is [`Error::Store`]: retrying on the same handle cannot help, opening the
/// file again can.
pub(super) fn closed_error(label: &Arc<str>) -> Error {
    Error::Store(Box::new(StoreClosed {
        file: Arc::clone(label),
    }))
}

pub(super) fn store_error(message: String, sqlite: Option<rusqlite::Error>) -> Error {
    SqliteError::new(message, sqlite).into_error()
}

/// What every error message names: the file and the busy timeout.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) label: Arc<str>,
    pub(super) busy_timeout: Duration,
}

impl Context {
    pub(super) fn new(path: &Path, busy_timeout: Duration) -> Self {
        Context {
            label: path.display().to_string().into(),
            busy_timeout,
        }
    }

    pub(super) fn sqlite_error(&self, action: &str, error: rusqlite::Error) -> SqliteError {
        let message = match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
                "could not {action} in `{}`: another connection or process held the database \
                 lock for longer than the busy timeout ({} ms): {error}",
                self.label,
                self.busy_timeout.as_millis()
            ),
            _ => format!("could not {action} in `{}`: {error}", self.label),
        };
        SqliteError::new(message, Some(error))
    }

    pub(super) fn error(&self, action: &str, error: rusqlite::Error) -> Error {
        self.sqlite_error(action, error).into_error()
    }

    /// Refuses the file: `fault` is [`StoreFault::Damaged`] for a file that is not ours (of
    /// another application, or a schema version we never wrote), [`StoreFault::Failed`] for
    /// one we cannot use here (no WAL, a newer schema).
    pub(super) fn refuse(&self, fault: StoreFault, why: String) -> Error {
        SqliteError {
            message: format!("cannot use `{}` as a checkpoint store: {why}", self.label),
            sqlite: None,
            fault,
        }
        .into_error()
    }
}

pub(super) fn corrupt(session: &str, seq: u64, reason: String) -> Error {
    Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason,
    }
}
