//! The PROXY protocol (version 1, a text line, and version 2, binary) that
//! TCP load balancers send before the client's first byte, naming the
//! client's address. Parsed here; whether it is believed is the caller's
//! decision (only from a trusted balancer).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::ProxyError;

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
