//! Errors: [`PostgresError`], what everything PostgreSQL (or the way to it) reports becomes,
//! which store variant of [`Error`] a SQLSTATE goes into, and the [`Context`] every message
//! names (the server and the connect timeout).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::tls;
use crate::error::Error;
use crate::error::StoreFault;

/// The error inside [`Error::Store`], [`Error::StoreBusy`] or [`Error::StoreDamaged`] for
/// everything PostgreSQL (or the way to it) reports.
///
/// Its message says what failed, where, and what the server said; the driver's error is its
/// `source`.
#[derive(Debug)]
pub(super) struct PostgresError {
    pub(super) message: String,
    pub(super) source: Option<tokio_postgres::Error>,
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PostgresError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The store error around `message`, of the kind the server's SQLSTATE says (see
/// [`fault_of`]); errors with no SQLSTATE (the connection failed or closed, a timeout, a
/// bad connection string) are [`Error::Store`].
pub(super) fn store_error(message: String, source: Option<tokio_postgres::Error>) -> Error {
    let fault = source
        .as_ref()
        .and_then(tokio_postgres::Error::code)
        .map_or(StoreFault::Failed, fault_of);
    fault.error(Box::new(PostgresError { message, source }))
}

/// Which store variant of [`Error`] a SQLSTATE goes into: a transaction the server gave up
/// on so that another could go on (or that ran past `lock_timeout` or `statement_timeout`)
/// can succeed later; damaged data or indexes never will; the rest is [`Error::Store`].
pub(super) fn fault_of(code: &SqlState) -> StoreFault {
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::QUERY_CANCELED
    {
        StoreFault::Busy
    } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        StoreFault::Damaged
    } else {
        StoreFault::Failed
    }
}

/// One error for many callers (a failed batch): each gets an error of the same kind sharing
/// it.
pub(super) fn share(error: Error) -> impl Fn() -> Error {
    let fault = error.store_fault().unwrap_or(StoreFault::Failed);
    let shared: Arc<dyn std::error::Error + Send + Sync> = match error {
        Error::Store(inner) | Error::StoreBusy(inner) | Error::StoreDamaged(inner) => {
            Arc::from(inner)
        }
        other => Arc::new(PostgresError {
            message: other.to_string(),
            source: None,
        }),
    };
    move || fault.error(Box::new(Arc::clone(&shared)))
}

/// What every error message names: the server and the connect timeout.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) label: Arc<str>,
    pub(super) connect_timeout: Duration,
}

impl Context {
    pub(super) fn new(config: &tokio_postgres::Config, connect_timeout: Duration) -> Self {
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let host = if hosts.is_empty() {
            "localhost".to_owned()
        } else {
            hosts.join(",")
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let database = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres");
        Context {
            label: format!("{host}:{port}/{database}").into(),
            connect_timeout,
        }
    }

    pub(super) fn error(&self, action: &str, error: tokio_postgres::Error) -> Error {
        // The driver's own message is terse ("db error"); the server's is the useful one.
        let detail = match error.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => {
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    text.push_str(": ");
                    text.push_str(&cause.to_string());
                    source = cause.source();
                }
                if let Some(hint) = tls::hint(&error) {
                    text.push_str("; ");
                    text.push_str(hint);
                }
                text
            }
        };
        store_error(
            format!(
                "could not {action} in PostgreSQL `{}`: {detail}",
                self.label
            ),
            Some(error),
        )
    }

    pub(super) fn timed_out(&self) -> Error {
        store_error(
            format!(
                "could not connect to PostgreSQL `{}`: no answer within the connect timeout \
                 ({} ms)",
                self.label,
                self.connect_timeout.as_millis()
            ),
            None,
        )
    }

    pub(super) fn refuse(&self, why: String) -> Error {
        store_error(
            format!(
                "cannot use PostgreSQL `{}` as a checkpoint store: {why}",
                self.label
            ),
            None,
        )
    }

    /// Refuses tables that are not the store's own as it wrote them: [`Error::StoreDamaged`].
    pub(super) fn refuse_damaged(&self, why: String) -> Error {
        StoreFault::Damaged.error(Box::new(PostgresError {
            message: format!(
                "cannot use PostgreSQL `{}` as a checkpoint store: {why}",
                self.label
            ),
            source: None,
        }))
    }
}

pub(super) fn corrupt(session: &str, seq: u64, reason: String) -> Error {
    Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SQLSTATE the store maps, and a few it leaves to `Error::Store`.
    #[test]
    fn sqlstates_map_to_store_kinds() {
        for (code, fault) in [
            ("40001", StoreFault::Busy),    // serialization_failure
            ("40P01", StoreFault::Busy),    // deadlock_detected
            ("55P03", StoreFault::Busy),    // lock_not_available (lock_timeout)
            ("57014", StoreFault::Busy),    // query_canceled (statement_timeout)
            ("XX001", StoreFault::Damaged), // data_corrupted
            ("XX002", StoreFault::Damaged), // index_corrupted
            ("08006", StoreFault::Failed),  // connection_failure
            ("57P01", StoreFault::Failed),  // admin_shutdown
            ("53100", StoreFault::Failed),  // disk_full
            ("42P01", StoreFault::Failed),  // undefined_table
            ("23505", StoreFault::Failed),  // unique_violation
        ] {
            assert_eq!(fault_of(&SqlState::from_code(code)), fault, "{code}");
        }
    }

    /// An error shared by a failed batch keeps its kind for every caller.
    #[test]
    fn a_shared_error_keeps_its_kind() {
        let busy = StoreFault::Busy.error(Box::new(PostgresError {
            message: "could not append: lock timeout".to_owned(),
            source: None,
        }));
        let shared = share(busy);
        for _ in 0..2 {
            let e = shared();
            assert!(matches!(e, Error::StoreBusy(_)), "{e:?}");
            let source = e.store_source().unwrap().to_string();
            assert_eq!(source, "could not append: lock timeout");
        }
        let other = share(Error::SessionNotFound("s".to_owned()))();
        assert!(matches!(other, Error::Store(_)), "{other:?}");
    }
}
