//! `PostgresStore` over TLS (feature `postgres-tls`): a throwaway server with `ssl = on` on
//! 127.0.0.1 whose `pg_hba.conf` accepts TCP connections only with TLS (`hostssl`), and a CA
//! and server certificate made with the `openssl` command in a temporary directory.
//!
//! - `sslmode=require` and `prefer` with the CA as root: a workflow round-trips, and the server
//!   says every connection of the store (the pool's and the `LISTEN` one) is encrypted;
//! - a certificate of another CA, or one for another host name: refused, with a hint;
//! - `sslmode=disable`: refused by the server, with its message;
//! - roots that are not PEM, or a file that is not there: `Error::Store`, no connection.
#![cfg(feature = "postgres-tls")]

#[path = "support/postgres.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::Store as _;
use graph_runtime::store::conformance::helpers::session_ids;
use graph_runtime::{Error, PostgresOptions, PostgresStore, Status};
use serde::{Deserialize, Serialize};

/// The TLS server of this test binary and the PEM of the CA that signed its certificate,
/// and of a CA that did not.
struct Tls {
    server: support::Server,
    ca: Vec<u8>,
    other_ca: Vec<u8>,
}

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let dir = dir.path();
        make_ca(dir, "ca");
        make_ca(dir, "other-ca");
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        // Only TLS over TCP; the socket (the harness's own connections) stays open.
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
        let server =
            support::Server::start_tls(&dir.join("server.crt"), &dir.join("server.key"), hba);
        let read = |name: &str| std::fs::read(dir.join(name)).expect("read a certificate");
        Tls {
            server,
            ca: read("ca.crt"),
            other_ca: read("other-ca.crt"),
        }
    })
}

/// A self-signed CA: `{name}.crt` and `{name}.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &format!("/CN=graph-runtime test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("these tests need the `openssl` command (Debian: `apt-get install openssl`)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A new database on the TLS server, and a connection string for it over TCP with `extra`.
async fn database(extra: &str) -> String {
    let tls = tls();
    let socket = tls.server.create_database().await;
    let name = socket.rsplit("dbname=").next().expect("a dbname");
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname={name} {extra}",
        tls.server.tcp_port()
    )
}

#[track_caller]
fn assert_store_error<T: std::fmt::Debug>(result: Result<T, Error>, needles: &[&str]) {
    match result {
        Err(Error::Store(e)) => {
            let message = e.to_string();
            for needle in needles {
                assert!(message.contains(needle), "`{needle}` not in: {message}");
            }
        }
        other => panic!("expected Error::Store, got {other:?}"),
    }
}

/// Bounds a call, so that a hang fails the test instead of stalling it.
async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the call returned (it must not hang)")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub steps: Vec<String>,
}

#[workflow(state = Order)]
pub mod order {
    use super::*;

    edge!(START -> pay);
    edge!(pay -> ship);
    edge!(ship -> END);

    #[node]
    async fn pay(o: &mut Order) {
        o.steps.push("paid".to_owned());
    }

    #[node]
    async fn ship(o: &mut Order) {
        o.steps.push("shipped".to_owned());
    }
}

/// How many backends of `application` the server has, and whether each one uses TLS,
/// asked over the socket (`pg_stat_ssl` is the server's word, not the client's).
async fn encryption_of(application: &str) -> (i64, bool) {
    let (client, connection) =
        tokio_postgres::connect(&tls().server.conninfo("postgres"), tokio_postgres::NoTls)
            .await
            .expect("a connection over the socket");
    let connection = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = $1",
            &[&application],
        )
        .await
        .expect("pg_stat_ssl");
    drop(client);
    let _ = connection.await;
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ca_as_root_a_workflow_round_trips_over_tls() {
    for mode in ["require", "prefer"] {
        let application = format!("tls_round_trip_{mode}");
        let conninfo = database(&format!("sslmode={mode} application_name={application}")).await;
        let store = bounded(
            PostgresOptions::new()
                .tls_root_certificates(tls().ca.clone())
                .connect(&conninfo),
        )
        .await
        .expect("a store over TLS");
        let runner = Runner::new(order::Workflow, store.clone());
        let done = runner
            .start("order-1", Order::default())
            .await
            .expect("the workflow runs")
            .into_state();
        assert_eq!(done.steps, ["paid", "shipped"]);
        let latest = runner
            .state("order-1")
            .await
            .unwrap()
            .expect("a checkpoint");
        assert_eq!(latest.status, Status::Completed);
        // Opens the LISTEN connection too: it must use the same TLS.
        store.wait_for_work(Duration::from_millis(10)).await;

        let (connections, all_encrypted) = encryption_of(&application).await;
        assert!(
            connections >= 2,
            "sslmode={mode}: {connections} connections"
        );
        assert!(
            all_encrypted,
            "sslmode={mode}: a connection is not encrypted"
        );
    }
}

#[tokio::test]
async fn roots_from_a_file_work_like_roots_given_as_pem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &tls().ca).unwrap();
    let conninfo = database("sslmode=require").await;
    let store = bounded(
        PostgresOptions::new()
            .tls_root_certificates_file(&path)
            .connect(&conninfo),
    )
    .await
    .expect("a store over TLS");
    assert!(session_ids(&store).await.is_empty());
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_with_a_hint() {
    let conninfo = database("sslmode=require").await;
    let other_ca = PostgresOptions::new().tls_root_certificates(tls().other_ca.clone());
    let hint = "give the CA that signed it to `PostgresOptions::tls_root_certificates`";
    assert_store_error(
        bounded(other_ca.connect(&conninfo)).await,
        &["invalid peer certificate", hint],
    );
    // The platform's roots (no roots given) do not know the test CA either.
    assert_store_error(
        bounded(PostgresStore::connect(&conninfo)).await,
        &["invalid peer certificate", hint],
    );
    // `prefer` does not fall back to plaintext when the certificate is refused.
    let prefer = conninfo.replace("sslmode=require", "sslmode=prefer");
    assert_store_error(bounded(other_ca.connect(&prefer)).await, &[hint]);
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused() {
    let conninfo = database("sslmode=require").await;
    // The right CA, the right address, but a name the certificate does not hold.
    let renamed = conninfo.replace("host=localhost", "host=db.example.invalid");
    let options = PostgresOptions::new().tls_root_certificates(tls().ca.clone());
    assert_store_error(
        bounded(options.connect(&renamed)).await,
        &["certificate not valid for name \"db.example.invalid\""],
    );
}

#[tokio::test]
async fn sslmode_disable_is_refused_by_a_server_that_requires_tls() {
    let conninfo = database("sslmode=disable").await;
    let options = PostgresOptions::new().tls_root_certificates(tls().ca.clone());
    assert_store_error(
        bounded(options.connect(&conninfo)).await,
        &["no pg_hba.conf entry", "no encryption"],
    );
}

#[tokio::test]
async fn roots_that_are_not_certificates_are_store_errors_before_connecting() {
    // Never contacted: the roots are checked first.
    let conninfo = "host=localhost hostaddr=127.0.0.1 port=1 user=app sslmode=require";
    let garbage = PostgresOptions::new().tls_root_certificates(&b"not a certificate"[..]);
    assert_store_error(
        bounded(garbage.connect(conninfo)).await,
        &["hold no PEM certificate"],
    );
    let damaged = PostgresOptions::new().tls_root_certificates(
        &b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"[..],
    );
    assert_store_error(
        bounded(damaged.connect(conninfo)).await,
        &["not a valid X.509 certificate"],
    );
    let missing = PostgresOptions::new().tls_root_certificates_file("/nonexistent/ca.pem");
    assert_store_error(
        bounded(missing.connect(conninfo)).await,
        &["cannot read the TLS root certificates `/nonexistent/ca.pem`"],
    );
}

#[tokio::test]
async fn over_the_unix_socket_prefer_is_plaintext_and_require_fails() {
    let socket = tls().server.create_database().await;
    let store = bounded(PostgresStore::connect(&format!("{socket} sslmode=prefer")))
        .await
        .expect("prefer over the socket");
    assert!(session_ids(&store).await.is_empty());
    assert_store_error(
        bounded(PostgresStore::connect(&format!("{socket} sslmode=require"))).await,
        &["server does not support TLS"],
    );
}
