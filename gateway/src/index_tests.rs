use super::*;
use nostr_pg_core::sign::{tags, Keys};
use tokio::sync::mpsc;

fn conn(id: ConnId, cap: usize) -> (Arc<ConnHandle>, mpsc::Receiver<LiveMsg>) {
    ConnHandle::new(id, cap)
}

fn filters(json: &str) -> Filters {
    Filters::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn live(event: Event) -> Arc<LiveEvent> {
    Arc::new(LiveEvent {
        json: event.canonical_json(),
        event,
        xid: 1,
    })
}

fn subs_of(index: &SubIndex, event: &Event) -> Vec<(ConnId, String)> {
    let mut v: Vec<_> = index
        .matching(event)
        .into_iter()
        .map(|t| (t.conn.id, t.sub_id.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn index_finds_subscriptions_by_every_field() {
    let alice = Keys::from_seed("alice");
    let bob = Keys::from_seed("bob");
    let (c1, _r1) = conn(1, 8);
    let (c2, _r2) = conn(2, 8);
    let index = SubIndex::new();
    let note = alice.sign(100, 1, tags(&[&["t", "nostr"], &["e", &"0".repeat(64)]]), "hello");
    let id = hex::encode(note.id);
    let a = hex::encode(alice.pubkey());
    index.insert(
        &c1,
        "by-id".into(),
        1,
        filters(&format!(r#"[{{"ids":["{id}"]}}]"#)),
        None,
    );
    index.insert(
        &c1,
        "by-author".into(),
        1,
        filters(&format!(r#"[{{"authors":["{a}"],"kinds":[1]}}]"#)),
        None,
    );
    index.insert(
        &c1,
        "by-kind".into(),
        1,
        filters(r#"[{"kinds":[7]},{"kinds":[1],"since":50}]"#),
        None,
    );
    index.insert(&c2, "by-tag".into(), 1, filters(r##"[{"#t":["nostr"]}]"##), None);
    index.insert(&c2, "all".into(), 1, filters(r#"[{}]"#), None);
    index.insert(&c2, "too-late".into(), 1, filters(r#"[{"since":200}]"#), None);
    index.insert(&c2, "empty".into(), 1, filters(r#"[{"kinds":[]}]"#), None);

    let expect = |v: &[(ConnId, &str)]| v.iter().map(|(c, s)| (*c, (*s).to_owned())).collect::<Vec<_>>();
    assert_eq!(
        subs_of(&index, &note),
        expect(&[
            (1, "by-author"),
            (1, "by-id"),
            (1, "by-kind"),
            (2, "all"),
            (2, "by-tag")
        ])
    );
    let other = bob.sign(100, 1, vec![], "x");
    assert_eq!(subs_of(&index, &other), expect(&[(1, "by-kind"), (2, "all")]));

    index.remove(1, "by-kind");
    assert_eq!(subs_of(&index, &other), expect(&[(2, "all")]));
    index.remove_conn(2);
    assert_eq!(subs_of(&index, &other), Vec::new());
    assert_eq!(index.len(), 2);
    index.remove_conn(1);
    assert!(index.is_empty());
    assert!(index.read().postings.is_empty(), "postings cleaned up");
}

#[test]
fn limit_zero_subscriptions_get_live_events() {
    // `limit: 0` means "nothing stored, only what comes next".
    let keys = Keys::from_seed("l0");
    let (c, _r) = conn(1, 8);
    let index = SubIndex::new();
    index.insert(&c, "live-only".into(), 1, filters(r#"[{"kinds":[1],"limit":0}]"#), None);
    index.insert(&c, "never".into(), 1, filters(r#"[{"since":5,"until":4}]"#), None);
    assert_eq!(
        subs_of(&index, &keys.sign(4, 1, vec![], "")),
        vec![(1, "live-only".to_owned())]
    );
}

#[test]
fn replacing_a_subscription_replaces_its_filters() {
    let keys = Keys::from_seed("r");
    let (c, _r) = conn(1, 8);
    let index = SubIndex::new();
    index.insert(&c, "s".into(), 1, filters(r#"[{"kinds":[1]}]"#), None);
    index.insert(&c, "s".into(), 1, filters(r#"[{"kinds":[2]}]"#), None);
    assert!(index.matching(&keys.sign(1, 1, vec![], "")).is_empty());
    assert_eq!(index.matching(&keys.sign(1, 2, vec![], "")).len(), 1);
    assert_eq!(index.len(), 1);
}

#[test]
fn restricted_kinds_reach_only_involved_pubkeys() {
    let alice = Keys::from_seed("alice");
    let bob = Keys::from_seed("bob");
    let carol = Keys::from_seed("carol");
    let dm = alice.sign(1, 4, tags(&[&["p", &hex::encode(bob.pubkey())]]), "secret");
    let (c, _r) = conn(1, 8);
    let index = SubIndex::new();
    index.insert(
        &c,
        "bob".into(),
        1,
        filters(r#"[{"kinds":[4]}]"#),
        Some(vec![bob.pubkey()]),
    );
    index.insert(&c, "carol".into(), 1, filters(r#"[{}]"#), Some(vec![carol.pubkey()]));
    index.insert(&c, "anon".into(), 1, filters(r#"[{}]"#), Some(vec![]));
    index.insert(&c, "open".into(), 1, filters(r#"[{}]"#), None);
    let got: Vec<String> = subs_of(&index, &dm).into_iter().map(|(_, s)| s).collect();
    assert_eq!(got, vec!["bob".to_owned(), "open".to_owned()]);
    let note = carol.sign(1, 1, vec![], "public");
    assert_eq!(subs_of(&index, &note).len(), 3, "public events reach every open filter");
}

#[test]
fn full_queues_get_their_connection_kicked() {
    let keys = Keys::from_seed("k");
    let (slow, mut slow_rx) = conn(1, 1);
    let (fast, mut fast_rx) = conn(2, 8);
    let index = SubIndex::new();
    let metrics = Metrics::new();
    index.insert(&slow, "s".into(), 1, filters(r#"[{}]"#), None);
    index.insert(&fast, "f".into(), 1, filters(r#"[{}]"#), None);
    index.dispatch(&live(keys.sign(1, 1, vec![], "a")), &metrics);
    assert!(!slow.is_kicked());
    index.dispatch(&live(keys.sign(2, 1, vec![], "b")), &metrics);
    assert!(slow.is_kicked());
    assert!(!fast.is_kicked());
    assert_eq!(metrics.slow_clients_dropped.load(Relaxed), 1);
    assert!(slow_rx.try_recv().is_ok());
    assert!(fast_rx.try_recv().is_ok() && fast_rx.try_recv().is_ok());
}

#[test]
fn a_gap_is_reported_once_to_each_connection() {
    let (c1, mut r1) = conn(1, 8);
    let (c2, mut r2) = conn(2, 8);
    let index = SubIndex::new();
    index.insert(&c1, "a".into(), 3, filters(r#"[{"kinds":[1]}]"#), None);
    index.insert(&c1, "b".into(), 4, filters(r#"[{"kinds":[2]}]"#), None);
    index.insert(&c2, "c".into(), 7, filters(r#"[{}]"#), None);
    assert_eq!(index.report_gap(Some(9), "error: lost"), 2);
    assert_eq!(index.len(), 3, "the connections decide what ends");
    match r1.try_recv() {
        Ok(LiveMsg::Gap { survivor, message }) => assert_eq!((survivor, &*message), (Some(9), "error: lost")),
        other => panic!("{other:?}"),
    }
    assert!(r1.try_recv().is_err(), "once per connection");
    assert!(matches!(r2.try_recv(), Ok(LiveMsg::Gap { survivor: Some(9), .. })));
}
