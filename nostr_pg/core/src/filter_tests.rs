use super::*;
use crate::sign::{tags, Keys};

fn f(json: &str) -> Filter {
    Filter::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

#[test]
fn conditions_are_anded_and_filters_ored() {
    let keys = Keys::from_seed("filters");
    let e = keys.sign(
        100,
        1,
        tags(&[&["t", "nostr"], &["p", "abc", "wss://x"]]),
        "Hello World",
    );
    let id = hex::encode(&e.id);
    let pk = hex::encode(&e.pubkey);
    assert!(f("{}").matches(&e));
    assert!(f(&format!(r#"{{"ids":["{id}"]}}"#)).matches(&e));
    assert!(f(&format!(r#"{{"authors":["{pk}"],"kinds":[1]}}"#)).matches(&e));
    assert!(!f(&format!(r#"{{"authors":["{pk}"],"kinds":[2]}}"#)).matches(&e));
    assert!(f(r##"{"#t":["x","nostr"]}"##).matches(&e));
    assert!(f(r##"{"#p":["abc"]}"##).matches(&e));
    assert!(!f(r##"{"#p":["wss://x"]}"##).matches(&e), "only the first value counts");
    assert!(!f(r##"{"#t":["nostr"],"#p":["zzz"]}"##).matches(&e));
    assert!(f(r#"{"since":100,"until":100}"#).matches(&e), "inclusive bounds");
    assert!(!f(r#"{"since":101}"#).matches(&e));
    assert!(!f(r#"{"until":99}"#).matches(&e));
    assert!(f(r#"{"search":"hello world"}"#).matches(&e));
    assert!(!f(r#"{"search":"goodbye"}"#).matches(&e));
    let reaction = keys.sign(100, 7, vec![], "hello");
    assert!(
        !f(r#"{"search":"hello"}"#).matches(&reaction),
        "reactions are not searched"
    );
    let list = Filters::parse(r#"[{"kinds":[7]},{"since":50}]"#).expect("filters");
    assert!(list.matches(&e));
    assert!(!Filters::parse(r#"[{"kinds":[7]}]"#).expect("filters").matches(&e));
    assert!(!Filters::parse("[]").expect("filters").matches(&e));
}

#[test]
fn empty_lists_match_nothing() {
    let keys = Keys::from_seed("empty");
    let e = keys.sign(1, 1, vec![], "");
    for json in [
        r#"{"ids":[]}"#,
        r#"{"authors":[]}"#,
        r#"{"kinds":[]}"#,
        r##"{"#e":[]}"##,
    ] {
        assert!(!f(json).matches(&e), "{json}");
        assert!(f(json).is_empty_set(), "{json}");
    }
    assert!(f(r#"{"since":5,"until":4}"#).is_empty_set());
    assert!(!f(r#"{"since":4,"until":4}"#).is_empty_set());
    for json in [r#"{"ids":[]}"#, r#"{"since":5,"until":4}"#] {
        assert!(f(json).never_matches(), "{json}");
    }
}

#[test]
fn limit_zero_empties_the_stored_part_only() {
    // Clients send `limit: 0` to get live events only.
    let keys = Keys::from_seed("limit0");
    let e = keys.sign(1, 1, vec![], "");
    let live_only = f(r#"{"kinds":[1],"limit":0}"#);
    assert!(live_only.is_empty_set());
    assert!(!live_only.never_matches());
    assert!(live_only.matches(&e));
}

#[test]
fn shapes_are_strict() {
    use FilterError::*;
    let err = |json: &str| Filter::parse(json).expect_err(json);
    assert_eq!(err(r#"{"ids":["abc"]}"#), BadHexList("ids"));
    assert_eq!(err(r#"{"authors":"x"}"#), BadHexList("authors"));
    assert_eq!(err(r#"{"kinds":[70000]}"#), BadKinds);
    assert_eq!(err(r#"{"kinds":[1.5]}"#), BadKinds);
    assert_eq!(err(r#"{"limit":-1}"#), BadInteger("limit"));
    assert_eq!(err(r#"{"limit":"10"}"#), BadInteger("limit"));
    assert_eq!(err(r#"{"since":-5}"#), BadInteger("since"));
    assert_eq!(err(r##"{"#e":[1]}"##), BadTagList("#e".into()));
    assert_eq!(err(r##"{"#emoji":["x"]}"##), UnknownField("#emoji".into()));
    assert_eq!(err(r#"{"foo":1}"#), UnknownField("foo".into()));
    assert_eq!(err("[]"), NotObject);
    assert_eq!(Filters::parse("{}"), Err(NotArray));
    assert!(matches!(Filters::parse("[{"), Err(Json(_))));
    assert_eq!(f(r#"{"limit":18446744073709551615}"#).limit, Some(u64::MAX));
}
