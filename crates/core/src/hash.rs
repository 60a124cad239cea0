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
