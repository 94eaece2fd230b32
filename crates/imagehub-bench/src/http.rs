//! Minimal HTTP/1.1 client for the benchmark: one keep-alive hyper connection per task,
//! request bodies built from shared `Bytes` chunks (no copies), response bodies drained
//! or collected.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the registry listens: `http://host:port` (plain HTTP only).
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, used to connect and as the `Host` header.
    pub authority: String,
}

impl Target {
    /// Parses `http://host[:port][/]`; the port defaults to 80.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("only plain http:// URLs are supported, got {url}"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            bail!("no host in {url}");
        }
        let authority = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
        Ok(Self { authority })
    }

    /// Turns a `Location`/`Link` target (absolute URL or path) into an origin-form path.
    pub fn path_of(location: &str) -> String {
        for scheme in ["http://", "https://"] {
            if let Some(rest) = location.strip_prefix(scheme) {
                return match rest.find('/') {
                    Some(i) => rest[i..].to_string(),
                    None => "/".to_string(),
                };
            }
        }
        location.to_string()
    }
}

/// A request body made of shared chunks with an exact length (so hyper sends
/// `Content-Length`, never chunked encoding).
#[derive(Debug, Clone, Default)]
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl ChunkBody {
    /// A body consisting of `chunks`, in order.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self { chunks, remaining }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.remaining
    }
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// One request to send: method, origin-form path, extra headers and body.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: ChunkBody,
}

impl Req {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: Target::path_of(&path.into()),
            headers: Vec::new(),
            body: ChunkBody::default(),
        }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn head(path: impl Into<String>) -> Self {
        Self::new(Method::HEAD, path)
    }
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }
    /// Adds a header (panics only on a non-ASCII value, which the bench never builds).
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        let value = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
        self.headers.push((name, value));
        self
    }
    pub fn body(mut self, body: ChunkBody) -> Self {
        self.body = body;
        self
    }
    pub fn bytes(self, body: Bytes) -> Self {
        self.body(ChunkBody::new([body]))
    }
}

/// A response with its body either collected or only counted.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Collected body (empty when drained).
    pub body: Bytes,
    /// Body length received.
    pub len: u64,
}

impl Reply {
    /// A header as a string, if present and ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fails unless the status is one of `ok`.
    pub fn expect(&self, ok: &[u16], what: &str) -> Result<()> {
        if ok.contains(&self.status.as_u16()) {
            Ok(())
        } else {
            let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
            bail!("{what}: HTTP {} (expected {ok:?}) {body}", self.status.as_u16())
        }
    }
}

/// One keep-alive connection, re-opened transparently when the server closes it.
pub struct Conn {
    target: Arc<Target>,
    host: HeaderValue,
    sender: Option<SendRequest<ChunkBody>>,
    /// Headers added to every request that does not set them itself (e.g. `Authorization`).
    defaults: Vec<(HeaderName, HeaderValue)>,
}

impl Conn {
    /// Opens a connection (TCP_NODELAY, HTTP/1.1).
    pub async fn connect(target: &Arc<Target>) -> Result<Self> {
        let host = HeaderValue::from_str(&target.authority)?;
        let mut conn = Self { target: target.clone(), host, sender: None, defaults: Vec::new() };
        conn.reopen().await?;
        Ok(conn)
    }

    /// Sends `name: value` with every later request that does not carry `name` itself,
    /// replacing an earlier default of that name.
    pub fn set_default_header(&mut self, name: HeaderName, value: &str) -> Result<()> {
        let value = HeaderValue::from_str(value).with_context(|| format!("header {name}"))?;
        self.defaults.retain(|(n, _)| *n != name);
        self.defaults.push((name, value));
        Ok(())
    }

    async fn reopen(&mut self) -> Result<()> {
        self.sender = None;
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .with_context(|| format!("connect {}", self.target.authority))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(1 << 20)
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends a request and returns the response head with the body still streaming.
    /// A request on a connection the server had already closed is retried once on a new one.
    pub async fn send(&mut self, req: Req) -> Result<hyper::Response<Incoming>> {
        let mut retried = false;
        loop {
            let reusable = match &mut self.sender {
                Some(s) if !s.is_closed() => s.ready().await.is_ok(),
                _ => false,
            };
            if !reusable {
                self.reopen().await?;
            }
            let Some(sender) = self.sender.as_mut() else { bail!("no connection") };
            let mut builder = Request::builder().method(req.method.clone()).uri(req.path.as_str());
            builder = builder.header(HOST, self.host.clone());
            for (name, value) in &req.headers {
                builder = builder.header(name, value);
            }
            for (name, value) in
                self.defaults.iter().filter(|(n, _)| !req.headers.iter().any(|(h, _)| h == n))
            {
                builder = builder.header(name, value);
            }
            if req.body.len() == 0
                && matches!(req.method, Method::PUT | Method::POST | Method::PATCH)
            {
                builder = builder.header(CONTENT_LENGTH, "0");
            }
            let request = builder.body(req.body.clone())?;
            match sender.send_request(request).await {
                Ok(resp) => return Ok(resp),
                Err(e)
                    if !retried
                        && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) =>
                {
                    retried = true;
                    self.sender = None;
                }
                Err(e) => return Err(anyhow!(e).context(format!("{} {}", req.method, req.path))),
            }
        }
    }

    /// Sends a request and collects the whole response body.
    pub async fn call(&mut self, req: Req) -> Result<Reply> {
        let resp = self.send(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, len: body.len() as u64, body })
    }

    /// Sends a request and reads the response body without storing it (only its length).
    /// Error bodies (status >= 400) are kept, for the error message.
    pub async fn call_drain(&mut self, req: Req) -> Result<Reply> {
        let resp = self.send(req).await?;
        let (parts, mut body) = resp.into_parts();
        let keep = parts.status.as_u16() >= 400;
        let mut kept = BytesMut::new();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                len += data.len() as u64;
                if keep && kept.len() < 4096 {
                    kept.extend_from_slice(&data);
                }
            }
        }
        Ok(Reply { status: parts.status, headers: parts.headers, body: kept.freeze(), len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_and_paths() {
        assert_eq!(
            Target::parse("http://127.0.0.1:5000/").expect("valid").authority,
            "127.0.0.1:5000"
        );
        assert_eq!(Target::parse("http://reg").expect("valid").authority, "reg:80");
        assert!(Target::parse("https://reg").is_err());
        assert_eq!(
            Target::path_of("http://h:1/v2/a/blobs/uploads/x?y=1"),
            "/v2/a/blobs/uploads/x?y=1"
        );
        assert_eq!(Target::path_of("/v2/a"), "/v2/a");
    }

    #[test]
    fn chunk_body_length() {
        let b =
            ChunkBody::new([Bytes::from_static(b"ab"), Bytes::new(), Bytes::from_static(b"cde")]);
        assert_eq!(b.len(), 5);
        assert_eq!(http_body::Body::size_hint(&b).exact(), Some(5));
    }
}
