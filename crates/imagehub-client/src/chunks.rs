//! Where the bytes of a chunked upload come from. A chunk is asked for by its offset and
//! may be asked for again from any offset within it (after a failure, from where the
//! registry's session stands), so a file is read where asked, and a blob streaming from
//! another registry keeps its current chunk until the upload moves past it.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use reqwest::Body;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::mpsc;

use crate::blob::BlobStream;
use crate::error::ClientError;

/// Blobs larger than this are uploaded in resumable chunks of this size: a dropped
/// connection then costs at most one chunk.
pub const UPLOAD_CHUNK: u64 = 16 << 20;

pub trait ChunkSource: Send {
    /// A body of the blob's bytes from `offset`, at most `max` of them, and how many it
    /// holds (fewer only at a chunk's end). `offset` never goes back before the start of
    /// the chunk last given.
    fn read(
        &mut self,
        offset: u64,
        max: u64,
    ) -> impl Future<Output = Result<(Body, u64), ClientError>> + Send;

    /// After the last chunk: whether the bytes were what they should be.
    fn finish(&mut self) -> impl Future<Output = Result<(), ClientError>> + Send {
        async { Ok(()) }
    }
}

/// A blob in a file of `size` bytes, streamed from disk a chunk at a time: nothing of it
/// is held in memory.
pub struct FileChunks {
    pub path: PathBuf,
    pub size: u64,
}

impl ChunkSource for FileChunks {
    async fn read(&mut self, offset: u64, max: u64) -> Result<(Body, u64), ClientError> {
        let local = |e: std::io::Error| ClientError::Local(format!("{}: {e}", self.path.display()));
        let mut file = tokio::fs::File::open(&self.path).await.map_err(local)?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(local)?;
        let len = max.min(self.size.saturating_sub(offset));
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 1 << 20);
        Ok((Body::wrap_stream(stream), len))
    }
}

/// A blob streaming from another registry, cut into chunks by a task that reads the next
/// chunk while the current one is sent (at most three chunks in memory: sent, waiting,
/// being read). The stream's digest is checked at its end, which `finish` waits for.
pub struct StreamChunks {
    chunks: mpsc::Receiver<Result<Bytes, ClientError>>,
    current: Bytes,
    /// The blob offset `current` starts at.
    start: u64,
    ended: bool,
}

impl StreamChunks {
    pub fn new(mut stream: BlobStream, chunk: u64) -> StreamChunks {
        let (sender, chunks) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut filling = BytesMut::with_capacity(chunk as usize);
            while let Some(piece) = stream.next().await {
                let mut piece = match piece {
                    Ok(piece) => piece,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        return;
                    }
                };
                while !piece.is_empty() {
                    let take = piece.len().min(chunk as usize - filling.len());
                    filling.extend_from_slice(&piece.split_to(take));
                    if filling.len() == chunk as usize {
                        let full = std::mem::replace(&mut filling, BytesMut::new()).freeze();
                        if sender.send(Ok(full)).await.is_err() {
                            return; // the upload gave up
                        }
                        filling.reserve(chunk as usize);
                    }
                }
            }
            if !filling.is_empty() {
                let _ = sender.send(Ok(filling.freeze())).await;
            }
            // Dropping the sender ends the channel: the stream ended verified.
        });
        StreamChunks { chunks, current: Bytes::new(), start: 0, ended: false }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, ClientError> {
        match self.chunks.recv().await {
            Some(chunk) => chunk.map(Some),
            None => {
                self.ended = true;
                Ok(None)
            }
        }
    }
}

impl ChunkSource for StreamChunks {
    async fn read(&mut self, offset: u64, max: u64) -> Result<(Body, u64), ClientError> {
        while offset >= self.start + self.current.len() as u64 {
            self.start += self.current.len() as u64;
            self.current = self.next().await?.ok_or_else(|| {
                ClientError::Local(format!("the blob being copied ended before byte {offset}"))
            })?;
        }
        if offset < self.start {
            return Err(ClientError::Local(format!(
                "byte {offset} of the blob being copied was already let go"
            )));
        }
        let from = (offset - self.start) as usize;
        let len = (self.current.len() - from).min(max as usize);
        Ok((Body::from(self.current.slice(from..from + len)), len as u64))
    }

    async fn finish(&mut self) -> Result<(), ClientError> {
        self.current = Bytes::new();
        while !self.ended {
            if self.next().await?.is_some() {
                return Err(ClientError::Local("the blob being copied is longer than said".into()));
            }
        }
        Ok(())
    }
}
