//! A TCP proxy a test controls, put between a gateway and PostgreSQL to make
//! the network misbehave on demand: refuse new connections, cut the open
//! ones, or freeze them (half-open: nothing flows, nothing closes).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What happens to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow both ways.
    Forward,
    /// New connections are closed at once; open ones keep flowing.
    Refuse,
}

struct Conn {
    /// Set to true to stop forwarding (the sockets stay open: half-open).
    frozen: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    conns: Arc<Mutex<Vec<Conn>>>,
    accept: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let accept = tokio::spawn({
            let (mode, conns) = (Arc::clone(&mode), Arc::clone(&conns));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if *lock(&mode) == Mode::Refuse {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    let (frozen, watch_rx) = watch::channel(false);
                    let task = tokio::spawn(pipe(client, server, watch_rx));
                    lock(&conns).push(Conn { frozen, task });
                }
            }
        });
        Proxy {
            addr,
            mode,
            conns,
            accept,
        }
    }

    /// A PostgreSQL URL like `url` that goes through the proxy.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("url with user@host");
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{scheme_user}@{}{path}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    /// Closes every open connection (both sides see EOF).
    pub fn cut_all(&self) {
        for c in lock(&self.conns).drain(..) {
            c.task.abort();
        }
    }

    /// Stops forwarding on every open connection without closing it: what a
    /// peer behind a dead network link looks like. New connections still flow.
    pub fn freeze_all(&self) {
        for c in lock(&self.conns).iter() {
            let _ = c.frozen.send(true);
        }
    }

    /// Connections opened through the proxy and not cut.
    pub fn open(&self) -> usize {
        lock(&self.conns).iter().filter(|c| !c.task.is_finished()).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

/// Copies both ways until either side closes, or holds everything once frozen.
async fn pipe(client: TcpStream, server: TcpStream, mut frozen: watch::Receiver<bool>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        if *frozen.borrow() {
            // Half-open: keep both sockets, move nothing, until cut.
            std::future::pending::<()>().await;
        }
        tokio::select! {
            n = cr.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if sw.write_all(&up[..n]).await.is_err() { return },
            },
            n = sr.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
            },
            _ = frozen.changed() => {}
        }
    }
}
