//! A stock Nostr client library (nostr-sdk) publishes and reads through the
//! gateway: the relay works with what clients actually use.

use std::time::Duration;

use e2e::relay::Gateway;
use e2e::TestDb;
use nostr_sdk::prelude::*;

#[tokio::test]
async fn nostr_sdk_publishes_subscribes_and_fetches() {
    let db = TestDb::new("sdk").await;
    let gw = Gateway::start(&db.url, &[]).await;
    let keys = Keys::generate();
    let client = Client::new(keys.clone());
    client.add_relay(gw.url.as_str()).await.expect("add relay");
    client.connect().await;

    let listener = Client::default();
    listener.add_relay(gw.url.as_str()).await.expect("add relay");
    listener.connect().await;
    let live = Filter::new().author(keys.public_key()).kind(Kind::TextNote);
    listener.subscribe(live, None).await.expect("subscribe");
    let mut notifications = listener.notifications();

    let sent = client
        .send_event_builder(EventBuilder::text_note("hello from nostr-sdk"))
        .await
        .expect("send");
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);
    assert_eq!(sent.success.len(), 1);

    let delivered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(RelayPoolNotification::Event { event, .. }) = notifications.recv().await {
                if event.id == *sent.id() {
                    return event;
                }
            }
        }
    })
    .await
    .expect("live delivery to a second client");
    assert_eq!(delivered.content, "hello from nostr-sdk");

    let filter = Filter::new().author(keys.public_key()).kind(Kind::TextNote).limit(10);
    let events = client
        .fetch_events(filter, Duration::from_secs(10))
        .await
        .expect("fetch");
    let fetched: Vec<_> = events.into_iter().collect();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].id, *sent.id());
    assert!(
        fetched[0].verify().is_ok(),
        "served event verifies in a foreign implementation"
    );

    client.disconnect().await;
    listener.disconnect().await;
}
