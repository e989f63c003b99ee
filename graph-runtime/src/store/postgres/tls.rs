//! TLS for the store's connections (the pool's and the `LISTEN` one): which connector
//! `tokio-postgres` is given, from the connection string's `sslmode` and the roots in
//! [`PostgresOptions`].
//!
//! With the feature `postgres-tls` every connection is made through rustls (the `ring`
//! provider, chosen per store, so nothing depends on a process-wide default provider), and
//! `tokio-postgres` decides from `sslmode` whether to ask the server for TLS. Without it the
//! connector is `NoTls`, and a connection string that requires TLS is refused before any
//! connection is made: never a silent plaintext connection.

use tokio_postgres::config::SslMode;

use super::PostgresOptions;
use super::error::Context;
use crate::error::Result;

/// The connector every connection of a store is made with.
#[cfg(feature = "postgres-tls")]
pub(super) type Tls = tokio_postgres_rustls::MakeRustlsConnect;
/// The connector every connection of a store is made with.
#[cfg(not(feature = "postgres-tls"))]
pub(super) type Tls = tokio_postgres::NoTls;

/// Where trusted root certificates come from ([`PostgresOptions::tls_root_certificates`],
/// [`PostgresOptions::tls_root_certificates_file`]).
#[cfg(feature = "postgres-tls")]
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Roots {
    /// PEM text, as given.
    Pem(Vec<u8>),
    /// A PEM file, read when the store connects.
    File(std::path::PathBuf),
}

#[cfg(feature = "postgres-tls")]
impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Roots::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            Roots::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// The connector for `sslmode` (`disable`: never TLS; `prefer`, the default: TLS when the
/// server offers it; `require`: TLS or no connection).
#[cfg(not(feature = "postgres-tls"))]
pub(super) fn connector(
    mode: SslMode,
    options: &PostgresOptions,
    context: &Context,
) -> Result<Tls> {
    let _ = options;
    match mode {
        // `prefer` without TLS support connects in plaintext, as libpq built without SSL does.
        SslMode::Disable | SslMode::Prefer => Ok(tokio_postgres::NoTls),
        // `require`, or a mode of a newer driver: TLS was asked for, and this build has none.
        _ => Err(context.refuse(
            "the connection string asks for TLS (`sslmode=require`), which this build does not \
             include: enable graph-runtime's `postgres-tls` feature"
                .to_owned(),
        )),
    }
}

/// The connector for `sslmode` (`disable`: never TLS; `prefer`, the default: TLS when the
/// server offers it; `require`: TLS or no connection). Whenever TLS is used, the server's
/// certificate chain and host name are verified against the roots in `options`, else the
/// platform's.
#[cfg(feature = "postgres-tls")]
pub(super) fn connector(
    mode: SslMode,
    options: &PostgresOptions,
    context: &Context,
) -> Result<Tls> {
    use std::sync::Arc;

    let roots = match mode {
        // Never used for a handshake: no need to read any certificate.
        SslMode::Disable => rustls::RootCertStore::empty(),
        _ if options.tls_roots.is_empty() => platform_roots(),
        _ => given_roots(&options.tls_roots, context)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| context.refuse(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The roots the options name, every one of them valid: a typo in a path or a file that is
/// not PEM is an error now, not a handshake failure later.
#[cfg(feature = "postgres-tls")]
fn given_roots(sources: &[Roots], context: &Context) -> Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    for source in sources {
        let (bytes, name) = match source {
            Roots::Pem(pem) => (
                std::borrow::Cow::Borrowed(pem.as_slice()),
                "given".to_owned(),
            ),
            Roots::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    context.refuse(format!(
                        "cannot read the TLS root certificates `{}`: {e}",
                        path.display()
                    ))
                })?;
                (
                    std::borrow::Cow::Owned(bytes),
                    format!("in `{}`", path.display()),
                )
            }
        };
        let mut found = 0_usize;
        for certificate in CertificateDer::pem_slice_iter(&bytes) {
            let certificate = certificate.map_err(|e| {
                context.refuse(format!(
                    "the TLS root certificates {name} are not valid PEM: {e}"
                ))
            })?;
            found += 1;
            roots.add(certificate).map_err(|e| {
                context.refuse(format!(
                    "TLS root certificate {found} {name} is not a valid X.509 certificate: {e}"
                ))
            })?;
        }
        if found == 0 {
            return Err(context.refuse(format!(
                "the TLS root certificates {name} hold no PEM certificate (no \
                 `-----BEGIN CERTIFICATE-----` block)"
            )));
        }
    }
    Ok(roots)
}

/// The platform's trusted roots. Finding none is not an error here: a server without TLS
/// (`sslmode=prefer`) needs none, and a handshake that needs them fails with a hint.
#[cfg(feature = "postgres-tls")]
fn platform_roots() -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        tracing::warn!(
            ignored,
            ?errors,
            "no platform root certificates found: a TLS connection to PostgreSQL will fail \
             unless PostgresOptions::tls_root_certificates names the server's CA"
        );
    }
    roots
}

/// What to do about a connection error, when TLS caused it: the driver says only that the
/// handshake failed, and rustls's reason (an unknown issuer, a name mismatch) does not say
/// which option fixes it.
pub(super) fn hint(error: &tokio_postgres::Error) -> Option<&'static str> {
    #[cfg(feature = "postgres-tls")]
    {
        let mut cause = std::error::Error::source(error);
        while let Some(current) = cause {
            // tokio-rustls wraps rustls's error in an `io::Error`, whose `source()` skips it.
            let inner = current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .map_or(current, |inner| inner as &(dyn std::error::Error + 'static));
            if let Some(rustls::Error::InvalidCertificate(_)) = inner.downcast_ref() {
                return Some(
                    "the server's certificate was not accepted: give the CA that signed it \
                     to `PostgresOptions::tls_root_certificates` (or add it to the \
                     platform's roots), and connect with a host name the certificate names",
                );
            }
            cause = current.source();
        }
        None
    }
    #[cfg(not(feature = "postgres-tls"))]
    {
        let _ = error;
        None
    }
}

#[cfg(all(test, feature = "postgres-tls"))]
mod tests {
    use std::time::Duration;

    use super::*;

    fn context() -> Context {
        let config: tokio_postgres::Config = "host=db dbname=app".parse().expect("a conninfo");
        Context::new(&config, Duration::from_secs(1))
    }

    fn refused(roots: Roots) -> String {
        let options = PostgresOptions {
            tls_roots: vec![roots],
            ..PostgresOptions::default()
        };
        match connector(SslMode::Require, &options, &context()) {
            Err(crate::Error::Store(e)) => e.to_string(),
            Err(other) => panic!("expected Error::Store, got {other:?}"),
            Ok(_) => panic!("bad roots were accepted"),
        }
    }

    #[test]
    fn bad_roots_are_store_errors_that_say_what_is_wrong() {
        let garbage = refused(Roots::Pem(b"not a certificate".to_vec()));
        assert!(garbage.contains("hold no PEM certificate"), "{garbage}");
        let bad_base64 = refused(Roots::Pem(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
        ));
        assert!(bad_base64.contains("not valid PEM"), "{bad_base64}");
        let not_x509 = refused(Roots::Pem(
            b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n".to_vec(),
        ));
        assert!(
            not_x509.contains("not a valid X.509 certificate"),
            "{not_x509}"
        );
        let missing = refused(Roots::File("/nonexistent/graph-runtime-ca.pem".into()));
        assert!(
            missing.contains("cannot read the TLS root certificates"),
            "{missing}"
        );
    }

    #[test]
    fn disable_reads_no_roots() {
        let options = PostgresOptions {
            tls_roots: vec![Roots::File("/nonexistent/graph-runtime-ca.pem".into())],
            ..PostgresOptions::default()
        };
        assert!(connector(SslMode::Disable, &options, &context()).is_ok());
    }
}

#[cfg(all(test, not(feature = "postgres-tls")))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn without_the_feature_require_is_refused_and_prefer_is_plaintext() {
        let config: tokio_postgres::Config = "host=db dbname=app".parse().expect("a conninfo");
        let context = Context::new(&config, Duration::from_secs(1));
        let options = PostgresOptions::default();
        match connector(SslMode::Require, &options, &context) {
            Err(crate::Error::Store(e)) => {
                let message = e.to_string();
                assert!(message.contains("`postgres-tls` feature"), "{message}");
            }
            other => panic!("expected Error::Store, got {other:?}"),
        }
        assert!(connector(SslMode::Prefer, &options, &context).is_ok());
        assert!(connector(SslMode::Disable, &options, &context).is_ok());
    }
}
