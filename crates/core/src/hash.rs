//! Content hashes.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Feeds `values` to `hasher` as little-endian bytes, a block at a time.
pub fn hash_values<T: Copy, const N: usize>(hasher: &mut Sha256, values: &[T], bytes: impl Fn(T) -> [u8; N]) {
    let mut block = Vec::with_capacity(N * 4096);
    for chunk in values.chunks(4096) {
        block.clear();
        chunk.iter().for_each(|&v| block.extend_from_slice(&bytes(v)));
        hasher.update(&block);
    }
}

/// Bytes of a raw file hashed at a time for its [`content_hash`].
pub const CONTENT_CHUNK_BYTES: u64 = 1 << 20;

/// Lower-case hex SHA-256 of each [`CONTENT_CHUNK_BYTES`] chunk of `bytes`, in order (the last
/// may be short). `bytes` must start on a chunk boundary of its file.
pub fn chunk_hashes(bytes: &[u8]) -> Vec<String> {
    bytes.chunks(CONTENT_CHUNK_BYTES as usize).map(sha256_hex).collect()
}

/// A raw file's content hash: the SHA-256 of its chunks' SHA-256s, in order. Shards that start
/// on chunk boundaries hash their own bytes, so the hash does not depend on how the file was
/// cut.
pub fn content_hash(chunks: &[String]) -> String {
    let mut hasher = Sha256::new();
    for chunk in chunks {
        hasher.update(chunk.as_bytes());
    }
    hex::encode(hasher.finalize())
}
