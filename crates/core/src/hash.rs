//! Content hashes.

use sha2::{Digest, Sha256};

/// A writer that passes bytes on and takes their SHA-256 on the way, for an object hashed
/// as it is written rather than held whole.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: std::io::Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter { inner, hasher: Sha256::new() }
    }

    /// Lower-case hex SHA-256 of the bytes written.
    pub fn sha256_hex(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

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
