//! Plain HTTP on the WebSocket port: reading a request head, writing a
//! response (what is answered is [`crate::web`]'s business).
//!
//! The gateway reads the request head itself, because a WebSocket handshake
//! library cannot answer a plain GET. If the head asks for an upgrade, the
//! bytes already read are replayed to the handshake through [`Prefixed`];
//! otherwise we answer one request and close.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Longest request head we read; WebSocket upgrades are far smaller.
const MAX_HEAD: usize = 16 * 1024;
/// The media type of NIP-86 management requests.
pub const NIP86_CONTENT_TYPE: &str = "application/nostr+json+rpc";
const MAX_HEADERS: usize = 64;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("connection closed before a full request head")]
    Eof,
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Malformed(String),
    #[error("timed out waiting for the request")]
    Timeout,
    #[error("a request body needs a Content-Length")]
    LengthRequired,
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The parts of a request head we route on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Bytes of the head; what was read past it is the body's start.
    pub head_len: usize,
}

impl RequestHead {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header named `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn is_websocket_upgrade(&self) -> bool {
        self.header_has_token("upgrade", "websocket")
    }

    /// A NIP-86 management request: its `Content-Type` says so (any method;
    /// only POST is served).
    pub fn is_nip86(&self) -> bool {
        self.header("content-type").is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(NIP86_CONTENT_TYPE))
        })
    }

    pub fn wants_nip11(&self) -> bool {
        self.header("accept")
            .is_some_and(|a| a.to_ascii_lowercase().contains("application/nostr+json"))
    }
}

/// Parses a complete head; `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => Ok(Some(RequestHead {
            method: req.method.unwrap_or("").to_owned(),
            path: req.path.unwrap_or("/").to_owned(),
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                .collect(),
            head_len,
        })),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HttpError::Malformed(e.to_string())),
    }
}

/// Reads until a complete head; returns it with every byte read, so the
/// WebSocket handshake can read the same request again. `start` holds bytes
/// of the request already read (after a PROXY protocol header).
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    start: Vec<u8>,
    timeout: Duration,
) -> Result<(RequestHead, Vec<u8>), HttpError> {
    let read = async {
        let mut buf = start;
        if let Some(head) = parse_head(&buf)? {
            return Ok((head, buf));
        }
        let mut chunk = [0u8; 2048];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(HttpError::Eof);
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some(head) = parse_head(&buf)? {
                return Ok((head, buf));
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| HttpError::Timeout)?
}

/// Reads the body of the request `head` (whose bytes, and maybe the body's
/// first, are in `read`): exactly `Content-Length` bytes, at most `max`. A
/// client that sent `Expect: 100-continue` is told to go on first (curl
/// does for bodies over 1 KiB, and would wait a second otherwise).
pub async fn read_body<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    head: &RequestHead,
    read: &[u8],
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, HttpError> {
    if head.header("transfer-encoding").is_some() {
        return Err(HttpError::LengthRequired);
    }
    let length: usize = head
        .header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .ok_or(HttpError::LengthRequired)?;
    if length > max {
        return Err(HttpError::BodyTooLarge(max));
    }
    let mut body = read.get(head.head_len..).unwrap_or_default().to_vec();
    if body.len() > length {
        // Pipelined bytes after the body: one request per connection here.
        body.truncate(length);
    }
    let read = async {
        if body.len() < length && head.header_has_token("expect", "100-continue") {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let mut chunk = [0u8; 4096];
        while body.len() < length {
            let want = (length - body.len()).min(chunk.len());
            let n = stream.read(chunk.get_mut(..want).unwrap_or_default()).await?;
            if n == 0 {
                return Err(HttpError::Eof);
            }
            body.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| HttpError::Timeout)?
}

/// A stream that first yields bytes already read from it.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed { prefix, pos: 0, inner }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.pos..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.pos += n;
            if this.pos >= this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a plain HTTP request is answered with.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Headers beyond the ones every response carries.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "Error",
        }
    }

    /// The full response bytes; `head_only` for HEAD requests.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: Authorization, *\r\n\
             Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// Writes a response and closes the write side.
pub async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    stream.write_all(&response.to_bytes(head_only)).await?;
    stream.shutdown().await
}

/// The answer to a head we could not parse.
pub fn error_response(e: &HttpError) -> Response {
    match e {
        HttpError::TooLarge => Response::new(431, "text/plain", "request head too large\n"),
        HttpError::LengthRequired => Response::new(411, "text/plain", format!("{e}\n")),
        HttpError::BodyTooLarge(_) => Response::new(413, "text/plain", format!("{e}\n")),
        HttpError::Timeout => Response::new(408, "text/plain", format!("{e}\n")),
        other => Response::new(400, "text/plain", format!("{other}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_and_classifies_them() {
        let raw =
            b"GET / HTTP/1.1\r\nHost: relay.test\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";
        let head = parse_head(raw).ok().flatten().unwrap_or_default();
        assert_eq!(head.method, "GET");
        assert!(head.is_websocket_upgrade());
        assert_eq!(head.header("HOST"), Some("relay.test"));

        let nip11 = b"GET / HTTP/1.1\r\nAccept: application/nostr+json\r\n\r\n";
        let head = parse_head(nip11).ok().flatten().unwrap_or_default();
        assert!(head.wants_nip11() && !head.is_websocket_upgrade());

        assert!(matches!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
        assert!(matches!(
            parse_head(b"\x00\x01garbage\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        let huge = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert!(matches!(parse_head(&huge), Err(HttpError::TooLarge)));
    }

    #[tokio::test]
    async fn bodies_are_read_to_their_length() {
        let raw = b"POST / HTTP/1.1\r\nContent-Type: application/nostr+json+rpc; charset=utf-8\r\n\
                    Content-Length: 11\r\nExpect: 100-continue\r\n\r\nhello";
        let head = parse_head(raw).ok().flatten().unwrap_or_default();
        assert!(head.is_nip86());
        let (mut client, mut server) = tokio::io::duplex(256);
        client
            .write_all(b" world!extra")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let body = read_body(&mut server, &head, raw, 100, Duration::from_secs(5)).await;
        assert_eq!(body.ok().as_deref(), Some(b"hello world".as_slice()));
        let mut told = [0u8; 25];
        client.read_exact(&mut told).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&told, b"HTTP/1.1 100 Continue\r\n\r\n", "curl waits for it");

        let too_big = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
            .ok()
            .flatten();
        let too_big = too_big.unwrap_or_default();
        let r = read_body(&mut server, &too_big, b"", 100, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(HttpError::BodyTooLarge(100))));
        let chunked = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .ok()
            .flatten();
        let r = read_body(
            &mut server,
            &chunked.unwrap_or_default(),
            b"",
            100,
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(r, Err(HttpError::LengthRequired)));
        let plain = parse_head(b"POST / HTTP/1.1\r\nContent-Type: application/json\r\n\r\n")
            .ok()
            .flatten();
        assert!(!plain.unwrap_or_default().is_nip86());
    }

    #[tokio::test]
    async fn prefixed_replays_then_reads_on() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap_or_else(|e| panic!("{e}"));
        drop(a);
        let mut p = Prefixed::new(b"hello".to_vec(), b);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "hello world");
    }
}
