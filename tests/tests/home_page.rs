//! The relay's home page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `pg_config/setup.sh browser`, which the e2e tier
//! runs) renders it, scripts and all, and the test reads the resulting DOM
//! and saves a screenshot (`target/home_page.png`).
//!
//! NIP-11 clients keep getting JSON and WebSocket clients keep connecting on
//! the same URL; event content is shown as text, never as markup; DMs never
//! appear.
// Test helpers expect freely: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use e2e::relay::{http_get, Client, Gateway};
use e2e::{now, stored_count, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use serde_json::Value;
use support::ConfigFile;

/// How long one Chromium run may take before the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

const HOSTILE: &str = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">\
                       <b id=\"injected\">bold</b>";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, or
/// `--screenshot=PATH`) in a fresh profile; returns its stdout.
async fn chromium(url: &str, args: &[&str]) -> String {
    let profile = std::env::temp_dir().join(format!("nostr_pg-chromium-{}-{}", std::process::id(), args.len()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile dir");
    let child = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}): install it with `bash pg_config/setup.sh browser` (the e2e tier does)")
        });
    let out = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chromium {args:?} did not finish in {BROWSER_TIMEOUT:?}"))
        .expect("chromium output");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn browsers_get_a_live_home_page() {
    let db = TestDb::new("home_page").await;
    let config = ConfigFile::new(
        "[info]\nname = \"Harbour relay\"\n\
         description = \"Notes from the harbour <i>community</i>, kept in PostgreSQL.\"\n\
         contact = \"mailto:admin@harbour.example\"\n",
    );
    let gw = Gateway::start(&db.url, &["--config", &config.arg()]).await;

    // WebSocket clients connect on the same URL, and publish.
    let mut client = Client::connect(&gw.url).await;
    let alice = Keys::from_seed("home-alice");
    let bob = Keys::from_seed("home-bob");
    let bob_hex = hex::encode(&bob.pubkey());
    let t = now();
    let events = [
        alice.sign(t - 40, 1, vec![], "Good morning! The ferry is running on time today."),
        bob.sign(
            t - 30,
            1,
            tags(&[&["t", "harbour"]]),
            "Fresh fish at the market until noon.",
        ),
        alice.sign(t - 20, 1, vec![], HOSTILE),
        // A direct message: stored, never shown.
        alice.sign(t - 10, 4, tags(&[&["p", &bob_hex]]), "secret direct message"),
        bob.sign(t, 1, vec![], "Hello from the home page test"),
    ];
    for e in &events {
        let f = client.publish(&e.canonical_json()).await;
        assert_eq!(f[2], true, "{f}");
    }
    let stored = stored_count(&db.client().await).await;
    assert_eq!(stored, 5);

    // NIP-11 clients still get JSON, even when they also accept HTML.
    let (head, body) = http_get(&gw, "/", "text/html, application/nostr+json").await;
    assert!(head.contains("application/nostr+json"), "{head}");
    let doc: Value = serde_json::from_str(&body).expect("NIP-11 JSON");
    assert_eq!(doc["name"], "Harbour relay");
    // A browser gets HTML under a policy that runs only the page's own script.
    let (head, body) = http_get(&gw, "/", "text/html,application/xhtml+xml,*/*;q=0.8").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'; script-src 'nonce-"),
        "{head}"
    );
    assert!(
        !body.contains("<b id=\"injected\">") && !body.contains("</script><img"),
        "raw markup in the page"
    );
    let (_, stats) = http_get(&gw, "/stats.json", "*/*").await;
    let stats: Value = serde_json::from_str(&stats).expect("stats JSON");
    assert_eq!(stats["events_stored"], 5, "{stats}");

    // What a browser shows once the page's script ran.
    let dom = chromium(&gw.http_url(), &["--dump-dom"]).await;
    assert!(
        dom.contains("<title>Harbour relay</title>"),
        "the injected script never ran:\n{dom}"
    );
    assert!(dom.contains("<h1 id=\"relay-name\">Harbour relay</h1>"), "{dom}");
    assert!(
        dom.contains("Notes from the harbour &lt;i&gt;community&lt;/i&gt;, kept in PostgreSQL."),
        "configured text is escaped:\n{dom}"
    );
    assert!(dom.contains("id=\"events-stored\">5</div>"), "events stored:\n{dom}");
    assert!(dom.contains("id=\"connections\">1</div>"), "open connections:\n{dom}");
    assert!(dom.contains(">NIP-45</a>"), "{dom}");
    assert!(dom.contains("Hello from the home page test"), "{dom}");
    assert!(dom.contains("Fresh fish at the market until noon."), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x"),
        "the hostile event shows as text:\n{dom}"
    );
    assert!(
        !dom.contains("<b id=\"injected\">"),
        "an event's markup became an element:\n{dom}"
    );
    assert!(!dom.contains("secret direct message"), "a DM is on the page:\n{dom}");
    assert!(dom.contains("<rect"), "the events/s chart has a bar:\n{dom}");

    let shot = target_dir().join("home_page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&gw.http_url(), &[&format!("--screenshot={}", shot.display())]).await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    println!("home page screenshot: {}", shot.display());
    client.close().await;

    // On a large table the page shows the planner's estimate instead of
    // counting every row on each view (here the statistics say 250,000).
    db.client()
        .await
        .batch_execute("UPDATE pg_class SET reltuples = 250000 WHERE oid = 'nostr.events'::regclass")
        .await
        .expect("fake the statistics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, stats) = http_get(&gw, "/stats.json", "*/*").await;
        let stats: Value = serde_json::from_str(&stats).expect("stats JSON");
        if stats["events_stored"] == 250_000 {
            assert_eq!(stats["events_stored_estimated"], true, "{stats}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the estimate never showed: {stats}"
        );
        // The page's numbers are cached for two seconds.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
