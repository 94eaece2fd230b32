//! A digest computation whose state can be saved and resumed in another process: an
//! upload begun on one replica is continued on another, which must go on hashing where
//! the first stopped, without the bytes (an unfinished S3 multipart upload cannot be read
//! back).
//!
//! Written by hand around `sha2`'s public compression functions because the `sha2`
//! release line in use cannot export or import its midstate; only the block buffering
//! and the final padding (FIPS 180-4, 5.1) are ours, the compression is the crate's.

use sha2::digest::generic_array::GenericArray;

use crate::{Algorithm, Digest};

/// SHA-256 or SHA-512 in progress: the chaining state, the bytes of a block not yet
/// complete, and the length so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableHasher {
    state: State,
    pending: Vec<u8>,
    length: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Sha256([u32; 8]),
    Sha512([u64; 8]),
}

const SHA256_INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const SHA512_INITIAL: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// Why saved state could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("saved hash state is not valid: {0}")]
pub struct StateError(&'static str);

impl ResumableHasher {
    pub fn new(algorithm: Algorithm) -> ResumableHasher {
        let state = match algorithm {
            Algorithm::Sha256 => State::Sha256(SHA256_INITIAL),
            Algorithm::Sha512 => State::Sha512(SHA512_INITIAL),
        };
        ResumableHasher { state, pending: Vec::new(), length: 0 }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.state {
            State::Sha256(_) => Algorithm::Sha256,
            State::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.length as u64
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    fn block_len(&self) -> usize {
        match self.state {
            State::Sha256(_) => 64,
            State::Sha512(_) => 128,
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len() as u128;
        let block = self.block_len();
        if !self.pending.is_empty() {
            let take = (block - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < block {
                return;
            }
            let full = std::mem::take(&mut self.pending);
            self.compress(&full);
        }
        let whole = bytes.len() - bytes.len() % block;
        self.compress(&bytes[..whole]);
        self.pending.extend_from_slice(&bytes[whole..]);
    }

    /// Runs the compression function over whole blocks.
    fn compress(&mut self, blocks: &[u8]) {
        match &mut self.state {
            State::Sha256(state) => {
                let blocks: Vec<_> =
                    blocks.chunks_exact(64).map(GenericArray::clone_from_slice).collect();
                sha2::compress256(state, &blocks);
            }
            State::Sha512(state) => {
                let blocks: Vec<_> =
                    blocks.chunks_exact(128).map(GenericArray::clone_from_slice).collect();
                sha2::compress512(state, &blocks);
            }
        }
    }

    pub fn finish(mut self) -> Digest {
        let block = self.block_len();
        // The length field: 64 bits for SHA-256, 128 for SHA-512.
        let field = block / 8;
        let bits = self.length.wrapping_mul(8);
        let mut tail = std::mem::take(&mut self.pending);
        tail.push(0x80);
        while tail.len() % block != block - field {
            tail.push(0);
        }
        match self.state {
            State::Sha256(_) => tail.extend_from_slice(&(bits as u64).to_be_bytes()),
            State::Sha512(_) => tail.extend_from_slice(&bits.to_be_bytes()),
        }
        self.compress(&tail);
        let bytes: Vec<u8> = match self.state {
            State::Sha256(state) => state.iter().flat_map(|w| w.to_be_bytes()).collect(),
            State::Sha512(state) => state.iter().flat_map(|w| w.to_be_bytes()).collect(),
        };
        Digest::from_hex(self.algorithm(), hex::encode(bytes))
    }

    /// The state as bytes: the algorithm, the length, the chaining words and the
    /// pending bytes.
    pub fn save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 64 + self.pending.len());
        match &self.state {
            State::Sha256(state) => {
                out.push(1);
                out.extend_from_slice(&self.length.to_be_bytes());
                state.iter().for_each(|w| out.extend_from_slice(&w.to_be_bytes()));
            }
            State::Sha512(state) => {
                out.push(2);
                out.extend_from_slice(&self.length.to_be_bytes());
                state.iter().for_each(|w| out.extend_from_slice(&w.to_be_bytes()));
            }
        }
        out.extend_from_slice(&self.pending);
        out
    }

    /// The hasher [`ResumableHasher::save`] saved.
    pub fn restore(bytes: &[u8]) -> Result<ResumableHasher, StateError> {
        let (&kind, rest) = bytes.split_first().ok_or(StateError("empty"))?;
        let length = rest.get(..16).ok_or(StateError("too short"))?;
        let length = u128::from_be_bytes(length.try_into().map_err(|_| StateError("length"))?);
        let rest = &rest[16..];
        let (state, pending) = match kind {
            1 => {
                let words = rest.get(..32).ok_or(StateError("too short"))?;
                let mut state = [0u32; 8];
                for (word, bytes) in state.iter_mut().zip(words.chunks_exact(4)) {
                    *word = u32::from_be_bytes(bytes.try_into().map_err(|_| StateError("word"))?);
                }
                (State::Sha256(state), &rest[32..])
            }
            2 => {
                let words = rest.get(..64).ok_or(StateError("too short"))?;
                let mut state = [0u64; 8];
                for (word, bytes) in state.iter_mut().zip(words.chunks_exact(8)) {
                    *word = u64::from_be_bytes(bytes.try_into().map_err(|_| StateError("word"))?);
                }
                (State::Sha512(state), &rest[64..])
            }
            _ => return Err(StateError("unknown algorithm")),
        };
        let hasher = ResumableHasher { state, pending: pending.to_vec(), length };
        let consistent = hasher.pending.len() < hasher.block_len()
            && hasher.length % hasher.block_len() as u128 == hasher.pending.len() as u128;
        match consistent {
            true => Ok(hasher),
            false => Err(StateError("pending bytes do not match the length")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hasher;

    /// Deterministic bytes without a random-number crate.
    fn bytes(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x9e3779b9;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn matches_sha2_for_every_length_around_the_block_edges_and_every_split() {
        let data = bytes(300);
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            for len in 0..data.len() {
                let mut expected = Hasher::new(algorithm);
                expected.update(&data[..len]);
                let expected = expected.finish();
                for split in [0, 1, len / 3, len / 2, len] {
                    let split = split.min(len);
                    let mut hasher = ResumableHasher::new(algorithm);
                    hasher.update(&data[..split]);
                    // Saved and restored in the middle, as another replica would.
                    let mut hasher = ResumableHasher::restore(&hasher.save()).expect("state");
                    hasher.update(&data[split..len]);
                    assert_eq!(hasher.len(), len as u64);
                    assert_eq!(hasher.finish(), expected, "{algorithm:?} len {len} split {split}");
                }
            }
        }
    }

    #[test]
    fn bad_state_is_refused() {
        assert!(ResumableHasher::restore(&[]).is_err());
        assert!(ResumableHasher::restore(&[3; 60]).is_err());
        let mut saved = ResumableHasher::new(Algorithm::Sha256).save();
        saved.push(7); // a pending byte the length does not account for
        assert!(ResumableHasher::restore(&saved).is_err());
    }
}
