//! The accept loop: HTTP/1.1 and h2c on one plain-TCP port, graceful shutdown, and an
//! `HTTP/1.0 400` answer to a TLS ClientHello.
//!
//! Written by hand around hyper-util because `axum::serve` cannot look at a connection's
//! first bytes: Go clients (docker, containerd) first try TLS, and only fall back to
//! plain HTTP for an insecure registry when the answer to their ClientHello is an HTTP
//! response.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// TLS record type of a handshake message: the first byte of every ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;

const TLS_ON_PLAIN_PORT: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nThis is a plain-HTTP registry: the client sent a TLS handshake.\n";

/// Serves `app` on `listener` until `shutdown` completes, then waits up to `timeout` for
/// open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
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
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            if starts_with_tls_handshake(&stream).await {
                let mut stream = stream;
                let _ = stream.write_all(TLS_ON_PLAIN_PORT).await;
                let _ = stream.shutdown().await;
                return;
            }
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout_secs = timeout.as_secs(), "in-flight requests did not finish in time");
    }
}

async fn starts_with_tls_handshake(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE)
}
