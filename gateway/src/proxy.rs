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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

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

/// What a PROXY protocol header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The client's address as the load balancer saw it.
    Client(SocketAddr),
    /// `LOCAL` (v2, e.g. the balancer's health check) or `UNKNOWN` (v1):
    /// the connection is the balancer's own; its address stands.
    Own,
}

const V1_PREFIX: &[u8] = b"PROXY ";
/// A v1 line is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Parses a PROXY header at the start of `buf`: the header and its length,
/// `Ok(None)` if more bytes are needed.
pub fn parse_proxy(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf.get(..n) == V2_SIGNATURE.get(..n) {
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf.get(..n) == V1_PREFIX.get(..n) {
        return parse_v1(buf);
    }
    Err(ProxyError::Malformed("no PROXY signature"))
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::Malformed("v1 line too long"))
        } else {
            Ok(None)
        };
    };
    if end + 2 > V1_MAX {
        return Err(ProxyError::Malformed("v1 line too long"));
    }
    let line = std::str::from_utf8(buf.get(..end).unwrap_or_default())
        .map_err(|_| ProxyError::Malformed("v1 line is not text"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => ProxyHeader::Own,
        ["PROXY", family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = match *family {
                "TCP4" => src.parse::<Ipv4Addr>().map(IpAddr::V4),
                _ => src.parse::<Ipv6Addr>().map(IpAddr::V6),
            }
            .map_err(|_| ProxyError::Malformed("v1 source address"))?;
            let port: u16 = sport.parse().map_err(|_| ProxyError::Malformed("v1 source port"))?;
            ProxyHeader::Client(SocketAddr::new(ip, port))
        }
        _ => return Err(ProxyError::Malformed("v1 fields")),
    };
    Ok(Some((header, end + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(&[ver_cmd, family, hi, lo]) = buf.get(12..16) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version"));
    }
    let total = 16 + usize::from(u16::from_be_bytes([hi, lo]));
    let Some(body) = buf.get(16..total) else {
        return Ok(None);
    };
    let header = match ver_cmd & 0x0f {
        0 => ProxyHeader::Own,
        1 => match family >> 4 {
            // AF_INET: source, destination (4 bytes each), then the ports.
            1 => match body.get(..12) {
                Some(&[a, b, c, d, _, _, _, _, p0, p1, _, _]) => {
                    ProxyHeader::Client(SocketAddr::new([a, b, c, d].into(), u16::from_be_bytes([p0, p1])))
                }
                _ => return Err(ProxyError::Malformed("v2 IPv4 addresses truncated")),
            },
            // AF_INET6: 16-byte addresses.
            2 => {
                let src: [u8; 16] = body
                    .get(..16)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(ProxyError::Malformed("v2 IPv6 addresses truncated"))?;
                let port = body
                    .get(32..34)
                    .map(|p| u16::from_be_bytes([p.first().copied().unwrap_or(0), p.get(1).copied().unwrap_or(0)]))
                    .ok_or(ProxyError::Malformed("v2 IPv6 addresses truncated"))?;
                ProxyHeader::Client(SocketAddr::new(Ipv6Addr::from(src).into(), port))
            }
            // AF_UNSPEC or AF_UNIX: no address we can use.
            0 | 3 => ProxyHeader::Own,
            _ => return Err(ProxyError::Malformed("v2 address family")),
        },
        _ => return Err(ProxyError::Malformed("v2 command")),
    };
    Ok(Some((header, total)))
}

/// Largest v2 header: 16 bytes and a 16-bit length.
const V2_MAX: usize = 16 + u16::MAX as usize;

/// Reads the PROXY header that starts the connection; returns it with the
/// bytes read past it (the start of the client's request).
pub async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(ProxyHeader, Vec<u8>), ProxyError> {
    let read = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| ProxyError::Io(e.to_string()))?;
            if n == 0 {
                return Err(ProxyError::Eof);
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some((header, len)) = parse_proxy(&buf)? {
                return Ok((header, buf.split_off(len.min(buf.len()))));
            }
            if buf.len() > V2_MAX {
                return Err(ProxyError::Malformed("header too long"));
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ProxyError::Timeout)?
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

    #[test]
    fn proxy_v1_lines() {
        let line = b"PROXY TCP4 198.51.100.7 10.0.0.1 51234 7777\r\nGET / HTTP/1.1\r\n";
        let (header, len) = parse_proxy(line).ok().flatten().unwrap_or((ProxyHeader::Own, 0));
        assert_eq!(
            header,
            ProxyHeader::Client("198.51.100.7:51234".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        assert_eq!(line.get(len..), Some(b"GET / HTTP/1.1\r\n".as_slice()));
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert!(matches!(parse_proxy(v6), Ok(Some((ProxyHeader::Client(a), _))) if a.ip() == ip("2001:db8::1")));
        assert!(matches!(
            parse_proxy(b"PROXY UNKNOWN\r\n"),
            Ok(Some((ProxyHeader::Own, 15)))
        ));
        assert_eq!(parse_proxy(b"PROXY TCP4 1.2"), Ok(None), "needs more bytes");
        assert_eq!(parse_proxy(b"PRO"), Ok(None));
        for bad in [
            b"PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n".as_slice(),
            b"PROXY TCP4 ::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 10.0.0.1 99999 2\r\n",
            b"PROXY GARBAGE\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse_proxy(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(parse_proxy(&long).is_err(), "no CRLF within 107 bytes");
    }

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let len = u16::try_from(body.len()).unwrap_or(0).to_be_bytes();
        [V2_SIGNATURE.as_slice(), &[0x20 | cmd, family], &len, body].concat()
    }

    #[test]
    fn proxy_v2_headers() {
        let mut body = vec![198, 51, 100, 8, 10, 0, 0, 1];
        body.extend_from_slice(&4242u16.to_be_bytes());
        body.extend_from_slice(&7777u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0, 1, 0]); // a TLV after the addresses
        let header = [v2(1, 0x11, &body), b"GET".to_vec()].concat();
        let parsed = parse_proxy(&header).ok().flatten();
        assert_eq!(
            parsed,
            Some((
                ProxyHeader::Client("198.51.100.8:4242".parse().unwrap_or_else(|e| panic!("{e}"))),
                header.len() - 3
            ))
        );
        let mut body6 = [0u8; 36].to_vec();
        body6[15] = 1;
        body6[33] = 80;
        assert!(matches!(
            parse_proxy(&v2(1, 0x21, &body6)),
            Ok(Some((ProxyHeader::Client(a), 52))) if a == "[::1]:80".parse().unwrap_or_else(|e| panic!("{e}"))
        ));
        assert!(matches!(parse_proxy(&v2(0, 0, &[])), Ok(Some((ProxyHeader::Own, 16)))));
        assert_eq!(parse_proxy(header.get(..20).unwrap_or_default()), Ok(None));
        assert!(parse_proxy(&v2(1, 0x11, &[1, 2, 3])).is_err(), "truncated addresses");
        assert!(parse_proxy(&v2(7, 0x11, &body)).is_err(), "unknown command");
        let mut bad_version = v2(1, 0x11, &body);
        bad_version[12] = 0x31;
        assert!(parse_proxy(&bad_version).is_err());
    }

    #[tokio::test]
    async fn reads_the_header_and_keeps_what_follows() {
        let (mut a, mut b) = tokio::io::duplex(256);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"PROXY TCP4 198.51.100.7 10.0.0.1 1 2\r\nGET /")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (header, rest) = read_proxy_header(&mut b, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(header, ProxyHeader::Client(_)));
        assert_eq!(rest, b"GET /");
        drop(a);
        let (mut a, mut b) = tokio::io::duplex(256);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"PROXY TCP4")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(a);
        assert_eq!(
            read_proxy_header(&mut b, Duration::from_secs(5)).await.err(),
            Some(ProxyError::Eof)
        );
    }
}
