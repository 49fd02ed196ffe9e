//! WebSocket connections to a relay and the few NIP-01 frames the workloads
//! read. Every socket gets TCP_NODELAY (small frames would otherwise wait for
//! delayed ACKs and measure Nagle, not the relay) and may be bound to a chosen
//! 127.0.0.x source address, so many connections need not share one client IP.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::error::BenchError;

pub type Ws = WebSocketStream<TcpStream>;

#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, BenchError> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| BenchError::Usage(format!("relay URL must start with ws://, got {url}")))?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let addr = hostport
            .to_socket_addrs()
            .map_err(BenchError::io(format!("resolve {hostport}")))?
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{hostport} resolves to no address")))?;
        Ok(Target {
            url: url.to_owned(),
            addr,
        })
    }
}

/// Source addresses 127.0.0.1 ..= 127.0.0.n (the whole 127/8 is loopback on Linux).
pub fn sources(n: usize) -> Vec<IpAddr> {
    (1..=n.clamp(1, 250))
        .map(|i| IpAddr::from([127, 0, 0, i as u8]))
        .collect()
}

/// Opens a WebSocket; `lean` shrinks the buffers for the idle-connection test,
/// where tungstenite's 128 KiB default read buffer would dominate client memory.
pub async fn connect(target: &Target, source: Option<IpAddr>, lean: bool) -> Result<Ws, BenchError> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(BenchError::io("socket"))?;
    if let Some(ip) = source.filter(|_| target.addr.ip().is_loopback()) {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(BenchError::io(format!("bind {ip}")))?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(BenchError::io(format!("connect {}", target.addr)))?;
    stream.set_nodelay(true).map_err(BenchError::io("TCP_NODELAY"))?;
    let config = if lean {
        WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
    } else {
        WebSocketConfig::default()
    };
    let (ws, _response) = tokio_tungstenite::client_async_with_config(target.url.as_str(), stream, Some(config))
        .await
        .map_err(BenchError::ws("handshake"))?;
    Ok(ws)
}

pub async fn send(ws: &mut Ws, text: String) -> Result<(), BenchError> {
    ws.send(Message::text(text)).await.map_err(BenchError::ws("send"))
}

/// The next text frame, skipping pings and binary frames; `None` when closed.
pub async fn next_text(ws: &mut Ws, wait: Duration) -> Result<Option<String>, BenchError> {
    loop {
        let msg = tokio::time::timeout(wait, ws.next())
            .await
            .map_err(|_| BenchError::Timeout(format!("no frame from the relay in {wait:?}")))?;
        match msg {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Text(t))) => return Ok(Some(t.as_str().to_owned())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(BenchError::ws("read")(e)),
        }
    }
}

/// The relay frames the workloads care about. EVENT frames are read without a
/// full JSON parse: a subscriber may receive tens of thousands per second on
/// the same two cores as the relay, and only the subscription and id matter.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    Ok {
        id: String,
        accepted: bool,
        message: String,
    },
    Event {
        sub: &'a str,
        id: &'a str,
    },
    Eose {
        sub: String,
    },
    /// NIP-45: `["COUNT", sub, {"count": n, ...}]`; `None` when the body has
    /// no integer count.
    Count {
        sub: String,
        count: Option<u64>,
    },
    Closed {
        sub: String,
        message: String,
    },
    Notice(String),
    Other,
}

pub fn parse(text: &str) -> Frame<'_> {
    if let Some(rest) = text.strip_prefix(r#"["EVENT",""#) {
        if let Some(end) = rest.find('"') {
            let sub = rest.get(..end).unwrap_or("");
            // Keys are the only unescaped `"id":"` in an event: inside strings
            // the quotes would be escaped.
            let id = rest
                .find(r#""id":""#)
                .and_then(|at| rest.get(at + 6..at + 6 + 64))
                .unwrap_or("");
            return Frame::Event { sub, id };
        }
    }
    let Ok(serde_json::Value::Array(parts)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Frame::Other;
    };
    let s = |i: usize| parts.get(i).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    match parts.first().and_then(|v| v.as_str()) {
        Some("OK") => Frame::Ok {
            id: s(1),
            accepted: parts.get(2).and_then(|v| v.as_bool()).unwrap_or(false),
            message: s(3),
        },
        Some("EOSE") => Frame::Eose { sub: s(1) },
        Some("COUNT") => Frame::Count {
            sub: s(1),
            count: parts.get(2).and_then(|b| b.get("count")).and_then(|c| c.as_u64()),
        },
        Some("CLOSED") => Frame::Closed {
            sub: s(1),
            message: s(2),
        },
        Some("NOTICE") => Frame::Notice(s(1)),
        _ => Frame::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frames() {
        let id = "a".repeat(64);
        let ev = format!(r#"["EVENT","s1",{{"content":"\"id\":\"x","id":"{id}","kind":1}}]"#);
        assert_eq!(parse(&ev), Frame::Event { sub: "s1", id: &id });
        assert_eq!(
            parse(r#"["OK","ab",false,"duplicate: have it"]"#),
            Frame::Ok {
                id: "ab".into(),
                accepted: false,
                message: "duplicate: have it".into()
            }
        );
        assert_eq!(parse(r#"["EOSE","q"]"#), Frame::Eose { sub: "q".into() });
        assert_eq!(
            parse(r#"["COUNT","c",{"count":123,"approximate":false}]"#),
            Frame::Count {
                sub: "c".into(),
                count: Some(123)
            }
        );
        assert_eq!(
            parse(r#"["COUNT","c",{}]"#),
            Frame::Count {
                sub: "c".into(),
                count: None
            }
        );
        assert_eq!(parse("nonsense"), Frame::Other);
    }
}
