//! Which URL the relay believes a management request was sent to, for the
//! NIP-98 `u` tag.
//!
//! With `relay_url` configured, that URL and nothing else: it is what the
//! operator declared the relay to be, whatever `Host` a request carries. A
//! signed request for another service that happens to share an admin key
//! cannot be replayed here by forging a header. Without it, the request's own
//! URL: the `Host` header and path, with the scheme and host a trusted proxy
//! names (`Forwarded: proto=…;host=…`, `X-Forwarded-Proto`,
//! `X-Forwarded-Host`); the gateway itself speaks plain HTTP.
//!
//! The comparison is by what identifies an endpoint, not by bytes: NIP-86
//! says the `u` tag is "the relay URL", and clients write it as `wss://` or
//! `https://`, with or without a trailing `/` or a default port. `ws` and
//! `http` are one endpoint, `wss` and `https` another; the host is compared
//! without case; the path and query exactly.

use crate::http::RequestHead;

/// A URL reduced to what names one relay endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    secure: bool,
    host: String,
    /// `None` for the scheme's default port.
    port: Option<u16>,
    /// The path (`/` when empty) and query.
    path: String,
}

impl Endpoint {
    /// Parses a `ws`, `wss`, `http` or `https` URL; `None` for anything else.
    pub fn parse(url: &str) -> Option<Endpoint> {
        let (scheme, rest) = url.trim().split_once("://")?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "wss" | "https" => true,
            "ws" | "http" => false,
            _ => return None,
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return None;
        }
        Endpoint::from_parts(secure, authority, path)
    }

    /// An endpoint from a scheme, a `host[:port]` (a `Host` header's form)
    /// and a path with its query.
    fn from_parts(secure: bool, authority: &str, path: &str) -> Option<Endpoint> {
        let (host, port) = split_port(authority)?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let default = if secure { 443 } else { 80 };
        let path = if path.is_empty() || path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Some(Endpoint {
            secure,
            host,
            port: port.filter(|p| *p != default),
            path,
        })
    }
}

/// `host` and its port from `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

/// The endpoint a request reached: the configured relay URL when there is
/// one; else the request's own, believing `Forwarded` / `X-Forwarded-*`
/// only when `trusted` (the peer is a trusted proxy). `None` when it cannot
/// be known (no `Host`), and then no `u` tag matches.
pub fn served(relay_url: &str, head: &RequestHead, trusted: bool) -> Option<Endpoint> {
    if !relay_url.trim().is_empty() {
        return Endpoint::parse(relay_url);
    }
    let (mut proto, mut host) = (None, None);
    if trusted {
        // The last element is what the proxy next to us wrote; earlier ones
        // may be the client's own claims.
        if let Some(last) = head.header_values("forwarded").flat_map(|v| v.split(',')).last() {
            for pair in last.split(';') {
                if let Some((name, value)) = pair.split_once('=') {
                    let value = value.trim().trim_matches('"');
                    match name.trim().to_ascii_lowercase().as_str() {
                        "proto" => proto = Some(value.to_owned()),
                        "host" => host = Some(value.to_owned()),
                        _ => {}
                    }
                }
            }
        }
        let last = |name: &str| {
            head.header_values(name)
                .flat_map(|v| v.split(','))
                .last()
                .map(|v| v.trim().to_owned())
        };
        proto = proto.or_else(|| last("x-forwarded-proto"));
        host = host.or_else(|| last("x-forwarded-host"));
    }
    let host = host.or_else(|| head.header("host").map(str::to_owned))?;
    let secure = proto.is_some_and(|p| matches!(p.to_ascii_lowercase().as_str(), "https" | "wss"));
    Endpoint::from_parts(secure, host.trim(), &head.path)
}

/// Whether the `u` tag `url` names `served`.
pub fn matches(url: &str, served: Option<&Endpoint>) -> bool {
    served.is_some_and(|s| Endpoint::parse(url).as_ref() == Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "POST".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            head_len: 0,
        }
    }

    #[test]
    fn urls_name_endpoints_leniently_where_clients_differ() {
        let e = Endpoint::parse("wss://Relay.Example.com").expect("parses");
        for same in [
            "https://relay.example.com/",
            "wss://relay.example.com:443/",
            "https://RELAY.example.com./",
            "wss://relay.example.com/#x",
        ] {
            assert_eq!(Endpoint::parse(same).as_ref(), Some(&e), "{same}");
        }
        for other in [
            "ws://relay.example.com/",
            "https://relay.example.com:8443/",
            "https://relay.example.com/admin",
            "https://relay.example.com/?x=1",
            "https://evil.example/",
            "https://user@relay.example.com/",
            "ftp://relay.example.com/",
            "relay.example.com",
        ] {
            assert_ne!(Endpoint::parse(other).as_ref(), Some(&e), "{other}");
        }
        let v6 = Endpoint::parse("http://[::1]:7777/").expect("v6");
        assert_eq!(Endpoint::parse("ws://[::1]:7777").as_ref(), Some(&v6));
        assert!(Endpoint::parse("http://[::1/").is_none());
        assert!(Endpoint::parse("http://host:99999/").is_none());
    }

    #[test]
    fn the_configured_url_wins_over_any_header() {
        let h = head("/", &[("Host", "evil.example")]);
        let served = served("wss://relay.example.com", &h, false);
        assert!(matches("https://relay.example.com", served.as_ref()));
        assert!(!matches("http://evil.example/", served.as_ref()));
    }

    #[test]
    fn without_one_the_request_names_itself() {
        let h = head("/", &[("Host", "127.0.0.1:7777")]);
        let s = served("", &h, false);
        assert!(matches("http://127.0.0.1:7777/", s.as_ref()));
        assert!(matches("ws://127.0.0.1:7777", s.as_ref()));
        assert!(!matches("https://127.0.0.1:7777/", s.as_ref()), "plain HTTP here");
        assert!(served("", &head("/", &[]), false).is_none(), "no Host, no URL");
        let q = head("/path?x=1", &[("Host", "h")]);
        assert!(matches("http://h/path?x=1", served("", &q, false).as_ref()));
    }

    #[test]
    fn proxies_name_scheme_and_host_only_when_trusted() {
        let h = head(
            "/",
            &[
                ("Host", "10.0.0.5:7777"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "relay.example.com"),
            ],
        );
        assert!(matches("wss://relay.example.com", served("", &h, true).as_ref()));
        assert!(matches("http://10.0.0.5:7777/", served("", &h, false).as_ref()));
        let f = head(
            "/",
            &[
                ("Host", "10.0.0.5"),
                (
                    "Forwarded",
                    "proto=http;host=spoofed.example, for=1.2.3.4;proto=https;host=\"relay.example.com\"",
                ),
            ],
        );
        assert!(matches("https://relay.example.com/", served("", &f, true).as_ref()));
    }
}
