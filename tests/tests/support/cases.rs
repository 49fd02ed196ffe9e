//! The hostile-input tables, shared by the WebSocket and SQL tests: each
//! case is a client frame and the NIP-01 answer it must get.

use e2e::now;
use nostr_pg_core::hex;
use nostr_pg_core::sign::{tags, Keys};
use nostr_pg_core::Event;
use serde_json::{json, Map, Value};

use super::sign_preimage;

pub const SEED: &str = "hostile-ws";
pub const SQLISH: &str = "'); DROP TABLE nostr.events; --";

/// The answer a case must get.
#[derive(Debug, Clone)]
pub enum Want {
    /// `["NOTICE", "invalid: …"]`: nothing in the frame to answer to.
    Notice,
    /// `["OK", <id>, false, "invalid: …"]`, the message containing the text.
    Invalid { id: String, containing: &'static str },
    /// `["CLOSED", <sub>, "invalid: …"]`.
    Closed(String),
    /// `["EOSE", <sub>]` (a valid REQ with nothing stored).
    Eose(String),
    /// No answer at all.
    Silent,
}

pub struct Case {
    pub name: String,
    pub frame: String,
    pub want: Want,
}

pub fn case(name: impl Into<String>, frame: impl Into<String>, want: Want) -> Case {
    Case {
        name: name.into(),
        frame: frame.into(),
        want,
    }
}

fn event_frame(ev: &Value) -> String {
    format!(r#"["EVENT",{ev}]"#)
}

/// The base event as a JSON object, with `edit` applied.
fn edited(base: &Event, edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut v: Value = serde_json::from_str(&base.canonical_json()).expect("canonical json");
    if let Some(obj) = v.as_object_mut() {
        edit(obj);
    }
    v
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

/// An event JSON whose id and signature were made over `preimage` instead of
/// the canonical serialization of its fields.
fn signed_over(preimage_of: impl Fn(&str) -> String, created_at: i64, content: &str) -> Value {
    let (pubkey, _, _) = sign_preimage(SEED, "probe");
    let preimage = preimage_of(&pubkey);
    let (pubkey, id, sig) = sign_preimage(SEED, &preimage);
    json!({"id": id, "pubkey": pubkey, "created_at": created_at, "kind": 1, "tags": [], "content": content, "sig": sig})
}

/// A 64-hex x coordinate that is not on secp256k1.
fn off_curve_pubkey() -> [u8; 32] {
    (1u8..=255)
        .map(|b| [b; 32])
        .find(|k| secp256k1::XOnlyPublicKey::from_byte_array(*k).is_err())
        .expect("some x is off the curve")
}

pub fn event_cases(keys: &Keys) -> Vec<Case> {
    let t = now() - 60;
    let base = keys.sign(t, 1, vec![], "hello");
    let other = keys.sign(t, 1, vec![], "another event");
    let good = edited(&base, |_| {});
    let id = id_of(&good);
    let bad = |name: &str, v: Value, containing: &'static str| {
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        case(
            format!("event: {name}"),
            event_frame(&v),
            Want::Invalid { id, containing },
        )
    };
    let with = |field: &str, value: Value| {
        let field = field.to_owned();
        edited(&base, move |o| {
            o.insert(field, value);
        })
    };
    let without = |field: &'static str| {
        edited(&base, move |o| {
            o.remove(field);
        })
    };
    let mut cases = vec![
        // Ids: the client's string is echoed, so it can match the answer.
        bad("uppercase id", with("id", json!(id.to_uppercase())), "`id`"),
        bad("short id", with("id", json!(&id[..63])), "`id`"),
        bad("long id", with("id", json!(format!("{id}00"))), "`id`"),
        bad("non-hex id", with("id", json!("zz".repeat(32))), "`id`"),
        case("event: numeric id", event_frame(&with("id", json!(12))), Want::Notice),
        case("event: missing id", event_frame(&without("id")), Want::Notice),
        bad(
            "uppercase pubkey",
            with("pubkey", json!(hex::encode(&base.pubkey).to_uppercase())),
            "`pubkey`",
        ),
        bad("short pubkey", with("pubkey", json!("ab")), "`pubkey`"),
        bad("non-hex pubkey", with("pubkey", json!("g".repeat(64))), "`pubkey`"),
        bad("numeric pubkey", with("pubkey", json!(1)), "`pubkey`"),
        bad("missing pubkey", without("pubkey"), "pubkey"),
        bad(
            "uppercase sig",
            with("sig", json!(hex::encode(&base.sig).to_uppercase())),
            "`sig`",
        ),
        bad("short sig", with("sig", json!(hex::encode(&base.sig[..32]))), "`sig`"),
        bad("non-hex sig", with("sig", json!("x".repeat(128))), "`sig`"),
        bad("missing sig", without("sig"), "sig"),
        bad("id mismatch", with("content", json!("tampered")), "does not match"),
        bad(
            "signature of another event",
            with("sig", json!(hex::encode(&other.sig))),
            "signature",
        ),
        bad("all-zero signature", with("sig", json!("0".repeat(128))), "signature"),
        bad(
            "created_at string",
            with("created_at", json!(t.to_string())),
            "created_at",
        ),
        bad(
            "created_at float",
            with("created_at", json!(t as f64 + 0.5)),
            "created_at",
        ),
        bad("created_at exponent", with("created_at", json!(1.7e9)), "created_at"),
        bad("created_at negative", with("created_at", json!(-1)), "created_at"),
        bad("created_at null", with("created_at", Value::Null), "created_at"),
        bad("created_at missing", without("created_at"), "created_at"),
        bad("kind 65536", with("kind", json!(65536)), "kind"),
        bad("kind -1", with("kind", json!(-1)), "kind"),
        bad("kind float", with("kind", json!(1.5)), "kind"),
        bad("kind string", with("kind", json!("1")), "kind"),
        bad("kind missing", without("kind"), "kind"),
        bad("tags object", with("tags", json!({})), "tags"),
        bad("tags string", with("tags", json!("e")), "tags"),
        bad("tag not an array", with("tags", json!(["e"])), "tags"),
        bad("tag value number", with("tags", json!([["e", 1]])), "tags"),
        bad("tag value null", with("tags", json!([["e", null]])), "tags"),
        bad("tag value array", with("tags", json!([["e", ["x"]]])), "tags"),
        bad("tag value object", with("tags", json!([[{}]])), "tags"),
        bad("tags null", with("tags", Value::Null), "tags"),
        bad("content number", with("content", json!(1)), "content"),
        bad("content null", with("content", Value::Null), "content"),
        bad("content array", with("content", json!(["x"])), "content"),
        bad("content missing", without("content"), "content"),
    ];
    // created_at past 2^63 and numbers JSON allows but no integer type holds.
    let raw = good.to_string();
    let ts = format!("\"created_at\":{t}");
    for (name, replacement) in [
        ("created_at 2^63", "\"created_at\":9223372036854775808"),
        ("created_at 2^64", "\"created_at\":18446744073709551616"),
        ("created_at 1e999", "\"created_at\":1e999"),
    ] {
        let frame = format!(r#"["EVENT",{}]"#, raw.replacen(&ts, replacement, 1));
        // 1e999 is valid JSON but no number serde_json holds: still answered by id.
        let containing = if name.ends_with("1e999") { "JSON" } else { "created_at" };
        let want = Want::Invalid {
            id: id.clone(),
            containing,
        };
        cases.push(case(format!("event: {name}"), frame, want));
    }
    // Well-formed, correctly signed, but refused by a rule.
    let far_future = keys.sign(i64::MAX, 1, vec![], "far future");
    cases.push(bad("created_at 2^63-1 (time window)", edited(&far_future, |_| {}), ""));
    let mut off = base.clone();
    off.pubkey = off_curve_pubkey();
    off.id = off.computed_id();
    cases.push(bad("pubkey off the curve", edited(&off, |_| {}), "pubkey"));
    let many_tags: Vec<Vec<String>> = (0..2501).map(|i| vec!["t".to_owned(), i.to_string()]).collect();
    cases.push(bad(
        "2501 tags",
        edited(&keys.sign(t, 1, many_tags, ""), |_| {}),
        "tags",
    ));
    cases.push(bad(
        "content over 100000 chars",
        edited(&keys.sign(t, 1, vec![], &"a".repeat(100_001)), |_| {}),
        "content",
    ));
    cases.push(bad(
        "event over 128 KiB",
        edited(&keys.sign(t, 1, tags(&[&["x", &"y".repeat(140_000)]]), ""), |_| {}),
        "bytes",
    ));
    // Lone surrogates are valid JSON escapes but not Unicode.
    for (name, esc) in [
        ("lone high surrogate", "\\ud800"),
        ("lone low surrogate", "\\udc00"),
        ("reversed pair", "\\ude00\\ud83d"),
    ] {
        let frame = event_frame(&good).replacen("\"content\":\"hello\"", &format!("\"content\":\"hel{esc}lo\""), 1);
        cases.push(case(
            format!("event: {name}"),
            frame,
            Want::Invalid {
                id: id.clone(),
                containing: "JSON",
            },
        ));
    }
    // Ids computed over serializations that are not the canonical one.
    let noncanonical: Vec<(&str, Value)> = vec![
        (
            "whitespace",
            signed_over(|pk| format!("[0, \"{pk}\", {t}, 1, [], \"x\"]"), t, "x"),
        ),
        (
            "escaped slash",
            signed_over(|pk| format!(r#"[0,"{pk}",{t},1,[],"a\/b"]"#), t, "a/b"),
        ),
        (
            "\\u0041 for A",
            signed_over(|pk| format!(r#"[0,"{pk}",{t},1,[],"\u0041"]"#), t, "A"),
        ),
        (
            "uppercase \\u001F",
            signed_over(|pk| format!(r#"[0,"{pk}",{t},1,[],"\u001F"]"#), t, "\u{1f}"),
        ),
        (
            "escaped é",
            signed_over(|pk| format!(r#"[0,"{pk}",{t},1,[],"\u00e9"]"#), t, "é"),
        ),
        (
            "\\u000a for newline",
            signed_over(|pk| format!(r#"[0,"{pk}",{t},1,[],"\u000a"]"#), t, "\n"),
        ),
        (
            "created_at as float",
            signed_over(|pk| format!(r#"[0,"{pk}",{t}.0,1,[],"x"]"#), t, "x"),
        ),
        (
            "kind with exponent",
            signed_over(|pk| format!(r#"[0,"{pk}",{t},1e0,[],"x"]"#), t, "x"),
        ),
        (
            "uppercase pubkey",
            signed_over(|pk| format!(r#"[0,"{}",{t},1,[],"x"]"#, pk.to_uppercase()), t, "x"),
        ),
        (
            "trailing newline",
            signed_over(|pk| format!("[0,\"{pk}\",{t},1,[],\"x\"]\n"), t, "x"),
        ),
    ];
    for (name, v) in noncanonical {
        cases.push(bad(
            &format!("signed over non-canonical form: {name}"),
            v,
            "does not match",
        ));
    }
    // SQL-looking strings in every field a shape check reads.
    cases.push(bad("SQL in id", with("id", json!(SQLISH)), "`id`"));
    cases.push(bad("SQL in pubkey", with("pubkey", json!(SQLISH)), "`pubkey`"));
    cases.push(bad("SQL in sig", with("sig", json!(SQLISH)), "`sig`"));
    cases.push(bad(
        "SQL in created_at",
        with("created_at", json!(SQLISH)),
        "created_at",
    ));
    cases.push(bad("SQL as a tag", with("tags", json!([SQLISH])), "tags"));
    cases
}

pub fn frame_cases(keys: &Keys) -> Vec<Case> {
    let ev = keys.sign(now(), 1, vec![], "x").canonical_json();
    let id = hex::encode(&keys.sign(now(), 1, vec![], "x").id);
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let mut cases: Vec<Case> = [
        "not json",
        "",
        "   ",
        "[",
        "[\"EVENT\"",
        "[\"EVENT\",{\"id\":\"",
        "{}",
        "42",
        "null",
        "true",
        "\"EVENT\"",
        "[]",
        "[\"NOPE\"]",
        "[\"event\",{}]",
        "[\"Event\",{}]",
        "[1]",
        "[null]",
        "[[\"EVENT\"]]",
        "[{\"EVENT\":1}]",
        "[\"EVENT\"]",
        "[\"CLOSE\"]",
        "[\"CLOSE\",\"a\",\"b\"]",
        "[\"CLOSE\",5]",
        "[\"REQ\"]",
        "[\"COUNT\"]",
        "[\"AUTH\"]",
        "[\"AUTH\",{},{}]",
        "[\"EVENT\",\"str\"]",
        "[\"EVENT\",[]]",
        "[\"EVENT\",1]",
        "[\"EVENT\",null]",
        "[\"EVENT\",{}]",
        "[\"REQ\",1,{}]",
        "[\"REQ\",null,{}]",
        "[\"REQ\",[\"s\"],{}]",
        "[\"REQ\",\"\",{}]",
        "[\"COUNT\",\"\",{}]",
        "[\"EVENT\",\u{0}]",
        "[\"REQ\",\"a\u{1}b\",{}]",
        "1e999",
        "[\"EV\\u0045NT\",{}]",
        "\u{feff}[\"REQ\",\"bom\",{}]",
        "[\"REQ\",\"s\",{}]]",
        "[\"REQ\",\"s\",{},]",
        "[\"REQ\",\"s\",{\"kinds\":[1]}",
        "[\"REQ\",'s',{}]",
        "[\"REQ\",\"s\",{kinds:[1]}]",
        "NaN",
        "[\"\\ud800\"]",
        "[\"DROP TABLE nostr.events\"]",
    ]
    .into_iter()
    .map(|f| case(format!("frame: {f:?}"), f, Want::Notice))
    .collect();
    cases.push(case("frame: 5000-deep nesting", deep, Want::Notice));
    cases.push(case(
        "frame: REQ with a 2000-char sub id",
        format!(r#"["REQ","{}",{{}}]"#, "s".repeat(2000)),
        Want::Notice,
    ));
    cases.push(case(
        "frame: EVENT with two events",
        format!(r#"["EVENT",{ev},{ev}]"#),
        Want::Invalid {
            id,
            containing: "EVENT",
        },
    ));
    cases.push(case(
        "frame: CLOSE of a subscription never opened",
        r#"["CLOSE","never"]"#,
        Want::Silent,
    ));
    // Every truncation of a valid EVENT frame is malformed JSON: answered by
    // id once the whole id field is in, by NOTICE before that.
    let full = format!(r#"["EVENT",{ev}]"#);
    let id = serde_json::from_str::<Value>(&ev)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let id_field = format!(r#""id":"{id}""#);
    for cut in (1..full.len()).step_by(7) {
        if let Some(prefix) = full.get(..cut) {
            let want = if prefix.contains(&id_field) {
                Want::Invalid {
                    id: id.clone(),
                    containing: "malformed JSON",
                }
            } else {
                Want::Notice
            };
            cases.push(case(format!("frame: EVENT truncated at {cut}"), prefix, want));
        }
    }
    cases
}

pub fn req_cases() -> Vec<Case> {
    let req = |sub: &str, filters: &str| format!(r#"["REQ",{},{filters}]"#, json!(sub));
    let closed = |name: &str, filters: &str| case(format!("REQ: {name}"), req("f", filters), Want::Closed("f".into()));
    let eose = |name: &str, filters: &str| case(format!("REQ: {name}"), req("f", filters), Want::Eose("f".into()));
    let hex64 = "ab".repeat(32);
    let many_filters = vec!["{}"; 300].join(",");
    let seventeen = vec!["{}"; 17].join(",");
    let many_ids = json!((0..3000).map(|i| format!("{i:064x}")).collect::<Vec<_>>()).to_string();
    let many_tags = json!((0..5000).map(|i| format!("t{i}")).collect::<Vec<_>>()).to_string();
    let mut cases = vec![
        case("REQ: no filter", r#"["REQ","f"]"#, Want::Closed("f".into())),
        case("COUNT: no filter", r#"["COUNT","f"]"#, Want::Closed("f".into())),
        closed("300 filters", &many_filters),
        closed("17 filters", &seventeen),
        closed("filter is a number", "1"),
        closed("filter is an array", "[]"),
        closed("filter is null", "null"),
        closed("filter is a string", "\"x\""),
        closed("ids not hex", r#"{"ids":["XYZ"]}"#),
        closed("ids uppercase", &format!(r#"{{"ids":["{}"]}}"#, hex64.to_uppercase())),
        closed("ids prefix", r#"{"ids":["abcd"]}"#),
        closed("ids number", r#"{"ids":[1]}"#),
        closed("ids not a list", &format!(r#"{{"ids":"{hex64}"}}"#)),
        closed("authors short", r#"{"authors":["ab"]}"#),
        closed("authors null", r#"{"authors":null}"#),
        closed("kinds -1", r#"{"kinds":[-1]}"#),
        closed("kinds 65536", r#"{"kinds":[65536]}"#),
        closed("kinds float", r#"{"kinds":[1.5]}"#),
        closed("kinds string", r#"{"kinds":["1"]}"#),
        closed("kinds scalar", r#"{"kinds":1}"#),
        closed("#e number", r##"{"#e":[1]}"##),
        closed("#e scalar", r##"{"#e":"x"}"##),
        closed("#e null value", r##"{"#e":[null]}"##),
        closed("multi-letter tag", r##"{"#ee":["x"]}"##),
        closed("bare #", r##"{"#":["x"]}"##),
        closed("non-ASCII tag letter", r##"{"#é":["x"]}"##),
        closed("limit -1", r#"{"limit":-1}"#),
        closed("limit float", r#"{"limit":1.5}"#),
        closed("limit string", r#"{"limit":"10"}"#),
        closed("limit 1e30", r#"{"limit":1e30}"#),
        closed("limit null", r#"{"limit":null}"#),
        closed("limit 2^64", r#"{"limit":18446744073709551616}"#),
        closed("limit 1e999", r#"{"limit":1e999}"#),
        closed("since -1", r#"{"since":-1}"#),
        closed("since string", r#"{"since":"1"}"#),
        closed("until float", r#"{"until":1.5}"#),
        closed("until 2^63", r#"{"until":9223372036854775808}"#),
        closed("unknown field", r#"{"foo":1}"#),
        closed("SQL as a field name", &format!(r#"{{{}:1}}"#, json!(SQLISH))),
        closed("search number", r#"{"search":1}"#),
        closed("one bad filter among good ones", r#"{},{"kinds":[1]},{"limit":-5}"#),
        eose("limit 2^64-1", r#"{"limit":18446744073709551615}"#),
        eose("limit 0", r#"{"limit":0}"#),
        eose("since > until", r#"{"since":2000,"until":1000}"#),
        eose(
            "since = until = 2^63-1",
            r#"{"since":9223372036854775807,"until":9223372036854775807}"#,
        ),
        eose("empty lists", r##"{"ids":[],"authors":[],"kinds":[],"#e":[]}"##),
        eose("3000 ids", &format!(r#"{{"ids":{many_ids}}}"#)),
        eose("3000 authors", &format!(r#"{{"authors":{many_ids}}}"#)),
        eose("5000 tag values", &format!(r##"{{"#t":{many_tags}}}"##)),
        eose("tag value with NUL", r##"{"#t":["a\u0000b"]}"##),
        eose(
            "SQL in tag values",
            &format!(r##"{{"#t":[{}],"#e":[{}]}}"##, json!(SQLISH), json!(SQLISH)),
        ),
        eose("SQL in search", &format!(r#"{{"search":{}}}"#, json!(SQLISH))),
        eose(
            "search syntax noise",
            r#"{"search":"\"unclosed !!! - or or & | :* <->"}"#,
        ),
        eose("search with NUL", r#"{"search":"a\u0000b"}"#),
        eose("300-byte tag value", &format!(r##"{{"#t":["{}"]}}"##, "v".repeat(300))),
    ];
    // Subscription ids: too long (but short enough to echo), odd characters.
    let long = "s".repeat(65);
    cases.push(case(
        "REQ: 65-char sub id",
        req(&long, "{}"),
        Want::Closed(long.clone()),
    ));
    for sub in ["a\u{0}b", "q\"\\'", SQLISH, "😀", " ", "\u{2028}", "EOSE"] {
        cases.push(case(
            format!("REQ: sub id {sub:?}"),
            req(sub, r#"{"kinds":[1]}"#),
            Want::Eose(sub.to_owned()),
        ));
    }
    cases.push(case(
        "COUNT: bad limit",
        r#"["COUNT","c",{"limit":-1}]"#,
        Want::Closed("c".into()),
    ));
    cases.push(case(
        "COUNT: unknown field",
        r#"["COUNT","c",{"foo":[]}]"#,
        Want::Closed("c".into()),
    ));
    cases
}
