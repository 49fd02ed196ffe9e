//! The relay's home page, for people who open its URL in a browser: name,
//! description, supported NIPs, limits, live counters, a chart of events per
//! second, the newest public events, and how to connect.
//!
//! One HTML file (`home.html`) with inline CSS and JS: no build step and no
//! external resource. Every value from the configuration or a request is
//! HTML-escaped here; events reach the page only as JSON (escaped so it
//! cannot end its `<script>` element) that the page's script inserts as
//! text. A Content-Security-Policy with a per-response nonce lets only the
//! page's own script and style run.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use serde_json::{json, Value};

use crate::activity::SAMPLE_EVERY;
use crate::db::HomeData;
use crate::info;
use crate::relay::Relay;

const TEMPLATE: &str = include_str!("home.html");
/// Characters of an event's content shown on the page.
const CONTENT_CHARS: usize = 600;

/// What a browser may load and run on the home page: its own script and
/// style, and images from itself and from the relay icon's origin.
pub fn content_security_policy(nonce: &str, icon: &str) -> String {
    let icon_source = icon_origin(icon).map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'self' data:{icon_source}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an http(s) icon URL, if it is one that can
/// stand in a CSP header as it is (the icon may have been set in SQL to
/// anything; nothing else gets into the header). `None`: no icon is shown.
fn icon_origin(icon: &str) -> Option<String> {
    let (scheme, rest) = icon.split_once("://")?;
    if !matches!(scheme, "https" | "http") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!authority.is_empty() && authority.chars().all(plain)).then(|| format!("{scheme}://{authority}"))
}

/// The live numbers, as the page's script reads them (inline at first, then
/// from `/stats.json`). `home` is `None` when the database did not answer.
pub fn stats(relay: &Relay, home: Option<&HomeData>) -> Value {
    let accepted = relay.metrics.events_accepted.load(Relaxed);
    let recent: Vec<Value> = home
        .map(|h| h.recent.iter().filter_map(|raw| summary(raw)).collect())
        .unwrap_or_default();
    json!({
        "connections": relay.metrics.connections_open.load(Relaxed),
        "subscriptions": relay.fanout.index.len(),
        "events_stored": home.map(|h| h.events_stored),
        "events_stored_estimated": home.is_some_and(|h| h.estimated),
        "events_accepted": accepted,
        "rate_interval": SAMPLE_EVERY.as_secs(),
        "rates": relay.rates.rates(Instant::now(), accepted),
        "recent": recent,
    })
}

/// The fields of a stored event the page shows, its content shortened.
fn summary(raw: &str) -> Option<Value> {
    let e: Value = serde_json::from_str(raw).ok()?;
    let content = e.get("content")?.as_str()?;
    let short: String = content.chars().take(CONTENT_CHARS).collect();
    let short = if short.len() < content.len() {
        short + "…"
    } else {
        short
    };
    Some(json!({
        "id": e.get("id")?,
        "pubkey": e.get("pubkey")?,
        "created_at": e.get("created_at")?,
        "kind": e.get("kind")?,
        "content": short,
    }))
}

/// The page. `host` is the request's `Host`, for the URL to connect to when
/// no `relay_url` is configured.
pub fn page(relay: &Relay, stats: &Value, host: Option<&str>, nonce: &str) -> String {
    let config = &relay.config;
    let url = if config.relay_url.is_empty() {
        format!("ws://{}", host.unwrap_or("this-host"))
    } else {
        config.relay_url.clone()
    };
    let http_url = match url.split_once("://") {
        Some(("wss", rest)) => format!("https://{rest}"),
        Some((_, rest)) => format!("http://{rest}"),
        None => url.clone(),
    };
    let shown = info::shown(config, &relay.info.names());
    let icon = match icon_origin(&shown.icon) {
        Some(_) => format!(
            "<img class=\"icon\" id=\"relay-icon\" src=\"{}\" alt=\"\" width=\"40\" height=\"40\">",
            escape(&shown.icon)
        ),
        None => String::new(),
    };
    let nips: String = info::supported_nips(config, relay.info.policy().as_ref())
        .iter()
        .map(|n| {
            format!("<li><a href=\"https://github.com/nostr-protocol/nips/blob/master/{n:02}.md\">NIP-{n:02}</a></li>")
        })
        .collect();
    let l = &config.limits;
    let (max_filters, max_limit) = info::query_caps(config, relay.info.policy().as_ref());
    let mut limits = vec![
        ("Largest message", bytes(l.max_message_length)),
        ("Largest event", bytes(l.max_event_size)),
        ("Subscriptions per connection", l.max_subscriptions.to_string()),
        ("Filters per subscription", max_filters.to_string()),
        ("Events per query (limit)", max_limit.to_string()),
        ("Events per second per address", l.events_per_second_per_ip.to_string()),
        (
            "Authentication (NIP-42)",
            if config.auth.required { "required" } else { "optional" }.to_owned(),
        ),
    ];
    if let Some(p) = relay.info.policy().filter(|p| p.min_pow > 0) {
        limits.push(("Proof of work (NIP-13)", format!("{} bits", p.min_pow)));
    }
    let limits: String = limits
        .iter()
        .map(|(k, v)| format!("<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v)))
        .collect();
    let contact = if config.info.contact.is_empty() {
        String::new()
    } else {
        format!("Contact: {}", config.info.contact)
    };
    render(TEMPLATE, |key| match key {
        "name" => escape(&shown.name),
        "description" => escape(&shown.description),
        "icon" => icon.clone(),
        "version" => escape(env!("CARGO_PKG_VERSION")),
        "url" => escape(&url),
        "http_url" => escape(&http_url),
        "contact" => escape(&contact),
        "nips" => nips.clone(),
        "limits" => limits.clone(),
        "stats" => script_json(stats),
        "nonce" => escape(nonce),
        _ => String::new(),
    })
}

/// A size as people read it: whole KiB or MiB where exact.
fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Fills `{{key}}` placeholders in one pass, so a value that contains a
/// placeholder is never expanded again.
fn render(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        match after.find("}}") {
            Some(end) => {
                out.push_str(&value(after.get(..end).unwrap_or_default()));
                rest = after.get(end + 2..).unwrap_or_default();
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text for HTML element content or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON to put inside a `<script>` element: no `<` (so no `</script>` or
/// `<!--`), `>` or `&` survives unescaped; the JSON value is unchanged.
pub fn script_json(value: &Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_everywhere() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let v = json!({"content": "</script><script>alert(1)</script>&"});
        let s = script_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).ok(), Some(v), "the same JSON");
    }

    #[test]
    fn placeholders_are_filled_once() {
        let out = render("<h1>{{name}}</h1>{{stats}}{{open", |k| match k {
            "name" => "{{stats}}".to_owned(),
            "stats" => "S".to_owned(),
            _ => String::new(),
        });
        assert_eq!(out, "<h1>{{stats}}</h1>S{{open");
    }

    #[test]
    fn only_a_plain_icon_origin_enters_the_policy() {
        let csp = content_security_policy("n", "https://img.example.org:8443/a.png?x=1");
        assert!(
            csp.contains("img-src 'self' data: https://img.example.org:8443;"),
            "{csp}"
        );
        for hostile in [
            "https://x.example; script-src *",
            "javascript:alert(1)",
            "https://x.example\r\nSet-Cookie: a=b",
            "data:image/png;base64,AAAA",
            "",
        ] {
            assert!(icon_origin(hostile).is_none(), "{hostile}");
            assert!(content_security_policy("n", hostile).contains("img-src 'self' data:;"));
        }
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(256 * 1024), "256 KiB");
        assert_eq!(bytes(2 << 20), "2 MiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }

    #[test]
    fn summaries_shorten_content() {
        let raw = json!({"id": "a", "pubkey": "b", "created_at": 1, "kind": 1, "tags": [], "content": "é".repeat(700), "sig": "c"});
        let s = summary(&raw.to_string()).unwrap_or_default();
        assert_eq!(
            s["content"].as_str().map(|c| c.chars().count()),
            Some(CONTENT_CHARS + 1)
        );
        assert!(summary("not json").is_none());
    }
}
