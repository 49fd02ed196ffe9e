//! Gateways as real processes, and a raw WebSocket client that speaks NIP-01
//! frames, for the end-to-end relay tests.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// A gateway process on 127.0.0.1 with a free port, killed on drop.
pub struct Gateway {
    pub url: String,
    child: Child,
}

impl Gateway {
    /// Starts `$NOSTR_PG_GATEWAY_BIN --listen 127.0.0.1:0 --database-url URL EXTRA...`
    /// and waits for its `listening on ws://…` line.
    pub async fn start(database_url: &str, extra: &[&str]) -> Gateway {
        Gateway::start_with_env(database_url, extra, &[]).await
    }

    /// [`Gateway::start`] with environment variables set for the process.
    pub async fn start_with_env(database_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
        Gateway::spawn(&[], "127.0.0.1:0", database_url, extra, env).await
    }

    /// Starts the gateway with `wrapper` before it (`ip netns exec NS`: in
    /// another network namespace), listening on `listen`.
    pub async fn start_wrapped(wrapper: &[String], listen: &str, database_url: &str, extra: &[&str]) -> Gateway {
        Gateway::spawn(wrapper, listen, database_url, extra, &[]).await
    }

    async fn spawn(
        wrapper: &[String],
        listen: &str,
        database_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let bin = std::env::var("NOSTR_PG_GATEWAY_BIN")
            .expect("NOSTR_PG_GATEWAY_BIN is not set: run the end-to-end tests with `bash pg_config/test.sh`");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(["--listen", listen, "--database-url", database_url])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gateway");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("gateway printed nothing")
            .expect("read stdout")
            .expect("gateway exited");
        let url = line
            .strip_prefix("listening on ")
            .expect("listening line")
            .trim()
            .to_owned();
        // Keep draining stdout so the gateway never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Gateway { url, child }
    }

    /// The `http://` form of the URL, for NIP-11 and metrics.
    pub fn http_url(&self) -> String {
        self.url.replacen("ws://", "http://", 1)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub async fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = self.child.id()?;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .ok()?;
        tokio::time::timeout(WAIT, self.child.wait()).await.ok()?.ok()
    }
}

/// A raw NIP-01 client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// NIP-42 challenge, if the relay sent one.
    pub challenge: Option<String>,
    /// AUTH frames are answered here rather than returned by `recv`.
    held: std::collections::VecDeque<Value>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        // TCP_NODELAY, as browsers and most client libraries set it: with
        // Nagle on, a frame sent right after one the relay never answers
        // (CLOSE) waits for the relay's delayed ACK, about 40 ms.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("websocket connect");
        Client::from_ws(ws)
    }

    /// Connects with extra request headers (`X-Forwarded-For`, ...).
    pub async fn connect_with_headers(url: &str, headers: &[(&str, &str)]) -> Client {
        Client::try_connect_with_headers(url, headers)
            .await
            .expect("websocket connect")
    }

    /// [`Client::connect_with_headers`], with the handshake's error (a
    /// refusal: its status) returned instead of a panic.
    pub async fn try_connect_with_headers(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request().expect("request");
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            request
                .headers_mut()
                .append(name, HeaderValue::from_str(value).expect("header value"));
        }
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
        Ok(Client::from_ws(ws))
    }

    /// The WebSocket handshake over `stream`, on which the caller may have
    /// written bytes first (a PROXY protocol header); the handshake's error
    /// (a refusal) is returned, not a panic.
    pub async fn connect_over(url: &str, stream: TcpStream) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        stream.set_nodelay(true).expect("nodelay");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await?;
        Ok(Client::from_ws(ws))
    }

    fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            ws,
            challenge: None,
            held: Default::default(),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.expect("send");
    }

    pub async fn send(&mut self, frame: &Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// The next relay frame (JSON array), remembering AUTH challenges.
    pub async fn recv(&mut self) -> Value {
        self.try_recv(WAIT).await.expect("no frame from relay in time")
    }

    /// The next relay frame, or None on timeout or close.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        if let Some(v) = self.held.pop_front() {
            return Some(v);
        }
        self.try_read(wait).await
    }

    /// The next frame from the socket itself, skipping what is held and
    /// AUTH challenges (recorded).
    async fn try_read(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let v = self.read_frame(wait).await?;
            if v[0] != "AUTH" {
                return Some(v);
            }
        }
    }

    /// The next frame from the socket, AUTH included (its challenge recorded).
    async fn read_frame(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next()).await.ok()??.ok()?;
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("relay sent invalid JSON");
                    if v[0] == "AUTH" {
                        self.challenge = v[1].as_str().map(str::to_owned);
                    }
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Whether the relay closed the connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The NIP-42 challenge the relay sends on connect, waiting for it if it
    /// has not arrived yet (frames read meanwhile are held for later).
    pub async fn challenge(&mut self) -> String {
        loop {
            if let Some(c) = &self.challenge {
                return c.clone();
            }
            let f = self
                .read_frame(WAIT)
                .await
                .expect("no AUTH challenge from relay in time");
            if f[0] != "AUTH" {
                self.held.push_back(f);
            }
        }
    }

    /// Publishes an event JSON and returns its `OK` frame.
    pub async fn publish(&mut self, event_json: &str) -> Value {
        self.send_text(&format!(r#"["EVENT",{event_json}]"#)).await;
        self.wait_for(|f| f[0] == "OK").await
    }

    /// The first frame (held or new) that `want` accepts; others are held for
    /// later readers. Held frames are looked at once, so they cannot cycle.
    async fn wait_for(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.held.iter().position(&want) {
            if let Some(f) = self.held.remove(i) {
                return f;
            }
        }
        loop {
            let f = self.try_read(WAIT).await.expect("no frame from relay in time");
            if want(&f) {
                return f;
            }
            self.held.push_back(f);
        }
    }

    /// Sends a REQ and collects event JSON values until EOSE (or CLOSED).
    pub async fn req(&mut self, sub: &str, filters: &[Value]) -> Result<Vec<Value>, Value> {
        let mut frame = vec![json!("REQ"), json!(sub)];
        frame.extend(filters.iter().cloned());
        self.send(&Value::Array(frame)).await;
        let mut events = Vec::new();
        loop {
            let f = self
                .wait_for(|f| f[1] == sub && matches!(f[0].as_str(), Some("EVENT" | "EOSE" | "CLOSED")))
                .await;
            match f[0].as_str() {
                Some("EVENT") => events.push(f[2].clone()),
                Some("EOSE") => return Ok(events),
                _ => return Err(f),
            }
        }
    }

    /// Sends a COUNT and returns the count (or the CLOSED frame).
    pub async fn count(&mut self, sub: &str, filters: &[Value]) -> Result<i64, Value> {
        let mut frame = vec![json!("COUNT"), json!(sub)];
        frame.extend(filters.iter().cloned());
        self.send(&Value::Array(frame)).await;
        let f = self
            .wait_for(|f| f[1] == sub && matches!(f[0].as_str(), Some("COUNT" | "CLOSED")))
            .await;
        match f[2]["count"].as_i64() {
            Some(n) if f[0] == "COUNT" => Ok(n),
            _ => Err(f),
        }
    }

    /// Waits for the next EVENT frame for `sub`.
    pub async fn next_event(&mut self, sub: &str) -> Value {
        self.wait_for(|f| f[0] == "EVENT" && f[1] == sub).await[2].clone()
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A plain HTTP/1.1 GET on the gateway's port: (status line and headers, body).
pub async fn http_get(gw: &Gateway, path: &str, accept: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.http_url().trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).await.expect("tcp connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    (head.to_owned(), body.to_owned())
}

/// Ids of event JSON values, in order.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}
