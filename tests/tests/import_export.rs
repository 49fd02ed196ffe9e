//! `nostr-pg-admin import` and `export` as processes against real databases:
//! every class of bad line counted with its reason and nothing valid lost;
//! `export | import` between databases gives the same canonical events byte
//! for byte (plain, gzip and zstd input, file and pipe); an import killed
//! mid-way and run again stores every event once; SIGINT stops an import
//! cleanly with a summary.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e::admin::{self, TempFile};
use e2e::relay::WAIT;
use e2e::{now, publish, stored_ids, TestDb};
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use tokio::io::AsyncWriteExt;
use tokio_postgres::Client;

/// The stored events: how many, and an md5 of their canonical text in id order.
async fn state(c: &Client) -> (i64, String) {
    let row = c
        .query_one(
            "SELECT count(*), coalesce(md5(string_agg(event::text, E'\\n' ORDER BY id)), '') FROM nostr.events",
            &[],
        )
        .await
        .expect("state");
    (row.get(0), row.get(1))
}

/// Waits until at least `n` events are stored (an import is under way).
async fn wait_for_rows(c: &Client, n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (count, _) = state(c).await;
        if count >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {count} of {n} events stored in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn id_of(e: &Event) -> String {
    hex::encode(&e.id)
}

/// `n` notes by a few authors, with content that JSON must escape.
fn notes(seed: &str, n: usize) -> Vec<Event> {
    let keys: Vec<Keys> = (0..5).map(|i| Keys::from_seed(&format!("{seed}-{i}"))).collect();
    let t = now() - 100_000;
    (0..n)
        .map(|i| {
            let k = &keys[i % keys.len()];
            let content = format!("note {i}: \"quoted\" back\\slash\ttab\nline \u{1}ctl caf\u{e9} \u{1f600} \u{2028}");
            k.sign(t + i as i64, 1, tags(&[&["t", "import"]]), &content)
        })
        .collect()
}

fn jsonl(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(e.canonical_json().as_bytes());
        out.push(b'\n');
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

#[tokio::test]
async fn every_bad_line_is_counted_and_nothing_valid_lost() {
    let db = TestDb::new("import_bad").await;
    let c = db.client().await;
    let alice = Keys::from_seed("import-alice");
    let bob = Keys::from_seed("import-bob");
    let t = now() - 1000;
    let valid = notes("import-bad", 40);

    // Deleted before the import: the deletion is already stored.
    let gone_before = bob.sign(t, 1, vec![], "deleted before the import");
    let pre_deletion = bob.sign(t + 1, 5, tags(&[&["e", &id_of(&gone_before)]]), "");
    assert_eq!(publish(&c, &pre_deletion.canonical_json()).await, (true, String::new()));
    // Deleted by a deletion earlier in the file.
    let gone_in_file = bob.sign(t + 2, 1, vec![], "deleted in the file");
    let deletion = bob.sign(t + 3, 5, tags(&[&["e", &id_of(&gone_in_file)]]), "");
    let expired = alice.sign(t, 1, tags(&[&["expiration", &(now() - 10).to_string()]]), "expired");
    let mut bad_sig = alice.sign(t + 4, 1, vec![], "bad signature");
    bad_sig.sig[10] ^= 1;
    let mut wrong_id = alice.sign(t + 5, 1, vec![], "wrong id");
    wrong_id.id[0] ^= 1;
    let huge = format!("{{\"content\":\"{}\"}}", "a".repeat(10 << 20));

    let mut lines: Vec<Vec<u8>> = vec![
        valid[0].canonical_json().into(),               // 1
        br#"{"id":"ab","kind":1,"content":"#.to_vec(),  // 2 malformed JSON
        bad_sig.canonical_json().into(),                // 3
        wrong_id.canonical_json().into(),               // 4
        valid[1].canonical_json().into(),               // 5
        valid[1].canonical_json().into(),               // 6 duplicate
        expired.canonical_json().into(),                // 7
        deletion.canonical_json().into(),               // 8
        gone_in_file.canonical_json().into(),           // 9 deleted above
        gone_before.canonical_json().into(),            // 10 deleted before
        b"{\"content\":\"caf\xe9 \xff\xfe\"}".to_vec(), // 11 not UTF-8
        huge.into_bytes(),                              // 12 10 MB
        Vec::new(),                                     // 13 blank
        b"   \t".to_vec(),                              // 14 blank
        br#"["EVENT",{"kind":1}]"#.to_vec(),            // 15 not an event object
    ];
    lines.extend(valid[2..].iter().map(|e| e.canonical_json().into_bytes()));
    let mut input = lines.join(&b"\n"[..]);
    input.extend_from_slice(b"\r\n");
    let file = TempFile::new("bad.jsonl", &input);

    let out = admin::import(&db.url, &[&file.arg()], None).await;
    assert!(out.status.success(), "{:?}\n{}", out.status, out.stderr);
    assert_eq!(out.summary["status"], "complete", "{}", out.summary);
    assert_eq!(out.summary["lines"], 15 + 38, "{}", out.summary);
    assert_eq!(out.summary["blank"], 2, "{}", out.summary);
    assert_eq!(out.summary["unsettled"], 0, "{}", out.summary);
    // 40 notes and the deletion.
    assert_eq!(out.count("accepted"), 41, "{}", out.summary);
    assert_eq!(out.samples("duplicate").iter().map(|s| s.0).collect::<Vec<_>>(), [6]);
    let invalid = out.samples("invalid");
    assert_eq!(
        invalid.iter().map(|s| s.0).collect::<Vec<_>>(),
        [3, 4, 7],
        "{invalid:?}"
    );
    assert!(invalid[0].1.starts_with("invalid: signature"), "{invalid:?}");
    assert!(
        invalid[1].1.starts_with("invalid: event id does not match"),
        "{invalid:?}"
    );
    assert!(invalid[2].1.contains("expired"), "{invalid:?}");
    let blocked = out.samples("blocked");
    assert_eq!(blocked.iter().map(|s| s.0).collect::<Vec<_>>(), [9, 10], "{blocked:?}");
    assert!(blocked.iter().all(|s| s.1.contains("deleted")), "{blocked:?}");
    let malformed = out.samples("malformed");
    assert_eq!(
        malformed.iter().map(|s| s.0).collect::<Vec<_>>(),
        [2, 15],
        "{malformed:?}"
    );
    assert!(malformed[0].1.starts_with("malformed JSON"), "{malformed:?}");
    assert_eq!(out.samples("not-utf8"), [(11, "not UTF-8 (byte 15)".to_owned())]);
    let too_long = out.samples("too-long");
    assert_eq!(too_long.len(), 1);
    assert_eq!(too_long[0].0, 12);
    assert!(
        too_long[0].1.starts_with(&format!("{} bytes", (10 << 20) + 14)),
        "{too_long:?}"
    );
    // Every line has exactly one outcome.
    let total: u64 = [
        "accepted",
        "duplicate",
        "invalid",
        "blocked",
        "malformed",
        "not-utf8",
        "too-long",
    ]
    .iter()
    .map(|o| out.count(o))
    .sum();
    assert_eq!(total, 53 - 2, "{}", out.summary);
    // The human summary says the same on stderr.
    assert!(out.stderr.contains("import complete: 53 lines"), "{}", out.stderr);
    assert!(out.stderr.contains("line 12: -: 10485774 bytes"), "{}", out.stderr);

    // In the database: the valid events and the two deletions, nothing else.
    let mut want: BTreeSet<String> = valid.iter().map(id_of).collect();
    want.insert(id_of(&deletion));
    want.insert(id_of(&pre_deletion));
    assert_eq!(stored_ids(&c).await, want);
}

#[tokio::test]
async fn export_import_round_trips_byte_for_byte() {
    let source = TestDb::new("export_src").await;
    let c = source.client().await;
    let mut events = notes("export", 200);
    let carol = Keys::from_seed("export-carol");
    let t = now() - 5000;
    // Replaced and replacing, addressable, reactions, a deletion, an ephemeral.
    events.push(carol.sign(t, 0, vec![], "{\"name\":\"old\"}"));
    events.push(carol.sign(t + 1, 0, vec![], "{\"name\":\"carol \\\"c\\\"\"}"));
    events.push(carol.sign(t, 30023, tags(&[&["d", "post"], &["title", "T"]]), "# long\n\nform"));
    let carol_pk = hex::encode(&carol.pubkey());
    events.push(carol.sign(t + 2, 7, tags(&[&["e", &id_of(&events[3])], &["p", &carol_pk]]), "+"));
    let regretted = carol.sign(t + 3, 1, vec![], "regretted");
    events.push(carol.sign(t + 4, 5, tags(&[&["e", &id_of(&regretted)]]), "bye"));
    events.push(regretted);
    events.push(carol.sign(t + 5, 20001, vec![], "ephemeral"));
    let json: Vec<String> = events.iter().map(Event::canonical_json).collect();
    c.query("SELECT * FROM nostr.publish_batch($1)", &[&json])
        .await
        .expect("publish_batch");
    let (count, sum) = state(&c).await;
    // 200 notes, the newer profile, the article, the reaction, the deletion.
    assert_eq!(count, 204);

    // Newest first is the stored canonical text, in REQ's order.
    let newest = admin::export(&source.url, &[]).await;
    let want: String = c
        .query_one(
            "SELECT string_agg(event::text || E'\\n', '' ORDER BY created_at DESC, id) FROM nostr.events",
            &[],
        )
        .await
        .expect("expected export")
        .get(0);
    assert_eq!(String::from_utf8_lossy(&newest), want);
    let by_seq = admin::export(&source.url, &["--order", "seq", "--fetch", "7"]).await;
    let want: String = c
        .query_one(
            "SELECT string_agg(event::text || E'\\n', '' ORDER BY seq) FROM nostr.events",
            &[],
        )
        .await
        .expect("expected export")
        .get(0);
    assert_eq!(String::from_utf8_lossy(&by_seq), want);
    // A filter, with its limit: what REQ answers.
    let filter = r##"{"kinds":[1],"#t":["import"],"limit":5}"##;
    let some = admin::export(&source.url, &["--filter", filter]).await;
    let want: String = c
        .query_one(
            "SELECT string_agg(e::text || E'\\n', '') FROM nostr.req($1::text) e",
            &[&format!("[{filter}]")],
        )
        .await
        .expect("req")
        .get(0);
    assert_eq!(String::from_utf8_lossy(&some), want);

    let file = TempFile::new("export.jsonl", &by_seq);
    let gz = TempFile::new("export.jsonl.gz", &gzip(&by_seq));
    let zst = zstd::encode_all(&newest[..], 3).expect("zstd");
    for (label, args, stdin) in [
        ("plain", vec![file.arg()], None),
        ("gzip", vec![gz.arg()], None),
        ("zstd", vec!["-".to_owned()], Some(&zst[..])),
    ] {
        let target = TestDb::new("import_copy").await;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = admin::import(&target.url, &args, stdin).await;
        assert!(out.status.success(), "{label}: {}", out.stderr);
        assert_eq!(out.count("accepted"), count as u64, "{label}: {}", out.summary);
        assert_eq!(out.summary["compression"], label, "{label}: {}", out.summary);
        assert_eq!(state(&target.client().await).await, (count, sum.clone()), "{label}");
        assert_eq!(admin::export(&target.url, &[]).await, newest, "{label}");
    }

    // A real pipe: export | import.
    let target = TestDb::new("import_pipe").await;
    let mut exporter = admin::spawn(&source.url, &["export"]);
    let pipe: Stdio = exporter.stdout.take().expect("export stdout").try_into().expect("pipe");
    let importer = tokio::process::Command::new(admin::admin_bin())
        .args(["--database-url", &target.url, "import", "-"])
        .stdin(pipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn import");
    let imported = admin::finish(importer).await;
    let exported = tokio::time::timeout(WAIT, exporter.wait())
        .await
        .expect("export ends")
        .expect("export status");
    assert!(exported.success());
    assert!(imported.status.success(), "{}", imported.stderr);
    assert_eq!(state(&target.client().await).await, (count, sum));
}

#[tokio::test]
async fn an_interrupted_import_resumes_without_duplicates() {
    let db = TestDb::new("import_resume").await;
    let c = db.client().await;
    let events = notes("resume", 3000);
    let all = jsonl(&events);
    let file = TempFile::new("resume.jsonl", &all);
    let want: BTreeSet<String> = events.iter().map(id_of).collect();

    // A prefix first, as if an earlier run had stopped after it.
    let prefix = jsonl(&events[..500]);
    let out = admin::import(&db.url, &["-"], Some(&prefix)).await;
    assert_eq!(out.count("accepted"), 500, "{}", out.summary);

    // A run killed (SIGKILL, no summary) mid-way: it is given two thirds of
    // the file and is still waiting for more when killed.
    let mut child = admin::spawn(&db.url, &["import", "-", "--batch", "50", "--connections", "2"]);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&jsonl(&events[..2000])).await.expect("write");
    stdin.flush().await.expect("flush");
    wait_for_rows(&c, 1000).await;
    child.start_kill().expect("kill");
    child.wait().await.expect("killed");
    drop(stdin);
    admin::wait_for_no_sessions(&e2e::connect(&e2e::cluster_url()).await, &db.name).await;
    let (partial, _) = state(&c).await;
    assert!((1000..=2000).contains(&partial), "{partial}");

    // The whole file again: the rest is stored, nothing twice.
    let out = admin::import(&db.url, &[&file.arg()], None).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.count("accepted"), 3000 - partial as u64, "{}", out.summary);
    assert_eq!(out.count("duplicate"), partial as u64, "{}", out.summary);
    assert_eq!(out.summary["skipped_stored"], partial, "{}", out.summary);
    assert_eq!(stored_ids(&c).await, want);
    assert_eq!(state(&c).await.0, 3000);

    // Publishing everything again (no lookup first): every line is a
    // duplicate, answered by the relay itself.
    let out = admin::import(&db.url, &[&file.arg(), "--no-skip-stored"], None).await;
    assert_eq!(out.count("duplicate"), 3000, "{}", out.summary);
    assert_eq!(out.summary["skipped_stored"], 0, "{}", out.summary);
    assert_eq!(out.count("accepted"), 0, "{}", out.summary);
    assert_eq!(state(&c).await.0, 3000);
}

#[tokio::test]
async fn sigint_stops_an_import_with_a_summary() {
    let db = TestDb::new("import_sigint").await;
    let c = db.client().await;
    let events = notes("sigint", 2000);
    let mut child = admin::spawn(&db.url, &["import", "-", "--batch", "50", "--connections", "2"]);
    let mut stdin = child.stdin.take().expect("stdin");
    // Half the events, and stdin stays open: the import cannot be complete.
    stdin.write_all(&jsonl(&events[..1000])).await.expect("write");
    stdin.flush().await.expect("flush");
    wait_for_rows(&c, 1).await;
    let pid = child.id().expect("pid");
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = admin::finish(child).await;
    let took = sent.elapsed();
    drop(stdin);
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr);
    assert_eq!(out.summary["status"], "interrupted", "{}", out.summary);
    assert!(
        out.stderr.contains("interrupted: finishing the batches in flight"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("import interrupted:"), "{}", out.stderr);
    // No half batch: what the summary counts as accepted is what is stored.
    let (stored, _) = state(&c).await;
    assert_eq!(out.count("accepted"), stored as u64, "{}", out.summary);
    let lines = out.summary["lines"].as_u64().unwrap_or(0);
    assert!(lines <= 1000, "{}", out.summary);
    assert_eq!(
        out.summary["unsettled"].as_u64(),
        Some(lines - out.count("accepted")),
        "{}",
        out.summary
    );

    // And the rest, afterwards.
    let out = admin::import(&db.url, &["-"], Some(&jsonl(&events))).await;
    assert_eq!(out.count("accepted") + out.count("duplicate"), 2000, "{}", out.summary);
    assert_eq!(state(&c).await.0, 2000);
}

#[tokio::test]
async fn a_second_sigint_abandons_the_batches_in_flight() {
    let db = TestDb::new("import_sigint2").await;
    let c = db.client().await;
    let events = notes("sigint2", 3000);
    let mut child = admin::spawn(&db.url, &["import", "-", "--batch", "500", "--connections", "2"]);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&jsonl(&events)).await.expect("write");
    stdin.flush().await.expect("flush");
    wait_for_rows(&c, 1).await;
    let pid = child.id().expect("pid").to_string();
    for _ in 0..2 {
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill -INT");
        assert!(status.success());
    }
    let out = admin::finish(child).await;
    drop(stdin);
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr);
    assert_eq!(out.summary["status"], "interrupted", "{}", out.summary);
    // An abandoned batch committed or not, as a whole: once its statement
    // is over on the server, what is stored lies between what was confirmed
    // and that plus what was abandoned.
    admin::wait_for_no_sessions(&e2e::connect(&e2e::cluster_url()).await, &db.name).await;
    let (stored, _) = state(&c).await;
    let accepted = out.count("accepted");
    let unknown = out.summary["unknown"].as_u64().unwrap_or(0);
    assert!(
        (accepted..=accepted + unknown).contains(&(stored as u64)),
        "stored {stored}, accepted {accepted}, unknown {unknown}: {}",
        out.summary
    );
    assert_eq!(unknown % 500, 0, "whole batches: {}", out.summary);
    let lines = out.summary["lines"].as_u64().unwrap_or(0);
    assert_eq!(
        out.summary["unsettled"].as_u64(),
        Some(lines - accepted - unknown),
        "{}",
        out.summary
    );

    // Running it again settles everything.
    let out = admin::import(&db.url, &["-"], Some(&jsonl(&events))).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(state(&c).await.0, 3000);
}
