//! A blob's bytes as they arrive, checked: more bytes than the descriptor said fail at
//! once, and a digest that does not match fails at the end, so nothing unverified is
//! ever taken as the blob.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use imagehub_oci::{Digest, Hasher};

use crate::error::ClientError;
use crate::registry::describe;

pub struct BlobStream {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    hasher: Option<Hasher>,
    expected: Digest,
    size: Option<u64>,
    read: u64,
    what: String,
    registry: String,
}

impl BlobStream {
    pub(crate) fn new(
        response: reqwest::Response,
        expected: Digest,
        size: Option<u64>,
        what: String,
        registry: String,
    ) -> BlobStream {
        BlobStream {
            inner: Box::pin(response.bytes_stream()),
            hasher: Some(Hasher::new(expected.algorithm())),
            expected,
            size,
            read: 0,
            what,
            registry,
        }
    }

    pub fn digest(&self) -> &Digest {
        &self.expected
    }

    /// Bytes received so far.
    pub fn read(&self) -> u64 {
        self.read
    }

    fn size_mismatch(&self) -> ClientError {
        let expected = self.size.unwrap_or_default();
        ClientError::SizeMismatch { what: self.what.clone(), expected, actual: self.read }
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.hasher.is_none() {
            return Poll::Ready(None); // ended, or failed
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.read += chunk.len() as u64;
                if self.size.is_some_and(|size| self.read > size) {
                    self.hasher = None;
                    return Poll::Ready(Some(Err(self.size_mismatch())));
                }
                if let Some(hasher) = self.hasher.as_mut() {
                    hasher.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.hasher = None;
                let error = ClientError::Unreachable {
                    registry: self.registry.clone(),
                    message: describe(&e),
                };
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                let Some(hasher) = self.hasher.take() else { return Poll::Ready(None) };
                if self.size.is_some_and(|size| self.read != size) {
                    return Poll::Ready(Some(Err(self.size_mismatch())));
                }
                let actual = hasher.finish();
                if actual != self.expected {
                    let (what, expected) = (self.what.clone(), self.expected.clone());
                    return Poll::Ready(Some(Err(ClientError::DigestMismatch {
                        what,
                        expected,
                        actual,
                    })));
                }
                Poll::Ready(None)
            }
        }
    }
}
