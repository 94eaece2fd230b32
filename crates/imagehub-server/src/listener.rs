//! The accept loop: HTTPS (rustls, HTTP/1.1 and h2 by ALPN) when a certificate is
//! configured, otherwise HTTP/1.1 and h2c on one plain-TCP port with an `HTTP/1.0 400`
//! answer to a TLS ClientHello; graceful shutdown either way, and every request carries
//! its TCP peer as a [`ClientAddr`] extension.
//!
//! Written by hand around hyper because `axum::serve` cannot look at a connection's
//! first bytes: Go clients (docker, containerd) first try TLS, and only fall back to
//! plain HTTP for an insecure registry when the answer to their ClientHello is an HTTP
//! response. Owning the loop also bounds what a client can hold ([`ConnectionLimits`]):
//! a connection must say which protocol it speaks (or finish its TLS handshake) within
//! the header-read timeout, then send each request's head within it too (which also
//! closes idle keep-alive connections); a head over the size limit gets 431; a client
//! that stops reading a response or sending a request body for the stall timeout is
//! dropped, while slow transfers that make progress go on; and at most
//! `max_connections` are open at once, the rest waiting in the kernel's backlog.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// TLS record type of a handshake message: the first byte of every ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;

/// What an HTTP/2 connection with prior knowledge (h2c) starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const TLS_ON_PLAIN_PORT: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nThis is a plain-HTTP registry: the client sent a TLS handshake.\n";

/// Files the server needs besides its connections: the database, blobs being read or
/// written, uploads, the log. Kept free when the connection cap is fitted to the
/// process's file limit.
const RESERVED_FILES: u64 = 256;

/// Bounds on what clients can hold open; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// For a new connection's first bytes or TLS handshake, for each request head, and
    /// so for an idle keep-alive connection's next request.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers, or an HTTP/2 header list).
    pub max_header_bytes: usize,
    /// How long a response may wait for the client to take more bytes, and a request
    /// body for its next bytes.
    pub stall_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// The TCP peer of the connection a request arrived on (a reverse proxy's address when
/// there is one in front).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1) into a server config offering h2 and HTTP/1.1.
pub fn load_tls(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading TLS certificate chain {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("TLS certificate file {} holds no PEM CERTIFICATE block", cert.display());
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => anyhow::anyhow!(
            "TLS private key file {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            key.display()
        ),
        e => anyhow::Error::new(e).context(format!("reading TLS private key {}", key.display())),
    })?;
    // ring, named explicitly: `ServerConfig::builder()` picks a provider from crate
    // features and panics if feature unification ever turns on aws-lc-rs beside ring.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .with_context(|| {
            format!("using TLS private key {} with certificate {}", key.display(), cert.display())
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` completes, then waits up to `timeout` for
/// open connections to finish their requests. With `tls`, every connection must be HTTPS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeout: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    // A connection still in its TLS handshake or protocol detection has no request to
    // finish, so shutdown drops it at once instead of waiting for it.
    let handshakes = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut full = FullWarning::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                full.warn(limits.max_connections);
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stall = limits.stall_timeout;
        let service = TowerToHyperService::new(app.clone().map_request(
            move |request: http::Request<Incoming>| {
                let mut request =
                    request.map(|body| axum::body::Body::new(TimeoutBody::new(stall, body)));
                request.extensions_mut().insert(ClientAddr(peer));
                request
            },
        ));
        // Subscribed here, before the task runs, so that a shutdown signalled before `watch`
        // is reached (a handshake finishing just as shutdown starts) still reaches the
        // connection.
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let handshakes = handshakes.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let opened = tokio::select! {
                opened = open(stream, peer, acceptor.as_ref(), &limits) => opened,
                () = handshakes.cancelled() => return,
            };
            let Some((io, protocol)) = opened else { return };
            serve_connection(io, protocol, service, watcher, &limits).await;
        });
    }
    drop(listener);
    handshakes.cancel();
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            timeout_secs = timeout.as_secs(),
            "in-flight requests did not finish in time"
        );
    }
}

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// A connection's transport, plain or TLS.
type Transport = StallGuard<Box<dyn Io>>;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Finishes the TLS handshake, or on a plain port tells the protocol from the first
/// bytes, within the header-read timeout; `None` when the client is gone, too slow, or
/// sent a TLS handshake to the plain port (it gets the HTTP answer Go clients need).
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<&TlsAcceptor>,
    limits: &ConnectionLimits,
) -> Option<(Transport, Protocol)> {
    let deadline = limits.header_read_timeout;
    let opened: Option<(Box<dyn Io>, Protocol)> = match acceptor {
        Some(acceptor) => match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let protocol = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                };
                Some((Box::new(tls), protocol))
            }
            // Scanners, plain-HTTP clients and unknown CAs fail here all day: not news.
            Ok(Err(e)) => {
                tracing::debug!(client.addr = %peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(client.addr = %peer, "TLS handshake timed out");
                None
            }
        },
        None => match tokio::time::timeout(deadline, detect(stream)).await {
            Ok(Ok(Detected::Http(stream, protocol))) => Some((Box::new(stream), protocol)),
            Ok(Ok(Detected::Tls(mut stream))) => {
                let answer = async {
                    stream.write_all(TLS_ON_PLAIN_PORT).await?;
                    stream.shutdown().await
                };
                let _ = tokio::time::timeout(deadline, answer).await;
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(client.addr = %peer, error = %e, "connection closed before a request");
                None
            }
            Err(_) => {
                tracing::debug!(client.addr = %peer, "no request within the header-read timeout");
                None
            }
        },
    };
    opened.map(|(io, protocol)| (StallGuard::new(io, limits.stall_timeout), protocol))
}

/// What a plain-port connection's first bytes say.
enum Detected {
    Tls(TcpStream),
    Http(Prefixed<TcpStream>, Protocol),
}

/// Reads until the first bytes tell a TLS ClientHello, the HTTP/2 preface or anything
/// else (HTTP/1), and hands back the stream with those bytes still to be read.
async fn detect(mut stream: TcpStream) -> std::io::Result<Detected> {
    let mut first = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    loop {
        let n = stream.read(&mut first[len..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        if first[0] == TLS_HANDSHAKE {
            return Ok(Detected::Tls(stream));
        }
        let so_far = &first[..len];
        if !H2_PREFACE.starts_with(so_far) {
            return Ok(Detected::Http(
                Prefixed::new(stream, Bytes::copy_from_slice(so_far)),
                Protocol::Http1,
            ));
        }
        if len == H2_PREFACE.len() {
            return Ok(Detected::Http(
                Prefixed::new(stream, Bytes::copy_from_slice(so_far)),
                Protocol::Http2,
            ));
        }
    }
}

/// HTTP/1.1 or HTTP/2 over `io`, until the client leaves or a graceful shutdown ends it.
async fn serve_connection<S>(
    io: Transport,
    protocol: Protocol,
    service: S,
    watcher: Watcher,
    limits: &ConnectionLimits,
) where
    S: hyper::service::Service<http::Request<Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(io);
    let result = match protocol {
        Protocol::Http1 => {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_header_size(limits.max_header_bytes)
                .serve_connection(io, service);
            watcher.watch(connection).await
        }
        Protocol::Http2 => {
            let connection = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                // Pings find peers that vanished without closing; the stall guard then ends them.
                .keep_alive_interval(limits.stall_timeout / 2)
                .keep_alive_timeout(limits.stall_timeout / 2)
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
                .serve_connection(io, service);
            watcher.watch(connection).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A warning when the connection cap is reached: once, then at most once a minute.
#[derive(Default)]
struct FullWarning {
    last: Option<Instant>,
}

impl FullWarning {
    fn warn(&mut self, max_connections: usize) {
        if self.last.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            return;
        }
        self.last = Some(Instant::now());
        tracing::warn!(
            server.max_connections = max_connections,
            "connection limit reached: {max_connections} connections are open; new ones wait until one closes (raise server.max_connections, and the file limit, if this is normal load)"
        );
    }
}

/// The connection cap that fits the process's file limit. The soft limit is raised to
/// the hard one first (as Go does at start-up), then `wanted` is lowered, if need be,
/// so that connections never take the descriptors the database and blobs need.
pub fn fit_to_file_limit(wanted: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "could not raise the file limit");
        }
    }
    let files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let fitted = connections_for(files, wanted);
    if fitted < wanted {
        tracing::warn!(
            server.max_connections = fitted,
            files,
            "server.max_connections lowered from {wanted} to {fitted} to fit the open-file limit ({files}); raise `ulimit -n` to serve more"
        );
    }
    fitted
}

/// `wanted`, or fewer when `files` descriptors cannot hold them and the reserve.
fn connections_for(files: u64, wanted: usize) -> usize {
    let room = usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    wanted.min(room.max(16)).max(1)
}

/// A stream whose first bytes were already read (to tell the protocol): they are read
/// again first.
struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(inner: S, prefix: Bytes) -> Prefixed<S> {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let first = self.prefix.split_to(n);
            buf.put_slice(&first);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Fails writes that make no progress for the stall timeout: a client that stops
/// reading a response would otherwise hold its connection (and the blob file being
/// sent) forever. Reads are not timed here: between requests hyper's header-read
/// timeout applies, and within a request body the body's own timeout does.
///
/// Written by hand: tokio-io-timeout would do, but its read timeout would also cut idle
/// HTTP/2 connections between pings, and this is all that is needed.
struct StallGuard<S> {
    inner: S,
    stall_timeout: Duration,
    /// Armed while a write waits; `None` while writes go through.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallGuard<S> {
    fn new(inner: S, stall_timeout: Duration) -> StallGuard<S> {
        StallGuard { inner, stall_timeout, waiting: None }
    }

    /// `pending` was the inner write's answer: arms the timer, or fails once it fires.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        pending: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if pending.is_ready() {
            self.waiting = None;
            return pending;
        }
        let stall_timeout = self.stall_timeout;
        let timer = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall_timeout)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let shut = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, shut)
    }
}

#[cfg(test)]
mod tests {
    use axum::Extension;
    use axum::routing::get;
    use tokio::io::AsyncReadExt;

    use super::*;

    const TEST_LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        max_header_bytes: 64 * 1024,
        stall_timeout: Duration::from_secs(30),
        max_connections: 16,
    };

    #[test]
    fn the_connection_cap_leaves_room_for_files() {
        assert_eq!(connections_for(1_048_576, 4096), 4096);
        assert_eq!(connections_for(1024, 4096), 1024 - RESERVED_FILES as usize);
        assert_eq!(connections_for(100, 4096), 16, "a tiny limit still serves a few");
        assert_eq!(connections_for(u64::MAX, 10), 10);
    }

    /// A connected pair of TCP streams: (client, server side).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client =
            TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    #[tokio::test]
    async fn the_first_bytes_tell_the_protocol_and_are_read_again() {
        for (sent, expected) in [
            (&b"GET / HTTP/1.1\r\n"[..], Some(Protocol::Http1)),
            (H2_PREFACE, Some(Protocol::Http2)),
            (b"\x16\x03\x01", None),
        ] {
            let (mut client, server) = pair().await;
            client.write_all(sent).await.expect("send");
            match (detect(server).await, expected) {
                (Ok(Detected::Http(mut stream, protocol)), Some(expected)) => {
                    assert_eq!(protocol, expected, "{sent:?}");
                    let mut again = vec![0u8; sent.len()];
                    stream.read_exact(&mut again).await.expect("read the first bytes again");
                    assert_eq!(again, sent);
                }
                (Ok(Detected::Tls(_)), None) => {}
                (_, expected) => panic!("{sent:?}: expected {expected:?}"),
            }
        }
        // A client that leaves halfway through the preface is not served.
        let (mut client, server) = pair().await;
        client.write_all(b"PRI * HT").await.expect("send");
        client.shutdown().await.expect("half-close");
        assert!(
            matches!(detect(server).await, Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        );
    }

    #[tokio::test]
    async fn a_write_that_makes_no_progress_fails_after_the_stall_timeout() {
        let (_client, server) = pair().await;
        let mut guarded = StallGuard::new(server, Duration::from_millis(200));
        // The client never reads: the socket buffers fill, then the write stalls.
        let chunk = vec![0u8; 1 << 20];
        let error = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Err(e) = guarded.write_all(&chunk).await {
                    break e;
                }
            }
        })
        .await
        .expect("the guard gives up long before the test's own bound");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn requests_carry_the_peer_address_and_shutdown_ends_serve() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let app =
            Router::new().route(
                "/",
                get(|Extension(ClientAddr(peer)): Extension<ClientAddr>| async move {
                    peer.to_string()
                }),
            );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
            None,
            TEST_LIMITS,
        ));

        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let local = stream.local_addr().expect("client address");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .expect("send request");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read reply");
        assert!(reply.starts_with("HTTP/1.1 200"), "reply: {reply:?}");
        assert!(
            reply.ends_with(&local.to_string()),
            "the body is the client's address {local}: {reply:?}"
        );

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serve returns after shutdown")
            .expect("serve did not panic");
    }
}
