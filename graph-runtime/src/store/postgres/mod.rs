//! [`PostgresStore`]: checkpoints in PostgreSQL, shared by many processes on many machines.
//!
//! See [`PostgresStore`] for how it is built: the schema and the statements.

mod error;
mod listener;
mod options;
mod reader;
mod schema;
mod sql;
mod tls;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use self::error::{Context, corrupt, store_error};
use self::listener::Listener;
pub use self::options::PostgresOptions;
use self::reader::column;
use self::sql::Sql;
use self::writer::Request;
use super::lease::{MAX_WAKE_DELAY, micros};
use super::{
    Append, Checkpoint, CheckpointMeta, Claim, GraphVersion, Lease, SessionFilter, SessionPage,
    SessionRecord, Store, VersionCount, unix_micros,
};
use crate::error::{Error, Result};

/// Keeps checkpoints in a PostgreSQL database, for workers on many machines (feature
/// `postgres`).
///
/// Clones share one connection pool and one append batcher. Several stores (in one process
/// or many) may use the same database: every append is a compare-and-swap in one statement.
/// Connecting creates the tables on a new database and checks their version on an existing
/// one; a database set up by a newer release is refused with [`Error::Store`], tables of a
/// schema version no release wrote with [`Error::StoreDamaged`].
///
/// A transaction the server gives up on so that another can go on (a serialization failure,
/// a deadlock, `lock_timeout`, `statement_timeout`) fails with [`Error::StoreBusy`]: retrying
/// later can succeed. Damaged data or indexes (SQLSTATE `XX001`, `XX002`) fail with
/// [`Error::StoreDamaged`]; a lost or refused connection with [`Error::Store`].
///
/// # TLS
///
/// With the feature `postgres-tls` (rustls, not built by default: it adds a TLS stack),
/// `sslmode` in the connection string is honoured by every connection of the store, the
/// pool's and the `LISTEN` one: `disable` never uses TLS; `prefer` (the default) uses it when
/// the server offers it; `require` uses it or fails. Whenever TLS is used, the server's
/// certificate must chain to a trusted root and name the host the connection string gives
/// (libpq's `verify-full`; unlike libpq, `prefer` and `require` never accept an unverified
/// certificate, and a refused certificate is an error, never a plaintext retry). The roots are
/// those given to [`PostgresOptions::tls_root_certificates`] or
/// [`tls_root_certificates_file`](PostgresOptions::tls_root_certificates_file), else the
/// platform's. A server offers no TLS on its unix socket: there `prefer` connects in
/// plaintext and `require` fails (libpq would ignore `sslmode` on a socket).
///
/// Without the feature, `sslmode=require` fails [`connect`](Self::connect) with
/// [`Error::Store`] saying to enable it, and `prefer` connects in plaintext (as libpq built
/// without SSL does).
///
/// ```no_run
/// # #[cfg(feature = "postgres-tls")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use graph_runtime::PostgresOptions;
///
/// let store = PostgresOptions::new()
///     .tls_root_certificates(std::fs::read("/etc/graph-runtime/db-ca.pem")?)
///     .connect("host=db.internal user=app dbname=app sslmode=require")
///     .await?;
/// # drop(store);
/// # Ok(())
/// # }
/// ```
///
///
/// ```no_run
/// use graph_runtime::prelude::*;
/// use graph_runtime::PostgresStore;
/// use graph_runtime::store::Store as _;
/// # #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, StateSchema)]
/// # pub struct Order { total_cents: u64 }
/// # #[workflow(state = Order)]
/// # pub mod checkout {
/// #     use super::*;
/// #     edge!(START -> validate);
/// #     edge!(validate -> END);
/// #     #[node]
/// #     async fn validate(order: &mut Order) { let _ = order; }
/// # }
///
/// # async fn run() -> graph_runtime::Result<()> {
/// let store = PostgresStore::connect("host=localhost user=app dbname=app").await?;
/// let runner = Runner::new(checkout::Workflow, store.clone());
/// runner.start("order-42", Order { total_cents: 25_00 }).await?;
/// println!("sessions: {:?}", store.sessions(&Default::default()).await?);
/// # Ok(())
/// # }
/// # fn main() {}
/// ```
///
/// # How it is built, and why
///
/// - **A pool** of connections (`deadpool-postgres` over `tokio-postgres`, TLS through
///   `tokio-postgres-rustls` with the feature `postgres-tls`). A caller
///   beyond the pool's size waits for a connection, it does not fail. A connection the server
///   closed (a restart, a failover) is dropped by the pool and replaced by a new one; a read
///   that finds its connection closed runs again once on a fresh one, so the store outlives a
///   server restart without being rebuilt.
/// - **Every call is one statement**, run in PostgreSQL's implicit transaction, so a caller
///   that drops its future cannot leave a transaction (and its locks) behind. An append that
///   was sent either commits as a whole or not at all. The one exception is
///   [`delete`](Store::delete), which takes a session's whole tree of children: a transaction
///   of a few statements (lock the session, find and lock its children level by level, delete
///   them all), rolled back if its caller drops it.
/// - **Compare-and-swap append.** Each session has one row in `sessions` holding its latest
///   sequence number (`head_seq`). An append locks that row (`SELECT … FOR UPDATE`, which sees
///   the newest committed version), compares `head_seq` with the expected one, inserts the
///   checkpoint, moves `head_seq` on and applies retention — in one statement. A new session
///   is an `INSERT … ON CONFLICT DO NOTHING` on the session's unique name. The primary key
///   `(session_id, seq)` of `checkpoints` is the backstop: two checkpoints with one sequence
///   number can never both be stored.
/// - **Group commit.** Appends are handed to a background task, which writes every append
///   queued while the previous statement ran in one statement: the inputs travel as arrays
///   (`unnest`), and the statement answers one row per append, so one caller's conflict does
///   not fail the others (see [`PostgresOptions::batch_appends`]). Appends to one session
///   never share a statement: they go into consecutive ones, in arrival order.
/// - **Reads** (`latest`, `get`, `chain`, `list`, `sessions`, the graph versions and the
///   versions in use) are single `SELECT`s, each on one consistent snapshot.
///   [`chain`](Store::chain) is one range query; [`versions_in_use`](Store::versions_in_use)
///   one `GROUP BY` over `sessions`, never a checkpoint.
/// - **Graph versions** ([`Store::record_graph`]): one `INSERT … ON CONFLICT DO NOTHING
///   RETURNING`, so of many workers recording one version at once exactly one is told it was
///   new. The time kept is the one the version carries, in microseconds, as a checkpoint's
///   `created_at`. An append records the session's state schema (see
///   [`Append::state_schema`]) in the statement that writes it, as it does its workflow.
/// - **Schema.** The store creates its tables in its own PostgreSQL schema (`graph_runtime` by
///   default, see [`PostgresOptions::schema`]) on first connect, under an advisory lock so
///   that processes connecting at once do not race, and records the schema version in
///   `graph_runtime_meta`; it migrates version 1 (no leases), version 2 (no graph
///   versions or state schemas) and version 3 (no session records or audit records) to
///   version 4, filling each session's record in from its checkpoints, and refuses a schema
///   of another version, naming both.
/// - **Session records** ([`Store::sessions`], [`Store::session`]): the statement that
///   appends a checkpoint also writes its status, cursor and time into the session's row (an
///   update that changes no indexed column stays a HOT update: the status index is touched
///   only when the status changes) and replaces the session's rows of `session_waits` (for a
///   session running from step to step, one index probe that finds nothing). A page is one
///   statement built for the conditions the filter sets, driven by an index that yields the
///   sessions in the order of their names: `session_waits_by_node` for a waiting node,
///   `sessions_by_status` for a status, `sessions_by_name` otherwise. Those indexes hold the
///   first 512 bytes of a name (an id may be longer than a B-tree entry): ordering by that
///   prefix and then by the name is ordering by the name.
/// - **Leases** (see [`Store::claim`]) live in the `sessions` row. Every time is PostgreSQL's
///   `now()`, never the client's clock. A claim is one statement (`FOR UPDATE SKIP LOCKED` in
///   a materialized CTE, then an `UPDATE` that raises the epochs); a fenced append checks the
///   epoch on the row it locks for the compare-and-swap, in the same statement, so fencing
///   costs no round trip. A trigger sends a notification on a channel of the store's schema
///   when a session becomes runnable without a lease (or is released while runnable), with
///   the milliseconds until it is due; [`Store::wait_for_work`] listens to it on a
///   connection of its own, outside the pool, opened on its first call.
///
/// ```sql
/// CREATE TABLE graph_runtime_meta (singleton boolean PRIMARY KEY, schema_version integer NOT NULL);
/// CREATE TABLE sessions (
///     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
///     name bytea NOT NULL,            -- the session id's UTF-8 (it may hold NUL)
///     name_key bytea NOT NULL GENERATED ALWAYS AS (sha256(name)) STORED UNIQUE,
///     head_seq bigint NOT NULL,       -- the latest checkpoint's seq: the compare-and-swap
///     workflow text,                  -- version 2: the lease protocol
///     graph_hash bigint,              -- the u64 hash's bits as a signed integer
///     wake_at timestamptz,            -- runnable once wake_at <= now(); NULL: not runnable
///     lease_owner text,
///     lease_epoch bigint NOT NULL DEFAULT 0,  -- +1 on every claim; fences appends
///     lease_expires_at timestamptz,
///     state_schema bigint,            -- version 3: the u64 fingerprint's bits
///     status smallint,                -- version 4: the latest checkpoint's status,
///     wait_node text,                 --   waiting node, cursor and time,
///     node text,
///     created_at_us bigint,           --   and the first checkpoint's time
///     updated_at_us bigint
/// );
/// CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at)
///     WHERE wake_at IS NOT NULL;
/// CREATE INDEX sessions_by_name ON sessions (substring(name FROM 1 FOR 512));   -- version 4
/// CREATE INDEX sessions_by_status ON sessions (status, substring(name FROM 1 FOR 512));
/// CREATE TABLE session_waits (        -- version 4: every node a waiting session waits at
///     session_id bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
///     node text NOT NULL,
///     name bytea NOT NULL             -- sessions.name, so a node's rows come in id order
/// );
/// CREATE INDEX session_waits_by_session ON session_waits (session_id);
/// CREATE INDEX session_waits_by_node ON session_waits
///     (left(node, 200), substring(name FROM 1 FOR 512));
/// CREATE TABLE graph_versions (       -- version 3
///     workflow text NOT NULL,
///     graph_hash bigint NOT NULL,     -- the u64 hash's bits as a signed integer
///     description text NOT NULL,      -- the canonical description, kept as first recorded
///     recorded_at_us bigint NOT NULL, -- microseconds since the Unix epoch
///     PRIMARY KEY (workflow, graph_hash)
/// );
/// CREATE TABLE checkpoints (
///     session_id bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
///     seq bigint NOT NULL,
///     node text NOT NULL,             -- the cursor
///     status smallint NOT NULL,       -- 0 running, 1 waiting (at wait_node), 2 completed,
///     wait_node text,                 -- 3 failed, 4 cancelled
///     created_at_us bigint NOT NULL,  -- microseconds since the Unix epoch
///     depends_on bigint,              -- the full checkpoint a delta needs
///     bytes bytea NOT NULL,           -- the encoded envelope
///     audit bytea,                    -- version 4: `Audit::encode`, when the append had one
///     failure bytea,                  -- version 4: the last failure of a run from it
///     PRIMARY KEY (session_id, seq)
/// );
/// ```
///
/// Session ids are unique through the SHA-256 of their bytes because a B-tree entry cannot
/// hold an id of several kilobytes; lookups compare the name too.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
    /// The batcher's queue; `None` when appends are not batched.
    appends: Option<mpsc::Sender<Request>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("server", &self.shared.context.label)
            .field("schema", &self.shared.schema)
            .finish_non_exhaustive()
    }
}

/// What every clone shares.
struct Shared {
    pool: Pool,
    sql: Sql,
    schema: String,
    context: Context,
    /// Wake-ups for [`Store::wait_for_work`], fed by the listener.
    wake: Arc<listener::Wake>,
    /// The `LISTEN` connection, opened by the first `wait_for_work`.
    listener: tokio::sync::Mutex<Listener>,
}

impl PostgresStore {
    /// Connects with the default [`PostgresOptions`] to the server `conninfo` names, in
    /// libpq's `key=value` form (`host=db user=app dbname=app`, `host=/run/postgresql` for a
    /// unix socket) or as a `postgresql://` URL, and creates or checks the store's tables.
    ///
    /// Fails with [`Error::Store`] if `conninfo` cannot be parsed, asks for TLS
    /// (`sslmode=require`) in a build without the feature `postgres-tls`, the server cannot be
    /// reached within the connect timeout, refuses the login or the TLS handshake (see
    /// [TLS](PostgresStore#tls)), or holds tables of a newer schema version; with [`Error::StoreDamaged`] if it holds tables of a schema version no
    /// release wrote.
    ///
    /// ```no_run
    /// use graph_runtime::PostgresStore;
    /// # async fn run() -> graph_runtime::Result<()> {
    /// let store = PostgresStore::connect("postgresql://app@db/app").await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(conninfo: &str) -> Result<PostgresStore> {
        Self::connect_with(conninfo, PostgresOptions::default()).await
    }

    // `Tls` is `NoTls` (a `Copy` type) without the feature `postgres-tls`, rustls's connector
    // (not `Copy`) with it.
    #[cfg_attr(not(feature = "postgres-tls"), allow(clippy::clone_on_copy))]
    async fn connect_with(conninfo: &str, options: PostgresOptions) -> Result<PostgresStore> {
        let mut config: tokio_postgres::Config = conninfo.parse().map_err(|e| {
            store_error(
                format!("cannot connect to PostgreSQL: the connection string is invalid: {e}"),
                Some(e),
            )
        })?;
        let context = Context::new(&config, options.connect_timeout);
        if options.schema.is_empty() || options.schema.len() > 63 || options.schema.contains('\0') {
            return Err(context.refuse(format!(
                "schema name {:?} is not a PostgreSQL identifier (1 to 63 bytes, no NUL)",
                options.schema
            )));
        }
        // Before any connection: `sslmode=require` without TLS support is refused here, and
        // roots that do not parse are reported now.
        let tls = tls::connector(config.get_ssl_mode(), &options, &context)?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("graph-runtime");
        }

        // The schema is prepared on a connection of its own, inside one transaction.
        let connecting = tokio::time::timeout(options.connect_timeout, config.connect(tls.clone()));
        let (mut client, connection) = match connecting.await {
            Ok(connected) => connected.map_err(|e| context.error("connect", e))?,
            Err(_) => return Err(context.timed_out()),
        };
        let connection = tokio::spawn(connection);
        let prepared = schema::prepare(&mut client, &options.schema, &context).await;
        drop(client);
        let _ = connection.await;
        prepared?;

        let listener = Listener::new(
            config.clone(),
            tls.clone(),
            schema::channel(&options.schema),
        );
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| context.refuse(format!("could not build the connection pool: {e}")))?;
        let shared = Arc::new(Shared {
            pool,
            sql: Sql::new(&quote(&options.schema)),
            schema: options.schema,
            context,
            wake: Arc::default(),
            listener: tokio::sync::Mutex::new(listener),
        });
        let appends = options
            .batch_appends
            .then(|| writer::spawn(Arc::clone(&shared)));
        Ok(PostgresStore { shared, appends })
    }

    /// The PostgreSQL schema that holds this store's tables.
    ///
    /// ```no_run
    /// # async fn run() -> graph_runtime::Result<()> {
    /// let store = graph_runtime::PostgresStore::connect("dbname=app").await?;
    /// assert_eq!(store.schema(), "graph_runtime");
    /// # Ok(())
    /// # }
    /// ```
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }
}

impl Shared {
    /// Runs one statement on a pooled connection. A connection found closed before the
    /// statement was sent is replaced and the statement sent again; a statement that may have
    /// reached the server is run again only when `idempotent`.
    async fn query(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        idempotent: bool,
    ) -> Result<Vec<Row>> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let client = self.client(action).await?;
            let statement = match client.prepare_cached(sql).await {
                Ok(statement) => statement,
                Err(e) if e.is_closed() && attempts < 3 => continue,
                Err(e) => return Err(self.context.error(action, e)),
            };
            match client.query(&statement, params).await {
                Ok(rows) => return Ok(rows),
                Err(e) if e.is_closed() && idempotent && attempts < 3 => continue,
                Err(e) => return Err(self.context.error(action, e)),
            }
        }
    }

    async fn client(&self, action: &str) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.context.error(action, e),
            PoolError::Timeout(_) => self.context.timed_out(),
            other => self
                .context
                .refuse(format!("could not get a connection to {action}: {other}")),
        })
    }
}

impl Store for PostgresStore {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        writer::validate(&self.shared, session, &append)?;
        match &self.appends {
            Some(appends) => {
                let (reply, answer) = oneshot::channel();
                let request = Request {
                    session: session.to_owned(),
                    append,
                    reply,
                };
                let gone = || {
                    self.shared
                        .context
                        .refuse("its append task stopped".to_owned())
                };
                appends.send(request).await.map_err(|_| gone())?;
                answer.await.map_err(|_| gone())?
            }
            None => loop {
                let outcome = writer::write_single(&self.shared, session, &append).await?;
                if let Some(result) = writer::answer(session, &append, outcome) {
                    return result;
                }
            },
        }
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        reader::latest(&self.shared, session).await
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        reader::get(&self.shared, session, seq).await
    }

    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        reader::chain(&self.shared, session, from, to).await
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        reader::list(&self.shared, session).await
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        let name = session.as_bytes();
        let keep = i64::try_from(keep_last.max(1)).unwrap_or(i64::MAX);
        loop {
            let rows = self
                .shared
                .query(
                    "prune checkpoints",
                    &self.shared.sql.prune,
                    &[&name, &keep],
                    false,
                )
                .await?;
            let row = rows.first().ok_or_else(|| {
                self.shared
                    .context
                    .refuse("prune answered no row".to_owned())
            })?;
            let removed: i64 = row
                .try_get(0)
                .map_err(|e| self.shared.context.error("prune checkpoints", e))?;
            let current: bool = row
                .try_get(1)
                .map_err(|e| self.shared.context.error("prune checkpoints", e))?;
            if current {
                return Ok(u64::try_from(removed).unwrap_or(0));
            }
        }
    }

    /// The session and every session below it, in one transaction (see `Sql::delete_lock`):
    /// the session's row locked first, then its children found level by level, each level
    /// locked before the next is looked for, so that no child is created under a session
    /// the transaction has found (nor missed because it was created meanwhile).
    async fn delete(&self, session: &str) -> Result<bool> {
        let action = "delete a session";
        let failed = |e| self.shared.context.error(action, e);
        let sql = &self.shared.sql;
        let mut client = self.shared.client(action).await?;
        // Dropped before `commit` (an error, or a caller that stops waiting), the
        // transaction is rolled back: nothing is deleted.
        let transaction = client.transaction().await.map_err(failed)?;
        let lock = transaction
            .prepare_cached(&sql.delete_lock)
            .await
            .map_err(failed)?;
        let children = transaction
            .prepare_cached(&sql.delete_children)
            .await
            .map_err(failed)?;
        let mut ids: Vec<i64> = Vec::new();
        for row in transaction
            .query(&lock, &[&session.as_bytes()])
            .await
            .map_err(failed)?
        {
            ids.push(row.try_get(0).map_err(failed)?);
        }
        let existed = !ids.is_empty();
        let mut seen: std::collections::HashSet<i64> = ids.iter().copied().collect();
        let mut level: Vec<Vec<u8>> = vec![session.as_bytes().to_vec()];
        while !level.is_empty() {
            let rows = transaction
                .query(&children, &[&level])
                .await
                .map_err(failed)?;
            level = Vec::new();
            for row in rows {
                let id: i64 = row.try_get(0).map_err(failed)?;
                // `seen` stops at a session met before, should records name each other.
                if seen.insert(id) {
                    ids.push(id);
                    level.push(row.try_get(1).map_err(failed)?);
                }
            }
        }
        if !ids.is_empty() {
            let delete = transaction
                .prepare_cached(&sql.delete)
                .await
                .map_err(failed)?;
            transaction
                .execute(&delete, &[&ids])
                .await
                .map_err(failed)?;
        }
        transaction.commit().await.map_err(failed)?;
        Ok(existed)
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        reader::sessions(&self.shared, filter).await
    }

    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        reader::session(&self.shared, session).await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let pairs = claim.pairs();
        if claim.limit == 0 || pairs.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
        let hashes: Vec<i64> = pairs.iter().map(|&(_, hash)| hash as i64).collect();
        let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
        let ttl = micros(claim.ttl.min(MAX_WAKE_DELAY));
        // Not run again on a lost connection: it may have claimed, and a second run would
        // claim others while the first ones stay held until their leases expire.
        let rows = self
            .shared
            .query(
                "claim sessions",
                &self.shared.sql.claim,
                &[&claim.owner, &names, &hashes, &limit, &ttl],
                false,
            )
            .await?;
        rows.iter()
            .map(|row| {
                let name: Vec<u8> = column(row, 0, "name", "", 0)?;
                let session = String::from_utf8(name).map_err(|e| {
                    let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    corrupt(&lossy, 0, "the session id is not UTF-8".to_owned())
                })?;
                let epoch: i64 = column(row, 1, "lease_epoch", &session, 0)?;
                let workflow: String = column(row, 2, "workflow", &session, 0)?;
                let graph_hash: i64 = column(row, 3, "graph_hash", &session, 0)?;
                let expires_at: SystemTime = column(row, 4, "lease_expires_at", &session, 0)?;
                let epoch = u64::try_from(epoch)
                    .map_err(|_| corrupt(&session, 0, format!("negative lease epoch {epoch}")))?;
                Ok(Lease {
                    session,
                    epoch,
                    owner: claim.owner.clone(),
                    workflow,
                    graph_hash: graph_hash as u64,
                    expires_at,
                })
            })
            .collect()
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let lost = || Error::LeaseLost {
            session: lease.session.clone(),
            epoch: lease.epoch,
        };
        let Ok(epoch) = i64::try_from(lease.epoch) else {
            return Err(lost());
        };
        let name = lease.session.as_bytes();
        let ttl = micros(ttl.min(MAX_WAKE_DELAY));
        // Idempotent: running it twice extends the lease twice, to the same end.
        let rows = self
            .shared
            .query(
                "renew a lease",
                &self.shared.sql.renew,
                &[&name, &lease.owner, &epoch, &ttl],
                true,
            )
            .await?;
        let row = rows.first().ok_or_else(lost)?;
        let expires_at: SystemTime = column(row, 0, "lease_expires_at", &lease.session, 0)?;
        Ok(Lease {
            expires_at,
            ..lease.clone()
        })
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let Ok(epoch) = i64::try_from(lease.epoch) else {
            return Ok(false);
        };
        let name = lease.session.as_bytes();
        let rows = self
            .shared
            .query(
                "release a lease",
                &self.shared.sql.release,
                &[&name, &lease.owner, &epoch],
                false,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        // PostgreSQL's `text` cannot hold NUL.
        if version.workflow.contains('\0') || version.description.contains('\0') {
            return Err(self.shared.context.refuse(format!(
                "the name or description of graph version {:#018x} of workflow `{}` contains \
                 NUL, which PostgreSQL text cannot hold",
                version.graph_hash,
                version.workflow.escape_default()
            )));
        }
        let hash = version.graph_hash as i64;
        let recorded_at = unix_micros(version.recorded_at);
        // Run again on a lost connection: the version is kept either way, but a second run
        // after a first that committed answers `false`.
        let rows = self
            .shared
            .query(
                "record a graph version",
                &self.shared.sql.record_graph,
                &[&version.workflow, &hash, &version.description, &recorded_at],
                true,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn record_failure(
        &self,
        session: &str,
        seq: u64,
        failure: &super::Audit,
    ) -> Result<bool> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(false);
        };
        let (name, failure) = (session.as_bytes(), failure.encode());
        // Run again on a lost connection: writing the same record twice is harmless.
        let rows = self
            .shared
            .query(
                "record a failure",
                &self.shared.sql.record_failure,
                &[&name, &seq, &failure],
                true,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(false);
        };
        let name = session.as_bytes();
        // Run again on a lost connection: waking twice is harmless.
        let rows = self
            .shared
            .query(
                "wake a session",
                &self.shared.sql.wake,
                &[&name, &seq],
                true,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        reader::graph_version(&self.shared, workflow, graph_hash).await
    }

    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        reader::graph_versions(&self.shared, workflow).await
    }

    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        reader::versions_in_use(&self.shared).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let started = Instant::now();
        let deadline = started
            .checked_add(timeout.min(MAX_WAKE_DELAY))
            .unwrap_or(started);
        let wake = &self.shared.wake;
        let notified = wake.notify.notified();
        // A listener that was (re)started may have missed notifications: look at once.
        let listening = self
            .shared
            .listener
            .lock()
            .await
            .ensure(wake, &self.shared.context)
            .await;
        match listening {
            Ok(false) => {}
            // Just started listening: what was notified before is missed, so look at once.
            Ok(true) => return,
            // Cannot listen (the server is away): the timeout is the poll.
            Err(_) => {
                tokio::time::sleep_until(deadline.into()).await;
                return;
            }
        }
        let until = match wake.next_timer(Instant::now()) {
            listener::Timer::Due => return,
            listener::Timer::At(at) => at.min(deadline),
            listener::Timer::None => deadline,
        };
        // Biased: a stored wake-up is taken (not left for a later call) even when the
        // timeout has passed too.
        tokio::select! {
            biased;
            () = notified => {}
            () = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

/// A sequence number (or another count) as the `bigint` SQL stores, or `Error::Store`.
fn sql_int(shared: &Shared, session: &str, what: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        shared.context.refuse(format!(
            "{what} {value} of session `{session}` is above {}, the largest integer PostgreSQL \
             stores",
            i64::MAX
        ))
    })
}

/// A double-quoted SQL identifier.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
