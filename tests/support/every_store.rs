//! One scenario on every store: `on_every_store!(a, b, …)` makes, for each `async fn a<S:
//! Store + Clone>(store: S, tag: &str)` of the including file, a test on a `MemoryStore`, one
//! on a SQLite file and one on a database of the throwaway PostgreSQL (the including file
//! declares `mod postgres` from `support/postgres.rs`). `tag` names the scenario and its store,
//! so that counts kept per tag do not mix when the tests run at once.
#![allow(dead_code)] // each test binary uses its own part

use graph_runtime::SqliteStore;

/// A SQLite store on a new temporary file (kept while the directory lives).
pub async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    (store, dir)
}

/// A `PostgresStore` on a new database of the shared throwaway server.
pub async fn pg() -> graph_runtime::PostgresStore {
    let conninfo = super::postgres::database().await;
    graph_runtime::PostgresStore::connect(&conninfo)
        .await
        .unwrap()
}

#[macro_export]
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let tag = concat!("memory-", stringify!($scenario));
                    super::$scenario(graph_runtime::MemoryStore::new(), tag).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (store, _dir) = super::every_store::sqlite().await;
                    let tag = concat!("sqlite-", stringify!($scenario));
                    super::$scenario(store, tag).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let tag = concat!("postgres-", stringify!($scenario));
                    super::$scenario(super::every_store::pg().await, tag).await;
                }
            )*
        }
    };
}
