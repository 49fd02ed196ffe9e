use super::*;
use nostr_pg_core::sign::Keys;

fn limits() -> Limits {
    Limits {
        max_filters: 2,
        max_subid_length: 8,
        max_event_tags: 2,
        max_content_length: 5,
        ..Limits::default()
    }
}

fn refusal(text: &str) -> Refusal {
    match parse_frame(text, &limits()) {
        Err(r) => r,
        Ok(m) => panic!("expected a refusal for {text}, got {m:?}"),
    }
}

#[test]
fn parses_every_verb() {
    let l = limits();
    assert!(
        matches!(parse_frame(r#"["EVENT",{"id":"x"}]"#, &l), Ok(ClientMessage::Event { raw }) if raw == r#"{"id":"x"}"#)
    );
    match parse_frame(r#"["REQ","s1",{"kinds":[1]},{"limit":2}]"#, &l) {
        Ok(ClientMessage::Req { sub_id, filters }) => {
            assert_eq!(sub_id, "s1");
            assert_eq!(filters.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_frame(r#"["COUNT","c",{}]"#, &l),
        Ok(ClientMessage::Count { .. })
    ));
    assert!(matches!(parse_frame(r#"["CLOSE","s1"]"#, &l), Ok(ClientMessage::Close { sub_id }) if sub_id == "s1"));
    assert!(matches!(
        parse_frame(r#" ["AUTH", {}] "#, &l),
        Ok(ClientMessage::Auth { .. })
    ));
}

#[test]
fn every_malformed_frame_gets_a_clear_answer() {
    assert_eq!(refusal("not json").target, Target::Notice);
    assert_eq!(refusal("{}").error, FrameError::NotArray);
    assert_eq!(refusal("[]").error, FrameError::NotArray);
    assert_eq!(refusal("[1,2]").error, FrameError::NotArray);
    assert_eq!(refusal(r#"["HELLO"]"#).error, FrameError::UnknownVerb("HELLO".into()));
    assert_eq!(refusal(r#"["EVENT"]"#).target, Target::Notice);
    assert_eq!(refusal(r#"["EVENT",{"id":"abc"},1]"#).target, Target::Ok("abc".into()));
    assert_eq!(refusal(r#"["REQ"]"#).target, Target::Notice);
    assert_eq!(refusal(r#"["REQ",5,{}]"#).target, Target::Notice);
    assert_eq!(refusal(r#"["REQ","",{}]"#).target, Target::Notice);
    let long = refusal(r#"["REQ","123456789",{}]"#);
    assert_eq!(
        (long.error, long.target),
        (FrameError::SubId { max: 8 }, Target::Closed("123456789".into()))
    );
    assert_eq!(refusal(r#"["REQ","s"]"#).target, Target::Closed("s".into()));
    assert_eq!(
        refusal(r#"["REQ","s",{},{},{}]"#).error,
        FrameError::TooManyFilters { got: 3, max: 2 }
    );
    assert_eq!(refusal(r#"["CLOSE"]"#).target, Target::Notice);
    let r = refusal(r#"["REQ","s"]"#).reply();
    assert!(r.starts_with(r#"["CLOSED","s","invalid: "#), "{r}");
    assert!(refusal("[")
        .reply()
        .starts_with(r#"["NOTICE","invalid: malformed JSON"#));
}

#[test]
fn hostile_input_gets_a_clear_answer() {
    let l = limits();
    const NOT_A_MESSAGE: &str = r#"["NOTICE","invalid: a message must be a JSON array starting with a verb string"]"#;
    const MALFORMED: &str = r#"["NOTICE","invalid: malformed JSON"#;
    // (input, the start of the answer). Frames whose shape is right are
    // accepted here; their filters and events are judged later.
    let cases = [
        ("", MALFORMED),
        ("\0", MALFORMED),
        ("[\"EVENT\",", MALFORMED),
        ("1e999", MALFORMED),
        ("[\"\\u0000\"]", NOT_A_MESSAGE),
        ("[null]", NOT_A_MESSAGE),
        ("[[[[[[[[[[[[]]]]]]]]]]]]", NOT_A_MESSAGE),
        ("[\"REQ\",\"s\",[]]", "accepted Req"),
        ("[\"REQ\",\"s\",null]", "accepted Req"),
        ("[\"EVENT\",\"str\"]", "accepted Event"),
        ("[\"REQ\",\"\u{1F600}\",{}]", "accepted Req"),
    ];
    for (input, want) in cases {
        let answer = match parse_frame(input, &l) {
            Ok(m) => format!("accepted {m:?}"),
            Err(r) => r.reply(),
        };
        assert!(answer.starts_with(want), "{input:?} => {answer}");
    }
    let deep = "[".repeat(10_000);
    assert!(parse_frame(&deep, &l).is_err_and(|r| r.reply().starts_with(MALFORMED)));
    // The filters of an accepted REQ frame are refused with CLOSED.
    for bad in ["[]", "null", "1", r#"{"kinds":"x"}"#] {
        let raw = serde_json::value::RawValue::from_string(bad.to_owned()).unwrap_or_else(|e| panic!("{e}"));
        let refusal = parse_filters(&[&*raw], "s", 500).expect_err(bad);
        assert!(
            refusal.reply().starts_with(r#"["CLOSED","s","invalid: "#),
            "{bad}: {}",
            refusal.reply()
        );
    }
}

#[test]
fn filters_are_checked_and_joined() {
    let l = limits();
    let Ok(ClientMessage::Req { filters, .. }) = parse_frame(r##"["REQ","s",{"kinds":[1]}, {"#t":["x"]}]"##, &l) else {
        panic!("REQ expected")
    };
    let (parsed, json) = parse_filters(&filters, "s", 500).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(parsed.0.len(), 2);
    // No limit: the gateway's cap is made explicit (the extension's own is larger).
    assert_eq!(json, r##"[{"kinds":[1],"limit":500},{"#t":["x"],"limit":500}]"##);
    let Ok(ClientMessage::Req { filters, .. }) = parse_frame(
        r##"["REQ","s",{"limit":7, "kinds":[1]},{"limit":18446744073709551615}]"##,
        &l,
    ) else {
        panic!("REQ expected")
    };
    let (parsed, json) = parse_filters(&filters, "s", 500).unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(
        json, r##"[{"limit":7, "kinds":[1]},{"limit":500}]"##,
        "within the cap: verbatim"
    );
    assert_eq!(
        parsed.0.iter().map(|f| f.limit).collect::<Vec<_>>(),
        vec![Some(7), Some(500)]
    );
    let Ok(ClientMessage::Req { filters, .. }) = parse_frame(r#"["REQ","s",{"kinds":"x"}]"#, &l) else {
        panic!("REQ expected")
    };
    let err = parse_filters(&filters, "s", 500)
        .err()
        .map(|r| r.reply())
        .unwrap_or_default();
    assert!(err.starts_with(r#"["CLOSED","s","invalid: `kinds`"#), "{err}");
}

#[test]
fn events_are_shape_checked_before_batching() {
    let keys = Keys::from_seed("protocol");
    let ok_event = keys.sign(1, 1, vec![], "hi").canonical_json();
    assert!(check_event(&ok_event, &limits()).is_ok());

    let long = keys.sign(1, 1, vec![], "too long").canonical_json();
    let r = check_event(&long, &limits()).err().map(|r| r.target);
    assert!(matches!(r, Some(Target::Ok(_))));

    let tags = nostr_pg_core::sign::tags(&[&["t", "a"], &["t", "b"], &["t", "c"]]);
    let many = keys.sign(1, 1, tags, "").canonical_json();
    assert!(matches!(
        check_event(&many, &limits()).err().map(|r| r.error),
        Some(FrameError::TooManyTags { got: 3, max: 2 })
    ));

    let missing_sig = r#"{"id":"abc","kind":1}"#;
    let r = check_event(missing_sig, &limits())
        .err()
        .map(|r| r.reply())
        .unwrap_or_default();
    assert!(r.starts_with(r#"["OK","abc",false,"invalid: "#), "{r}");
    assert_eq!(
        check_event("[]", &limits()).err().map(|r| r.target),
        Some(Target::Notice)
    );
    let big = Limits {
        max_event_size: 10,
        ..limits()
    };
    assert!(matches!(
        check_event(&ok_event, &big).err().map(|r| r.error),
        Some(FrameError::EventTooLarge { .. })
    ));
}

#[test]
fn relay_frames_escape_strings_and_embed_events_verbatim() {
    assert_eq!(ok("ab", true, ""), r#"["OK","ab",true,""]"#);
    assert_eq!(
        ok("ab", false, "invalid: \"x\""),
        r#"["OK","ab",false,"invalid: \"x\""]"#
    );
    assert_eq!(event("s\n", r#"{"id":"1"}"#), "[\"EVENT\",\"s\\n\",{\"id\":\"1\"}]");
    assert_eq!(eose("s"), r#"["EOSE","s"]"#);
    assert_eq!(closed("s", "error: x"), r#"["CLOSED","s","error: x"]"#);
    assert_eq!(notice("hi"), r#"["NOTICE","hi"]"#);
    assert_eq!(auth("c"), r#"["AUTH","c"]"#);
    assert_eq!(count("s", 42), r#"["COUNT","s",{"count":42}]"#);
    for frame in [ok("\u{0}", true, "\u{1f}"), closed("\"", "\\"), notice("\u{2028}")] {
        assert!(serde_json::from_str::<Value>(&frame).is_ok(), "{frame}");
    }
}

#[test]
fn malformed_event_frames_are_answered_by_id_when_it_can_be_read() {
    let id = "ab".repeat(32);
    let limits = crate::config::Limits::default();
    // Raw control characters make the JSON invalid; the id is still readable.
    let frame = format!("[\"EVENT\",{{\"id\":\"{id}\",\"content\":\"a\nb\"}}]");
    let refusal = parse_frame(&frame, &limits).expect_err("invalid JSON");
    assert_eq!(refusal.target, Target::Ok(id.clone()));
    assert!(refusal
        .reply()
        .starts_with(&format!("[\"OK\",\"{id}\",false,\"invalid: malformed JSON")));
    // Not an id: too short, uppercase, unterminated, or not an EVENT frame.
    for bad in [
        format!("[\"EVENT\",{{\"id\":\"{}\",", &id[..63]),
        format!("[\"EVENT\",{{\"id\":\"{}\",", id.to_uppercase()),
        format!("[\"EVENT\",{{\"id\":\"{id}"),
        format!("[\"REQ\",{{\"id\":\"{id}\",\"x\":\u{1}}}]"),
        "[\"EVENT\",{\"id\":".to_owned(),
        "[\"EVENT\",{\"content\":\"\\\"id\\\":\\\"x\"".to_owned(),
    ] {
        let refusal = parse_frame(&bad, &limits).expect_err("invalid JSON");
        assert_eq!(refusal.target, Target::Notice, "{bad}");
    }
}

#[test]
fn parses_nip77_frames() {
    let l = limits();
    match parse_frame(r#"["NEG-OPEN","n",{"kinds":[1]},"6100"]"#, &l) {
        Ok(ClientMessage::NegOpen {
            sub_id,
            filter,
            message,
        }) => {
            assert_eq!(
                (sub_id.as_str(), filter.get(), message.as_str()),
                ("n", r#"{"kinds":[1]}"#, "6100")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_frame(r#"["NEG-MSG","n","61"]"#, &l),
        Ok(ClientMessage::NegMsg { sub_id, message }) if sub_id == "n" && message == "61"
    ));
    assert!(matches!(parse_frame(r#"["NEG-CLOSE","n"]"#, &l), Ok(ClientMessage::NegClose { sub_id }) if sub_id == "n"));
    // A message that is no string is answered on the reconciliation.
    let r = refusal(r#"["NEG-MSG","n",97]"#);
    assert_eq!(r.target, Target::NegErr("n".into()));
    assert!(r.reply().starts_with(r#"["NEG-ERR","n","invalid: "#), "{}", r.reply());
    assert_eq!(refusal(r#"["NEG-OPEN","n",{}]"#).target, Target::Notice);
    assert_eq!(neg_msg("n", "61ab"), r#"["NEG-MSG","n","61ab"]"#);
    assert_eq!(neg_err("n", "blocked: big"), r#"["NEG-ERR","n","blocked: big"]"#);
}
