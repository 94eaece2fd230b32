//! The accept loop: HTTPS (rustls, HTTP/1.1 and h2 by ALPN) when a certificate is
//! configured, otherwise HTTP/1.1 and h2c on one plain-TCP port with an `HTTP/1.0 400`
//! answer to a TLS ClientHello; graceful shutdown either way, and every request carries
//! its TCP peer as a [`ClientAddr`] extension.
//!
//! Written by hand around hyper-util because `axum::serve` cannot look at a connection's
//! first bytes: Go clients (docker, containerd) first try TLS, and only fall back to
//! plain HTTP for an insecure registry when the answer to their ClientHello is an HTTP
//! response. Owning the loop also lets the TLS handshake run inside each connection's
//! task, under a deadline, so a slow or silent client never stalls `accept`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// TLS record type of a handshake message: the first byte of every ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;

const TLS_ON_PLAIN_PORT: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nThis is a plain-HTTP registry: the client sent a TLS handshake.\n";

/// A client that connects and then says nothing would otherwise hold its task for as long
/// as it likes.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    // A connection still in its TLS handshake has no request to finish, so shutdown drops
    // it at once instead of waiting for the handshake (or its timeout).
    let handshakes = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
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
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: http::Request<Incoming>| {
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
            let Some(acceptor) = acceptor else {
                if starts_with_tls_handshake(&stream).await {
                    let mut stream = stream;
                    let _ = stream.write_all(TLS_ON_PLAIN_PORT).await;
                    let _ = stream.shutdown().await;
                    return;
                }
                serve_connection(stream, service, watcher).await;
                return;
            };
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let tls_stream = tokio::select! {
                finished = handshake => match finished {
                    Ok(Ok(tls_stream)) => tls_stream,
                    // Scanners, plain-HTTP clients and unknown CAs fail here all day: not news.
                    Ok(Err(e)) => {
                        tracing::debug!(client.addr = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client.addr = %peer, "TLS handshake timed out");
                        return;
                    }
                },
                () = handshakes.cancelled() => return,
            };
            serve_connection(tls_stream, service, watcher).await;
        });
    }
    drop(listener);
    handshakes.cancel();
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout_secs = timeout.as_secs(), "in-flight requests did not finish in time");
    }
}

/// HTTP/1.1 or HTTP/2 (told apart by the connection preface, which covers both h2c and
/// ALPN-negotiated h2) over `io`, until the client leaves or a graceful shutdown ends it.
async fn serve_connection<I, S>(io: I, service: S, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn starts_with_tls_handshake(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE)
}

#[cfg(test)]
mod tests {
    use axum::Extension;
    use axum::routing::get;
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn requests_carry_the_peer_address_and_shutdown_ends_serve() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let app = Router::new().route("/", get(|Extension(ClientAddr(peer)): Extension<ClientAddr>| async move {
            peer.to_string()
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
            None,
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
        assert!(reply.ends_with(&local.to_string()), "the body is the client's address {local}: {reply:?}");

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serve returns after shutdown")
            .expect("serve did not panic");
    }
}
