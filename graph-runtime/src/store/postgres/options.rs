//! [`PostgresOptions`]: how a [`PostgresStore`] connects, pools and names its schema.

use std::time::Duration;

use super::PostgresStore;
#[cfg(feature = "postgres-tls")]
use super::tls::Roots;
use crate::error::Result;

pub(super) const DEFAULT_SCHEMA: &str = "graph_runtime";
const DEFAULT_POOL_SIZE: usize = 16;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for connecting a [`PostgresStore`], in the style of [`std::fs::OpenOptions`].
///
/// ```no_run
/// use std::time::Duration;
/// use graph_runtime::PostgresOptions;
///
/// # async fn run() -> graph_runtime::Result<()> {
/// let store = PostgresOptions::new()
///     .pool_size(32)                            // connections to the server, at most
///     .schema("orders")                         // tables live in schema `orders`
///     .connect_timeout(Duration::from_secs(3))  // a server that does not answer: Error::Store
///     .connect("host=db user=app dbname=app")
///     .await?;
/// # drop(store);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    pub(super) pool_size: usize,
    pub(super) schema: String,
    pub(super) connect_timeout: Duration,
    pub(super) batch_appends: bool,
    /// The roots a TLS server's certificate must chain to; empty: the platform's.
    #[cfg(feature = "postgres-tls")]
    pub(super) tls_roots: Vec<Roots>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: DEFAULT_POOL_SIZE,
            schema: DEFAULT_SCHEMA.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            batch_appends: true,
            #[cfg(feature = "postgres-tls")]
            tls_roots: Vec::new(),
        }
    }
}

impl PostgresOptions {
    /// The defaults: a pool of 16 connections, schema `graph_runtime`, a connect timeout of
    /// 10 seconds, appends batched.
    ///
    /// ```
    /// use graph_runtime::PostgresOptions;
    /// assert_eq!(PostgresOptions::new(), PostgresOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The most connections the store opens to the server (at least 1). Callers beyond that
    /// wait for a free connection: a small pool slows a busy process down, it never fails it.
    ///
    /// ```
    /// use graph_runtime::PostgresOptions;
    /// let options = PostgresOptions::new().pool_size(4);
    /// # drop(options);
    /// ```
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// The PostgreSQL schema that holds the store's tables (created if missing), so that
    /// several stores, or a store and the application's own tables, share one database.
    /// Any name works (it is quoted); PostgreSQL allows at most 63 bytes.
    ///
    /// ```
    /// use graph_runtime::PostgresOptions;
    /// let options = PostgresOptions::new().schema("checkout_workflows");
    /// # drop(options);
    /// ```
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How long opening one connection (TCP or socket connect, then the PostgreSQL handshake)
    /// may take before it fails with [`Error::Store`](crate::Error::Store), rather than hang
    /// on a server that does not answer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_runtime::PostgresOptions;
    /// let options = PostgresOptions::new().connect_timeout(Duration::from_secs(2));
    /// # drop(options);
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether appends from concurrent callers share one statement (on by default).
    ///
    /// When on, a background task collects the appends that arrive while the previous batch
    /// is being written and writes them in one statement and one commit, as SQLite's group
    /// commit does; each caller still gets its own result. When off, every append is its own
    /// statement on a pooled connection. Either way an append is one statement.
    ///
    /// ```
    /// use graph_runtime::PostgresOptions;
    /// let options = PostgresOptions::new().batch_appends(false);
    /// # drop(options);
    /// ```
    pub fn batch_appends(mut self, batch: bool) -> Self {
        self.batch_appends = batch;
        self
    }

    /// Trusts the CA certificates in `pem` (PEM text, one or more `-----BEGIN CERTIFICATE-----`
    /// blocks) to sign the server's certificate when the connection uses TLS (feature
    /// `postgres-tls`), instead of the platform's roots. Several calls add up, and add to
    /// [`tls_root_certificates_file`](Self::tls_root_certificates_file).
    ///
    /// The certificates are checked when the store connects: text with no certificate, or
    /// a certificate that does not parse, fails [`connect`](Self::connect) with
    /// [`Error::Store`](crate::Error::Store) before any connection is made.
    ///
    /// Whenever TLS is used (`sslmode=prefer`, the default, against a server with `ssl = on`,
    /// or `sslmode=require`), the server's certificate must chain to one of these roots and
    /// name the host the connection string gives (libpq's `verify-full`).
    ///
    /// ```no_run
    /// use graph_runtime::PostgresOptions;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/graph-runtime/db-ca.pem")?;
    /// let store = PostgresOptions::new()
    ///     .tls_root_certificates(ca)
    ///     .connect("host=db.internal user=app dbname=app sslmode=require")
    ///     .await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "postgres-tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots.push(Roots::Pem(pem.into()));
        self
    }

    /// Trusts the CA certificates in the PEM file at `path`, read when the store connects
    /// (libpq's `sslrootcert`, which the connection string cannot carry here: the driver's
    /// parser does not know it). Otherwise as
    /// [`tls_root_certificates`](Self::tls_root_certificates); a file that cannot be read
    /// fails [`connect`](Self::connect) with [`Error::Store`](crate::Error::Store) naming it.
    ///
    /// ```no_run
    /// use graph_runtime::PostgresOptions;
    /// # async fn run() -> graph_runtime::Result<()> {
    /// let store = PostgresOptions::new()
    ///     .tls_root_certificates_file("/etc/ssl/certs/db-ca.pem")
    ///     .connect("host=db.internal user=app dbname=app sslmode=require")
    ///     .await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "postgres-tls")]
    pub fn tls_root_certificates_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_roots.push(Roots::File(path.into()));
        self
    }

    /// Connects with these options; see [`PostgresStore::connect`].
    ///
    /// ```no_run
    /// use graph_runtime::PostgresOptions;
    /// # async fn run() -> graph_runtime::Result<()> {
    /// let store = PostgresOptions::new().connect("host=/run/postgresql dbname=app").await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(&self, conninfo: &str) -> Result<PostgresStore> {
        PostgresStore::connect_with(conninfo, self.clone()).await
    }
}
