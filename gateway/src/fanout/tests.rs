use super::*;

fn snap(text: &str) -> Snapshot {
    Snapshot::parse(text).unwrap_or_else(|| panic!("snapshot {text}"))
}

#[test]
fn each_transaction_is_claimed_once() {
    let mut c = Claims::default();
    assert!(c.claim(5));
    assert!(!c.claim(5), "a second claim of the same xid");
    assert!(c.is_claimed(5) && !c.is_claimed(6));
    assert!(c.claim(6));
    // 5 and 6 finished before the check-in; 7 was still running.
    c.advance(&snap("7:9:7"));
    assert_eq!(c.len(), 0, "claims the horizon covers are dropped");
    assert!(!c.claim(5), "behind the horizon counts as delivered");
    assert!(!c.claim(4));
    assert!(c.claim(7), "running at the check-in: still deliverable");
    assert!(c.claim(9));
    c.advance(&snap("8:10:"));
    assert!(!c.claim(7) && !c.claim(9));
    assert!(c.claim(10));
    assert!(!c.is_empty());
}

#[test]
fn the_read_fence_covers_every_claim() {
    let fanout = Fanout::new(Arc::new(Metrics::new()));
    assert_eq!(fanout.read_fence(), None, "no check-in yet");
    fanout.checked_in(&snap("7:9:7"), 3);
    assert_eq!(fanout.read_fence(), Some(ReadFence { below: 9, epoch: 3 }));
    assert!(fanout.claim(12));
    assert_eq!(fanout.read_fence(), Some(ReadFence { below: 13, epoch: 3 }));
    fanout.checked_in(&snap("10:11:10"), 4);
    assert_eq!(
        fanout.read_fence(),
        Some(ReadFence { below: 13, epoch: 4 }),
        "12 is still claimed"
    );
    fanout.checked_in(&snap("14:14:"), 4);
    assert_eq!(fanout.read_fence(), Some(ReadFence { below: 14, epoch: 4 }));
}

#[test]
fn deliver_dispatches_once_per_transaction() {
    use crate::live::{ConnHandle, LiveMsg};
    use nostr_pg_core::sign::Keys;
    use nostr_pg_core::Filters;
    let fanout = Fanout::new(Arc::new(Metrics::new()));
    let (conn, mut rx) = ConnHandle::new(1, 8);
    let filters = Filters::parse(r#"[{"kinds":[1]}]"#).unwrap_or_default();
    fanout.index.insert(&conn, "s".into(), 1, filters, None);
    let e = Keys::from_seed("deliver").sign(1, 1, vec![], "x");
    let json = e.canonical_json();
    assert!(fanout.deliver(42, [(e.clone(), json.clone())]));
    assert!(!fanout.deliver(42, [(e, json)]), "the same xid again");
    match rx.try_recv() {
        Ok(LiveMsg::Event { event, .. }) => assert_eq!(event.xid, 42),
        other => panic!("{other:?}"),
    }
    assert!(rx.try_recv().is_err(), "delivered once");
}
