//! The client's address when the relay sits behind a reverse proxy or a TCP
//! load balancer.
//!
//! Per-IP limits must see the client, not the proxy. Two ways carry the
//! client's address to us: HTTP headers a reverse proxy adds
//! (`Forwarded`, RFC 7239, or the older `X-Forwarded-For`), and the PROXY
//! protocol header a TCP load balancer sends before any byte of the client
//! (version 1, text, or version 2, binary). Anyone can send either, so they
//! are believed only from peers in the configured list of trusted proxies;
//! from anyone else they are ignored and the socket's address is the
//! client's.

mod header;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use thiserror::Error;

pub use header::{parse_proxy, read_proxy_header, ProxyHeader};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("invalid address or network `{0}` (expected e.g. 10.0.0.1, 10.0.0.0/8 or fd00::/8)")]
    Cidr(String),
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("connection closed before a full PROXY protocol header")]
    Eof,
    #[error("timed out waiting for the PROXY protocol header")]
    Timeout,
    #[error("i/o: {0}")]
    Io(String),
}

/// An address or a network (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = ProxyError;

    fn from_str(s: &str) -> Result<Cidr, ProxyError> {
        let bad = || ProxyError::Cidr(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let net = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { net, prefix })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let shift = bits.saturating_sub(u32::from(prefix));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer)
/// as plain IPv4, so `10.0.0.0/8` covers them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The peers whose forwarding headers and PROXY headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(list: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(list)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request that reached us from `peer`, by the
    /// `Forwarded` headers (or, if there are none, `X-Forwarded-For`) in
    /// `headers`. Each proxy appends the address it received from, so the
    /// list is walked from the right while the hop that vouches for the next
    /// address is trusted; the first address no trusted proxy added is the
    /// client. An unknown or obfuscated hop ends the walk at the proxy
    /// before it.
    pub fn client_addr<'a>(&self, peer: IpAddr, headers: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> IpAddr {
        let mut client = canonical(peer);
        if !self.contains(client) {
            return client;
        }
        let named = |name: &'static str| {
            headers
                .clone()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let mut hops: Vec<Option<IpAddr>> = named("forwarded").flat_map(forwarded_for).collect();
        if hops.is_empty() {
            hops = named("x-forwarded-for").flat_map(x_forwarded_for).collect();
        }
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) => client = canonical(ip),
                None => break,
            }
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// The `for=` address of each element of a `Forwarded` header value (RFC
/// 7239 section 4); `None` for an element whose `for` is missing, `unknown`,
/// obfuscated (`_hidden`) or unparsable.
pub fn forwarded_for(value: &str) -> Vec<Option<IpAddr>> {
    split_outside_quotes(value, ',')
        .into_iter()
        .map(|element| {
            split_outside_quotes(element, ';').into_iter().find_map(|pair| {
                let (name, v) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_addr(unquote(v.trim())))
            })?
        })
        .collect()
}

/// The addresses of an `X-Forwarded-For` value, `None` where one does not
/// parse.
pub fn x_forwarded_for(value: &str) -> Vec<Option<IpAddr>> {
    value.split(',').map(|v| node_addr(v.trim())).collect()
}

/// An RFC 7239 node: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]` or
/// `[2001:db8::17]:4711`; some proxies write bare IPv6 too.
fn node_addr(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = node.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

/// Splits at `sep` outside double quotes (`"[::1]:80"` holds colons, and a
/// quoted string may hold separators).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(s.get(start..i).unwrap_or_default().trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or_default().trim());
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            list.iter()
                .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
                .collect(),
        )
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!net.contains(ip("11.0.0.1")));
        let one: Cidr = "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "fd00::/8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "host.example", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_are_believed_from_trusted_peers_only() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        let h = |pairs: &'static [(&'static str, &'static str)]| pairs.iter().copied();
        // The proxy's own address is trusted: the rightmost untrusted hop wins.
        assert_eq!(
            t.client_addr(ip("127.0.0.1"), h(&[("X-Forwarded-For", "203.0.113.5")])),
            ip("203.0.113.5")
        );
        assert_eq!(
            t.client_addr(
                ip("127.0.0.1"),
                h(&[("x-forwarded-for", "198.51.100.1, 203.0.113.5, 10.0.0.7")])
            ),
            ip("203.0.113.5"),
            "a client cannot push its claim past an untrusted hop"
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            t.client_addr(ip("192.0.2.1"), h(&[("X-Forwarded-For", "203.0.113.5")])),
            ip("192.0.2.1")
        );
        // Forwarded wins over X-Forwarded-For, and understands its forms.
        assert_eq!(
            t.client_addr(
                ip("127.0.0.1"),
                h(&[
                    ("X-Forwarded-For", "203.0.113.5"),
                    ("Forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https"),
                ])
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            t.client_addr(
                ip("127.0.0.1"),
                h(&[("Forwarded", "for=192.0.2.60;by=10.0.0.1, for=10.0.0.2")])
            ),
            ip("192.0.2.60"),
            "several elements, the last one a trusted proxy"
        );
        assert_eq!(
            t.client_addr(ip("127.0.0.1"), h(&[("Forwarded", "for=unknown")])),
            ip("127.0.0.1"),
            "an unknown hop leaves the proxy's address"
        );
        assert_eq!(
            t.client_addr(ip("127.0.0.1"), h(&[("X-Forwarded-For", "not an address")])),
            ip("127.0.0.1")
        );
        assert_eq!(t.client_addr(ip("127.0.0.1"), h(&[])), ip("127.0.0.1"));
        assert_eq!(
            forwarded_for("for=192.0.2.43:47011, for=_hidden, by=x"),
            vec![Some(ip("192.0.2.43")), None, None]
        );
    }
}
