//! A round-robin TCP balancer on a free loopback port: each accepted connection goes to
//! the next backend, bytes copied both ways, as an L4 load balancer (HAProxy in `mode
//! tcp`, a Kubernetes Service) spreads a client's connections over replicas. Written
//! here because the bench must put one in front of one replica and of two alike, and a
//! balancer package (haproxy, nginx) is more to install and configure than this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running balancer; stopped on drop.
pub struct Balancer {
    pub url: String,
    accept: JoinHandle<()>,
}

impl Balancer {
    /// Starts balancing over `backends` (`127.0.0.1:PORT` each).
    pub async fn start(backends: Vec<SocketAddr>) -> Result<Balancer> {
        anyhow::ensure!(!backends.is_empty(), "a balancer needs a backend");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    if let Ok(mut server) = TcpStream::connect(backend).await {
                        let _ = server.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Balancer { url, accept })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
