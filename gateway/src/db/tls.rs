//! TLS to the database, with libpq's meaning of `sslmode` and `sslrootcert`
//! (libpq's documentation, "SSL Support", is the reference), over rustls.
//!
//! tokio-postgres itself knows `sslmode` disable, prefer and require and
//! leaves checking the server's certificate to the connector. So
//! [`Target::parse`] takes `sslmode` and `sslrootcert` out of the URL, hands
//! the rest to tokio-postgres, and builds one connector that checks what
//! libpq would check:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it | chain checked only if a root certificate file exists |
//! | `require` | always | as `prefer` |
//! | `verify-ca` | always | chain to a root in the root certificate file |
//! | `verify-full` | always | chain, and the host name or address is in its subjectAltName |
//!
//! The root certificate file is `sslrootcert` (PEM), by default
//! `~/.postgresql/root.crt`; `sslrootcert=system` takes the system's trusted
//! roots and then allows only `verify-full` (the default with it), as libpq
//! 16 does. Unlike libpq: `allow` is refused; `prefer` falls back to plain
//! text only when the server declines TLS, not after a failed handshake; a
//! certificate's common name is not matched (the name must be in
//! subjectAltName, as every current CA issues them); the `PGSSL*`
//! environment variables are not read; client certificates (`sslcert`,
//! `sslkey`) are not supported (tokio-postgres refuses them as unknown).
//!
//! The gateway's pool, its LISTEN connection and its cancel requests all use
//! the one [`Tls`] built here, and so do the tools in `tests/`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector every database connection of a [`Target`] uses.
pub type Tls = MakeRustlsConnect;
/// A connection made with [`Tls`] (drive it, or poll it for notifications).
pub type Connection = tokio_postgres::Connection<Socket, <Tls as MakeTlsConnect<Socket>>::Stream>;

/// libpq's `sslmode`, less `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, TlsError> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(TlsError::Mode(other.to_owned())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("bad database URL: {0}")]
    Url(String),
    #[error("sslmode \"{0}\" is not supported (use disable, prefer, require, verify-ca or verify-full)")]
    Mode(String),
    #[error(
        "root certificate file \"{0}\" does not exist: provide it (sslrootcert=FILE), use the system's \
         trusted roots with sslrootcert=system, or choose an sslmode that does not verify the server \
         certificate"
    )]
    NoRootCert(String),
    #[error("root certificate file \"{path}\": {reason}")]
    RootCert { path: String, reason: String },
    #[error("weak sslmode \"{0}\" may not be used with sslrootcert=system (use \"verify-full\")")]
    WeakWithSystemRoots(&'static str),
    #[error("sslrootcert=system: no trusted roots found in the system's certificate store")]
    NoSystemRoots,
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS set-up: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// A database to connect to: tokio-postgres' settings and the connector.
#[derive(Clone)]
pub struct Target {
    pub config: Config,
    pub tls: Tls,
    pub mode: SslMode,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("config", &self.config)
            .field("mode", &self.mode)
            .finish()
    }
}

impl Target {
    /// Reads a `postgres://` URL or a `key=value` connection string. The
    /// default root certificate file is looked for under `$HOME`.
    pub fn parse(url: &str) -> Result<Target, TlsError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Target::parse_with_home(url, home.as_deref())
    }

    /// [`Target::parse`] with `~` given (tests).
    pub fn parse_with_home(url: &str, home: Option<&Path>) -> Result<Target, TlsError> {
        let (rest, params) = split_ssl_params(url)?;
        let mut config = Config::from_str(&rest).map_err(|e| TlsError::Url(e.to_string()))?;
        let system_roots = params.root_cert.as_deref() == Some("system");
        let mode = match params.mode.as_deref() {
            Some(m) => SslMode::parse(m)?,
            None if system_roots => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let check = Check::for_mode(mode, params.root_cert.as_deref(), home)?;
        let verifier = check.verifier(&provider)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Target {
            config,
            tls: MakeRustlsConnect::new(client),
            mode,
        })
    }

    pub async fn connect(&self) -> Result<(Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

/// Connects to `url` as the gateway would (for tools and tests).
pub async fn connect(url: &str) -> Result<(Client, Connection), ConnectError> {
    let target = Target::parse(url)?;
    Ok(target.connect().await?)
}

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// What is checked of the server's certificate.
enum Check {
    /// Nothing: encrypted, but the server is not authenticated.
    Nothing,
    /// The chain leads to one of these roots; any name.
    Chain(RootCertStore),
    /// The chain, and the name the client connected to.
    Full(RootCertStore),
}

impl Check {
    fn for_mode(mode: SslMode, root_cert: Option<&str>, home: Option<&Path>) -> Result<Check, TlsError> {
        if mode == SslMode::Disable {
            return Ok(Check::Nothing);
        }
        if root_cert == Some("system") {
            if mode != SslMode::VerifyFull {
                return Err(TlsError::WeakWithSystemRoots(mode.name()));
            }
            return Ok(Check::Full(system_roots()?));
        }
        let path = match root_cert {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => home.map(|h| h.join(".postgresql").join("root.crt")),
        };
        let roots = match &path {
            Some(p) if std::fs::metadata(p).is_ok() => Some(load_roots(p)?),
            _ => None,
        };
        match (mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => Ok(Check::Full(roots)),
            (_, Some(roots)) => Ok(Check::Chain(roots)),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Err(TlsError::NoRootCert(
                path.map_or_else(|| "~/.postgresql/root.crt".to_owned(), |p| p.display().to_string()),
            )),
            (_, None) => Ok(Check::Nothing),
        }
    }

    fn verifier(self, provider: &Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
        let algorithms = provider.signature_verification_algorithms;
        Ok(match self {
            Check::Full(roots) => {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?
            }
            Check::Chain(roots) => Arc::new(Lenient {
                roots: Some(roots),
                algorithms,
            }),
            Check::Nothing => Arc::new(Lenient {
                roots: None,
                algorithms,
            }),
        })
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("holds no PEM certificate".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("sslrootcert=system: {e}");
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

/// The checks of `verify-ca` (with `roots`), or none at all (`prefer` and
/// `require` without a root certificate file). Either way the handshake's
/// signature is checked against the certificate the server presented.
#[derive(Debug)]
struct Lenient {
    roots: Option<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `sslmode` and `sslrootcert`, as found in a connection string.
#[derive(Debug, Default, PartialEq, Eq)]
struct SslParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

impl SslParams {
    /// Takes `key` if it is one of ours.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.mode = Some(value),
            "sslrootcert" => self.root_cert = Some(value),
            _ => return false,
        }
        true
    }
}

/// The connection string without `sslmode` and `sslrootcert`, and their values.
fn split_ssl_params(url: &str) -> Result<(String, SslParams), TlsError> {
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return split_url(scheme, rest);
        }
    }
    split_key_values(url)
}

/// URL form. As tokio-postgres reads it: credentials up to the first `@`,
/// then host and path up to the first `?`, then `&`-separated parameters.
fn split_url(scheme: &str, rest: &str) -> Result<(String, SslParams), TlsError> {
    let (credentials, location) = match rest.split_once('@') {
        Some((c, l)) => (Some(c), l),
        None => (None, rest),
    };
    let mut params = SslParams::default();
    let Some((path, query)) = location.split_once('?') else {
        return Ok((format!("{scheme}{rest}"), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let taken = match pair.split_once('=') {
            Some((key, value)) => params.take(&decode(key)?, decode(value)?),
            None => false,
        };
        if !taken {
            kept.push(pair);
        }
    }
    let mut out = scheme.to_owned();
    if let Some(c) = credentials {
        out.push_str(c);
        out.push('@');
    }
    out.push_str(path);
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok((out, params))
}

fn decode(s: &str) -> Result<String, TlsError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|e| TlsError::Url(format!("{s:?} is not UTF-8 when percent-decoded: {e}")))
}

/// `key=value` form: values plain or in single quotes, `\` escaping the
/// next character. The other parameters are written back quoted.
fn split_key_values(s: &str) -> Result<(String, SslParams), TlsError> {
    let mut params = SslParams::default();
    let mut kept = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(TlsError::Url(format!("expected `=` after `{key}`")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match chars.peek().copied() {
                None if quoted => return Err(TlsError::Url(format!("unterminated quoted value of `{key}`"))),
                None => break,
                Some('\'') if quoted => {
                    chars.next();
                    break;
                }
                Some(c) if c.is_whitespace() && !quoted => break,
                Some('\\') => {
                    chars.next();
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                }
                Some(c) => {
                    chars.next();
                    value.push(c);
                }
            }
        }
        if !params.take(&key, value.clone()) {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{escaped}'"));
        }
    }
    Ok((kept.join(" "), params))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
