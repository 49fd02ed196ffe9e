//! A WebSocket connection to another relay, as a client: what `sync` and
//! `mirror` speak to upstream relays. Frames are parsed only as far as the
//! envelope; event JSON is kept as the relay sent it (the database parses
//! and verifies it). Bytes in both directions are counted (WebSocket
//! payloads), and messages are bounded, so a relay cannot make us hold more
//! than `max_message` bytes of one.

use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use nostr_pg_core::canonical::write_string;

/// Largest message accepted from a relay.
pub const MAX_MESSAGE: usize = 4 << 20;

#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("{url}: only ws:// and wss:// URLs")]
    Scheme { url: String },
    #[error("connecting: {0}")]
    Connect(String),
    #[error("the relay closed the connection")]
    Closed,
    #[error("websocket: {0}")]
    Ws(String),
}

/// What a relay sent, as far as this tool cares.
#[derive(Debug)]
pub enum Incoming {
    Event {
        sub: String,
        raw: Box<RawValue>,
    },
    Eose {
        sub: String,
    },
    Closed {
        sub: String,
        reason: String,
    },
    Ok {
        id: String,
        accepted: bool,
        message: String,
    },
    NegMsg {
        sub: String,
        hex: String,
    },
    NegErr {
        sub: String,
        reason: String,
    },
    Notice(String),
    /// Not a frame this tool knows (AUTH, COUNT, garbage): the reason.
    Other(String),
}

/// One frame's text as an [`Incoming`].
pub fn parse(text: &str) -> Incoming {
    let Ok(parts) = serde_json::from_str::<Vec<Box<RawValue>>>(text) else {
        return Incoming::Other("not a JSON array".into());
    };
    let string = |i: usize| -> Option<String> { serde_json::from_str::<String>(parts.get(i)?.get()).ok() };
    let Some(verb) = string(0) else {
        return Incoming::Other("no verb".into());
    };
    let parsed = match verb.as_str() {
        "EVENT" => match (string(1), parts.get(2)) {
            (Some(sub), Some(raw)) if parts.len() == 3 => Some(Incoming::Event { sub, raw: raw.clone() }),
            _ => None,
        },
        "EOSE" => string(1).map(|sub| Incoming::Eose { sub }),
        "CLOSED" => string(1).map(|sub| Incoming::Closed {
            sub,
            reason: string(2).unwrap_or_default(),
        }),
        "OK" => match (string(1), parts.get(2).map(|v| v.get())) {
            (Some(id), Some(b @ ("true" | "false"))) => Some(Incoming::Ok {
                id,
                accepted: b == "true",
                message: string(3).unwrap_or_default(),
            }),
            _ => None,
        },
        "NEG-MSG" => match (string(1), string(2)) {
            (Some(sub), Some(hex)) => Some(Incoming::NegMsg { sub, hex }),
            _ => None,
        },
        "NEG-ERR" => string(1).map(|sub| Incoming::NegErr {
            sub,
            reason: string(2).unwrap_or_default(),
        }),
        "NOTICE" => Some(Incoming::Notice(string(1).unwrap_or_default())),
        _ => None,
    };
    parsed.unwrap_or_else(|| Incoming::Other(format!("unexpected {verb} frame")))
}

/// `["VERB","sub",<json>...]` with the strings escaped.
pub fn frame(verb: &str, sub: &str, rest: &[&str]) -> String {
    let mut out = String::with_capacity(32 + rest.iter().map(|r| r.len() + 1).sum::<usize>());
    out.push('[');
    write_string(&mut out, verb);
    out.push(',');
    write_string(&mut out, sub);
    for r in rest {
        out.push(',');
        out.push_str(r);
    }
    out.push(']');
    out
}

/// `["EVENT",<event>]`.
pub fn event_frame(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 12);
    out.push_str("[\"EVENT\",");
    out.push_str(raw);
    out.push(']');
    out
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// An open connection to a relay.
pub struct Upstream {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Whether `url` is a relay URL this tool can connect to.
pub fn check_url(url: &str) -> Result<(), UpstreamError> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(())
    } else {
        Err(UpstreamError::Scheme { url: url.to_owned() })
    }
}

impl Upstream {
    /// Connects (TLS for `wss://`, with the system's roots).
    pub async fn connect(url: &str) -> Result<Upstream, UpstreamError> {
        check_url(url)?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        Ok(Upstream {
            ws,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    pub async fn send(&mut self, text: String) -> Result<(), UpstreamError> {
        self.bytes_out += text.len() as u64;
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| UpstreamError::Ws(e.to_string()))
    }

    /// The next text frame (pings are answered by the library).
    pub async fn recv_text(&mut self) -> Result<String, UpstreamError> {
        loop {
            match self.ws.next().await {
                None => return Err(UpstreamError::Closed),
                Some(Err(e)) => return Err(UpstreamError::Ws(e.to_string())),
                Some(Ok(Message::Text(t))) => {
                    self.bytes_in += t.len() as u64;
                    return Ok(t.as_str().to_owned());
                }
                Some(Ok(Message::Binary(b))) => {
                    self.bytes_in += b.len() as u64;
                    return Ok(String::from_utf8_lossy(&b).into_owned());
                }
                Some(Ok(Message::Close(_))) => return Err(UpstreamError::Closed),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next frame, parsed.
    pub async fn recv(&mut self) -> Result<Incoming, UpstreamError> {
        Ok(parse(&self.recv_text().await?))
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn close(mut self) {
        if let Err(e) = self.ws.close(None).await {
            tracing::debug!("closing the upstream connection: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_by_verb() {
        assert!(matches!(
            parse(r#"["EVENT","s",{"id":"x"}]"#),
            Incoming::Event { sub, raw } if sub == "s" && raw.get() == r#"{"id":"x"}"#
        ));
        assert!(matches!(parse(r#"["EOSE","s"]"#), Incoming::Eose { sub } if sub == "s"));
        assert!(matches!(
            parse(r#"["OK","ab",false,"blocked: no"]"#),
            Incoming::Ok { id, accepted: false, message } if id == "ab" && message == "blocked: no"
        ));
        assert!(matches!(parse(r#"["NEG-MSG","n","61"]"#), Incoming::NegMsg { hex, .. } if hex == "61"));
        assert!(
            matches!(parse(r#"["NEG-ERR","n","blocked: big"]"#), Incoming::NegErr { reason, .. } if reason == "blocked: big")
        );
        assert!(matches!(parse("garbage"), Incoming::Other(_)));
        assert!(matches!(parse(r#"["OK","ab","yes"]"#), Incoming::Other(_)));
        assert!(matches!(parse(r#"["EVENT","s"]"#), Incoming::Other(_)));
    }

    #[test]
    fn frames_are_built_escaped() {
        assert_eq!(frame("REQ", "a\"b", &["{}"]), r#"["REQ","a\"b",{}]"#);
        assert_eq!(event_frame("{}"), r#"["EVENT",{}]"#);
        assert!(check_url("http://x").is_err());
        assert!(check_url("wss://x").is_ok());
    }
}
