//! Incompressible test data: a fast PRNG (xoshiro256++), blobs with fresh random content
//! and their SHA-256 digests, computed once before any timing starts.

use std::sync::Mutex;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::http::ChunkBody;

/// Blobs up to this size get entirely fresh bytes; bigger ones get a fresh 1 MiB head
/// followed by a shared random pool (still a unique digest, still incompressible).
const FRESH_LIMIT: u64 = 64 << 20;
const HEAD: usize = 1 << 20;

/// xoshiro256++ seeded through splitmix64.
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        tail.copy_from_slice(&last[..tail.len()]);
    }

    pub fn bytes(&mut self, len: usize) -> Bytes {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        Bytes::from(v)
    }
}

/// A blob to upload: its content as shared chunks, size and digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub chunks: Vec<Bytes>,
    pub size: u64,
    pub digest: String,
}

impl Blob {
    /// A blob from chunks; hashes the content once.
    pub fn from_chunks(chunks: Vec<Bytes>) -> Self {
        let mut h = Sha256::new();
        for c in &chunks {
            h.update(c);
        }
        let size = chunks.iter().map(|c| c.len() as u64).sum();
        Self { chunks, size, digest: format!("sha256:{}", hex::encode(h.finalize())) }
    }

    /// The whole content as a request body.
    pub fn body(&self) -> ChunkBody {
        ChunkBody::new(self.chunks.iter().cloned())
    }

    /// Bytes `start..end` as a request body (zero-copy slices of the chunks).
    pub fn range(&self, start: u64, end: u64) -> ChunkBody {
        let mut out = Vec::new();
        let mut pos = 0u64;
        for c in &self.chunks {
            let (cs, ce) = (pos, pos + c.len() as u64);
            pos = ce;
            let (s, e) = (start.max(cs), end.min(ce));
            if s < e {
                out.push(c.slice((s - cs) as usize..(e - cs) as usize));
            }
        }
        ChunkBody::new(out)
    }
}

/// Source of fresh blobs for one benchmark run.
pub struct Pool {
    rng: Mutex<Rng>,
    shared: Mutex<Bytes>,
}

impl Pool {
    /// A pool seeded from the clock and PID, so every run pushes digests no registry has.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            rng: Mutex::new(Rng::new(nanos ^ (u64::from(std::process::id()) << 32))),
            shared: Mutex::new(Bytes::new()),
        }
    }

    fn random(&self, len: usize) -> Bytes {
        self.rng.lock().map(|mut r| r.bytes(len)).unwrap_or_default()
    }

    /// Fresh random bytes (small fixtures, configs).
    pub fn bytes(&self, len: usize) -> Bytes {
        self.random(len)
    }

    /// A blob of `size` bytes with content no earlier blob had.
    pub fn blob(&self, size: u64) -> Blob {
        if size <= FRESH_LIMIT {
            return Blob::from_chunks(vec![self.random(size as usize)]);
        }
        let shared = {
            let Ok(mut guard) = self.shared.lock() else {
                return Blob::from_chunks(vec![self.random(size as usize)]);
            };
            if (guard.len() as u64) < size {
                *guard = self.random(size as usize);
            }
            guard.clone()
        };
        Blob::from_chunks(vec![self.random(HEAD), shared.slice(HEAD..size as usize)])
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_distinct_and_ranges_cover() {
        let pool = Pool::new();
        let a = pool.blob(100);
        let b = pool.blob(100);
        assert_ne!(a.digest, b.digest);
        let two = Blob::from_chunks(vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")]);
        assert_eq!(two.range(2, 5).len(), 3);
        assert_eq!(two.range(0, 7).len(), 7);
        assert_eq!(two.range(3, 7).len(), 4);
    }
}
