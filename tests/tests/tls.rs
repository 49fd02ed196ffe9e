//! TLS to the database: a cluster of the test's own serving TLS with a
//! certificate from a CA the test makes, its pg_hba.conf refusing every
//! connection without TLS. Gateways honour `sslmode` and `sslrootcert` as
//! libpq does: `verify-full` with the right CA serves everything (pool,
//! LISTEN connection and cancel requests all over TLS); a wrong CA or a
//! wrong name is refused and `/health` says why; `verify-ca` ignores the
//! name; `require` and `prefer` need no CA; `disable` is refused by the
//! server.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use e2e::cluster::OwnCluster;
use e2e::relay::{http_get, Client, Gateway};
use e2e::{connect, now, with_user};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use support::*;

/// Only TLS connections over TCP (the local socket is for cluster.sh's
/// pg_ctl).
const HOSTSSL_ONLY: &str = "local all all trust\n\
    hostssl all all 127.0.0.1/32 trust\n\
    hostssl all all ::1/128 trust\n";

/// A CA, a server certificate it signed for `localhost` and 127.0.0.1, and
/// another CA that signed nothing here, as files; and an empty directory to
/// be the gateways' `$HOME`, so no `~/.postgresql/root.crt` of the machine's
/// changes what `require` and `prefer` check.
struct Certs {
    dir: PathBuf,
    ca: String,
    other_ca: String,
    home: String,
    server_cert: String,
    server_key: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

impl Certs {
    fn new(label: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("nostr_pg-certs-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).expect("cert dir");
        let issuer = ca("nostr_pg test CA");
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write cert");
            path.display().to_string()
        };
        Certs {
            ca: write("ca.pem", &issuer.pem()),
            other_ca: write("other-ca.pem", &ca("another CA").pem()),
            home: dir.join("home").display().to_string(),
            server_cert: cert.pem(),
            server_key: key.serialize_pem(),
            dir,
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster serving TLS only, with the extension in database `nostr`.
fn tls_cluster(label: &str) -> (OwnCluster, Certs) {
    let cluster = OwnCluster::start(label);
    let certs = Certs::new(label);
    cluster.use_tls(&certs.server_cert, &certs.server_key, HOSTSSL_ONLY);
    (cluster, certs)
}

async fn gateway(url: &str, certs: &Certs, config: &ConfigFile) -> Gateway {
    Gateway::start_with_env(url, &["--config", &config.arg()], &[("HOME", &certs.home)]).await
}

/// `/health`: the status line and the body.
async fn health(gw: &Gateway) -> (String, String) {
    let (head, body) = http_get(gw, "/health", "*/*").await;
    (head.lines().next().unwrap_or_default().to_owned(), body)
}

/// Gateway backends of `app` (the pool's or the listener's) and how many of
/// them use TLS.
async fn tls_backends(admin: &tokio_postgres::Client, app: &str) -> (i64, i64) {
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .expect("pg_stat_ssl");
    (row.get(0), row.get(1))
}

/// verify-full with the right CA: publish, REQ, COUNT, live delivery from
/// one gateway to another, and CLOSE cancelling a stuck query, all over TLS,
/// with the gateways logged in as an ordinary role that has only what
/// `nostr.grant_relay` gives (least privilege and TLS together).
#[tokio::test]
async fn verify_full_serves_everything_over_tls() {
    let (cluster, certs) = tls_cluster("tls_full");
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", cluster.url, certs.ca);
    let admin = connect(&url).await;
    admin
        .batch_execute("CREATE ROLE relay_tls LOGIN; SELECT nostr.grant_relay('relay_tls')")
        .await
        .expect("relay role");
    // The cluster trusts local TLS connections, so the password is not checked.
    let relay_url = with_user(&url, "relay_tls", "unused");
    let config = ConfigFile::new(&format!("{UNLIMITED}[database]\nstatement_timeout_ms = 600000\n"));
    let publishing = gateway(&relay_url, &certs, &config).await;
    let serving = gateway(&relay_url, &certs, &config).await;

    let keys = Keys::from_seed("tls_full");
    let author = hex::encode(&keys.pubkey());
    let mut sub = Client::connect(&serving.url).await;
    assert!(sub
        .req("live", &[json!({"authors": [author]})])
        .await
        .expect("req")
        .is_empty());
    let mut p = Client::connect(&publishing.url).await;
    let note = keys.sign(now(), 1, vec![], "over TLS");
    let f = p.publish(&note.canonical_json()).await;
    assert_eq!((&f[2], &f[3]), (&json!(true), &json!("")), "{f}");
    assert_eq!(sub.next_event("live").await["id"], hex::encode(&note.id).as_str());
    let stored = p.req("stored", &[json!({"authors": [author]})]).await.expect("req");
    assert_eq!(stored.len(), 1);
    assert_eq!(p.count("n", &[json!({"authors": [author]})]).await, Ok(1));

    // Every gateway connection is encrypted (the server would refuse any
    // other, but this shows both kinds were made and are still up).
    let (pooled, pooled_tls) = tls_backends(&admin, "nostr_pg_gateway").await;
    assert!(
        pooled > 0 && pooled == pooled_tls,
        "{pooled_tls} of {pooled} pooled connections use TLS"
    );
    assert_eq!(tls_backends(&admin, "nostr_pg_gateway_listen").await, (2, 2));
    let roles: Vec<(String, bool)> = admin
        .query(
            "SELECT DISTINCT a.usename::text, r.rolsuper FROM pg_stat_activity a \
             JOIN pg_roles r ON r.rolname = a.usename WHERE a.application_name LIKE 'nostr_pg_gateway%'",
            &[],
        )
        .await
        .expect("gateway roles")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(roles, vec![("relay_tls".to_owned(), false)], "the gateways' login role");

    // A cancel request travels on its own connection, with the same TLS
    // settings: CLOSE stops a REQ stuck behind a lock.
    let locker = connect(&url).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE nostr.events IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    p.send(&json!(["REQ", "stuck", {"kinds": [1]}])).await;
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nostr_pg_gateway' \
                   AND wait_event_type = 'Lock'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while admin.query_one(waiting, &[]).await.expect("waiting").get::<_, i64>(0) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the REQ never reached the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.send(&json!(["CLOSE", "stuck"])).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while admin.query_one(waiting, &[]).await.expect("waiting").get::<_, i64>(0) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "CLOSE did not cancel the query over TLS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(
        p.req("after", &[json!({"authors": [author]})])
            .await
            .expect("req")
            .len(),
        1
    );
}

/// What each sslmode accepts and refuses, as `/health` tells it.
#[tokio::test]
async fn sslmodes_accept_and_refuse_as_libpq_does() {
    let (cluster, certs) = tls_cluster("tls_modes");
    let config = ConfigFile::new(UNLIMITED);
    let port = cluster.port;
    let user = cluster
        .url
        .trim_start_matches("postgres://")
        .split_once('@')
        .map(|(u, _)| u.to_owned())
        .expect("user in the cluster URL");
    let at = |host: &str, query: &str| format!("postgres://{user}@{host}:{port}/nostr?{query}");
    // A name the certificate does not carry, reaching the same server.
    let misnamed = "hostaddr=127.0.0.1";
    let (ca, other_ca) = (&certs.ca, &certs.other_ca);
    let cases = [
        (
            at("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")),
            Ok(()),
        ),
        (
            at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")),
            Ok(()),
        ),
        (
            at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={other_ca}")),
            Err("invalid peer certificate: UnknownIssuer"),
        ),
        (
            at(
                "db.invalid",
                &format!("{misnamed}&sslmode=verify-full&sslrootcert={ca}"),
            ),
            Err("certificate not valid for name \"db.invalid\""),
        ),
        (
            at("db.invalid", &format!("{misnamed}&sslmode=verify-ca&sslrootcert={ca}")),
            Ok(()),
        ),
        (
            at("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={other_ca}")),
            Err("invalid peer certificate: UnknownIssuer"),
        ),
        (at("127.0.0.1", "sslmode=require"), Ok(())),
        (at("127.0.0.1", "application_name=x"), Ok(())),
        (at("127.0.0.1", "sslmode=disable"), Err("no encryption")),
    ];
    for (url, want) in cases {
        let gw = gateway(&url, &certs, &config).await;
        let (status, body) = health(&gw).await;
        match want {
            Ok(()) => assert!(status.ends_with("200 OK"), "{url}: {status} {body}"),
            Err(text) => {
                assert!(status.contains(" 503 "), "{url}: {status} {body}");
                assert!(body.contains(text), "{url}: /health says {body:?}, not {text:?}");
            }
        }
    }
}
