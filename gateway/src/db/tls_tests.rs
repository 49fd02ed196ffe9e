use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;
use tokio_postgres::config::SslMode as PgSslMode;

use super::*;

/// A directory of this test's own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("gateway-tls-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        Dir(path)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{parent:?}: {e}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        Ca(CertifiedIssuer::self_signed(params, key).unwrap_or_else(|e| panic!("{e}")))
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    fn store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.0.der().clone()).unwrap_or_else(|e| panic!("{e}"));
        roots
    }

    /// A server certificate for `names` (host names or addresses).
    fn server(&self, names: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).unwrap_or_else(|e| panic!("{e}"));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        params
            .signed_by(&key, &self.0)
            .unwrap_or_else(|e| panic!("{e}"))
            .der()
            .clone()
    }
}

fn target(url: &str, home: Option<&Path>) -> Target {
    Target::parse_with_home(url, home).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn error(url: &str, home: Option<&Path>) -> TlsError {
    match Target::parse_with_home(url, home) {
        Ok(t) => panic!("{url}: parsed as {t:?}"),
        Err(e) => e,
    }
}

fn check(cert: &CertificateDer<'_>, host: &str, check: Check) -> Result<ServerCertVerified, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = check.verifier(&provider).unwrap_or_else(|e| panic!("{e}"));
    let name = ServerName::try_from(host.to_owned()).unwrap_or_else(|e| panic!("{e}"));
    verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
}

#[test]
fn ssl_parameters_are_taken_out_of_urls() {
    let (rest, p) = split_ssl_params(
        "postgres://u:p%3Fw@db.example:5433/relay?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20file.pem",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rest, "postgres://u:p%3Fw@db.example:5433/relay?application_name=x");
    assert_eq!(p.mode.as_deref(), Some("verify-full"));
    assert_eq!(p.root_cert.as_deref(), Some("/tmp/ca file.pem"));

    let (rest, p) = split_ssl_params("postgresql://h/db?sslmode=require").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rest, "postgresql://h/db");
    assert_eq!(p.mode.as_deref(), Some("require"));

    let (rest, p) = split_ssl_params("postgres://u@h/db").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rest, "postgres://u@h/db");
    assert_eq!(p, SslParams::default());
}

#[test]
fn ssl_parameters_are_taken_out_of_key_value_strings() {
    let (rest, p) = split_ssl_params(r"host=h  user = 'a b\'c' sslmode=verify-ca sslrootcert='/t/c a.pem' dbname=x")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.mode.as_deref(), Some("verify-ca"));
    assert_eq!(p.root_cert.as_deref(), Some("/t/c a.pem"));
    let config = Config::from_str(&rest).unwrap_or_else(|e| panic!("{rest}: {e}"));
    assert_eq!(config.get_user(), Some("a b'c"));
    assert_eq!(config.get_dbname(), Some("x"));
    assert!(matches!(split_ssl_params("host='h"), Err(TlsError::Url(_))));
    assert!(matches!(split_ssl_params("host"), Err(TlsError::Url(_))));
}

#[test]
fn modes_map_to_what_tokio_postgres_negotiates() {
    let dir = Dir::new("modes");
    let ca = dir.write("ca.pem", &Ca::new("test CA").pem());
    let cases = [
        ("", PgSslMode::Prefer, SslMode::Prefer),
        ("?sslmode=disable", PgSslMode::Disable, SslMode::Disable),
        ("?sslmode=prefer", PgSslMode::Prefer, SslMode::Prefer),
        ("?sslmode=require", PgSslMode::Require, SslMode::Require),
        (
            "?sslmode=verify-ca&sslrootcert=CA",
            PgSslMode::Require,
            SslMode::VerifyCa,
        ),
        (
            "?sslmode=verify-full&sslrootcert=CA",
            PgSslMode::Require,
            SslMode::VerifyFull,
        ),
    ];
    for (query, negotiated, mode) in cases {
        let url = format!("postgres://u@127.0.0.1/db{}", query.replace("CA", &ca));
        let t = target(&url, None);
        assert_eq!(t.config.get_ssl_mode(), negotiated, "{url}");
        assert_eq!(t.mode, mode, "{url}");
    }
}

#[test]
fn refusals_say_what_to_do() {
    let nowhere = Dir::new("refusals");
    let home = Some(nowhere.0.as_path());
    let e = error("postgres://h/db?sslmode=verify-full", home).to_string();
    assert!(e.contains(".postgresql/root.crt\" does not exist"), "{e}");
    assert!(e.contains("sslrootcert=system"), "{e}");
    let e = error("postgres://h/db?sslmode=verify-ca&sslrootcert=/no/such/ca.pem", home).to_string();
    assert!(e.contains("\"/no/such/ca.pem\" does not exist"), "{e}");
    assert!(matches!(
        error("postgres://h/db?sslmode=require&sslrootcert=system", home),
        TlsError::WeakWithSystemRoots("require")
    ));
    assert!(matches!(error("postgres://h/db?sslmode=allow", home), TlsError::Mode(m) if m == "allow"));
    assert!(matches!(
        error("postgres://h/db?sslmode=bogus", home),
        TlsError::Mode(_)
    ));
    let junk = nowhere.write("junk.pem", "not a certificate\n");
    let e = error(&format!("postgres://h/db?sslmode=verify-ca&sslrootcert={junk}"), home);
    assert!(
        matches!(&e, TlsError::RootCert { reason, .. } if reason.contains("no PEM certificate")),
        "{e}"
    );
    assert!(matches!(error("postgres://h/db?nonsense=1", home), TlsError::Url(_)));
    // With the system's roots, verify-full is the default (when there are any).
    match Target::parse_with_home("postgres://h/db?sslrootcert=system", home) {
        Ok(t) => assert_eq!(t.mode, SslMode::VerifyFull),
        Err(e) => assert!(matches!(e, TlsError::NoSystemRoots), "{e}"),
    }
}

#[test]
fn the_default_root_file_makes_prefer_and_require_check_the_chain() {
    let home = Dir::new("home");
    assert!(matches!(
        Check::for_mode(SslMode::Require, None, Some(&home.0)),
        Ok(Check::Nothing)
    ));
    home.write(".postgresql/root.crt", &Ca::new("test CA").pem());
    for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyCa] {
        assert!(
            matches!(Check::for_mode(mode, None, Some(&home.0)), Ok(Check::Chain(_))),
            "{mode:?}"
        );
    }
    assert!(matches!(
        Check::for_mode(SslMode::VerifyFull, None, Some(&home.0)),
        Ok(Check::Full(_))
    ));
    assert!(matches!(
        Check::for_mode(SslMode::Disable, None, Some(&home.0)),
        Ok(Check::Nothing)
    ));
}

#[test]
fn verify_ca_checks_the_chain_and_verify_full_the_name_too() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    // Same name as the real one, another key: its signature does not verify.
    let impostor = Ca::new("test CA");
    let cert = ca.server(&["db.example", "127.0.0.1"]);
    assert!(check(&cert, "elsewhere.example", Check::Chain(ca.store())).is_ok());
    assert!(check(&cert, "db.example", Check::Chain(other.store())).is_err());
    assert!(check(&cert, "db.example", Check::Full(ca.store())).is_ok());
    assert!(check(&cert, "127.0.0.1", Check::Full(ca.store())).is_ok());
    let wrong_name = check(&cert, "elsewhere.example", Check::Full(ca.store()));
    assert!(
        matches!(
            wrong_name,
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{wrong_name:?}"
    );
    let wrong_ca = check(&cert, "db.example", Check::Full(other.store()));
    assert!(
        matches!(
            wrong_ca,
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
        ),
        "{wrong_ca:?}"
    );
    assert!(check(&cert, "db.example", Check::Full(impostor.store())).is_err());
    assert!(check(&cert, "db.example", Check::Chain(impostor.store())).is_err());
    assert!(check(&cert, "elsewhere.example", Check::Nothing).is_ok());
}
