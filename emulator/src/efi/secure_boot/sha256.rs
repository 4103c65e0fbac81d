//! SHA-256 (FIPS 180-4) as a stream over a block function: the CPU's SHA-256 instructions when
//! the platform offers them ([`use_block_function`], from ID_AA64ISAR0_EL1 on arm64), RustCrypto's
//! portable compression otherwise. Hashing a 46 MB UKI is what Secure Boot costs most.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Compresses whole 64-byte blocks into the state.
pub type BlockFunction = fn(&mut [u32; 8], &[u8]);

static BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// Hashes from now on with `f` (`None`: the portable code again).
pub fn use_block_function(f: Option<BlockFunction>) {
    BLOCKS.store(f.map_or(0, |f| f as usize), Ordering::Relaxed);
}

/// Whether the platform's block function is in use.
pub fn accelerated() -> bool {
    BLOCKS.load(Ordering::Relaxed) != 0
}

fn portable_blocks(state: &mut [u32; 8], data: &[u8]) {
    for block in data.chunks_exact(64) {
        sha2::compress256(state, core::slice::from_ref(sha2::digest::generic_array::GenericArray::from_slice(block)));
    }
}

fn blocks(state: &mut [u32; 8], data: &[u8]) {
    match BLOCKS.load(Ordering::Relaxed) {
        0 => portable_blocks(state, data),
        // SAFETY: only ever stored from a `BlockFunction` (above).
        f => unsafe { core::mem::transmute::<usize, BlockFunction>(f)(state, data) },
    }
}

#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    buffer: [u8; 64],
    buffered: usize,
    length: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256 { state: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19], buffer: [0; 64], buffered: 0, length: 0 }
    }
}

impl Sha256 {
    pub fn update(&mut self, mut data: &[u8]) {
        self.length += data.len() as u64;
        if self.buffered > 0 {
            let n = (64 - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + n].copy_from_slice(&data[..n]);
            self.buffered += n;
            data = &data[n..];
            if self.buffered < 64 {
                return;
            }
            blocks(&mut self.state, &self.buffer);
            self.buffered = 0;
        }
        let whole = data.len() / 64 * 64;
        blocks(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.length * 8;
        self.update(&[0x80]);
        while self.buffered != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }
}

/// Whether `f` compresses as the portable code does, over two blocks of varied bytes: a block
/// function is checked before it is trusted with a verdict.
pub fn block_function_works(f: BlockFunction) -> bool {
    let message: [u8; 128] = core::array::from_fn(|i| (i * 7 + 3) as u8);
    let mut theirs = Sha256::default().state;
    let mut ours = theirs;
    f(&mut theirs, &message);
    portable_blocks(&mut ours, &message);
    theirs == ours
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn streams_agree_with_rustcrypto_at_every_split() {
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000] {
            for split in [0, 1, 63, 64, len / 2] {
                let split = split.min(len);
                let mut s = Sha256::default();
                s.update(&data[..split]);
                s.update(&data[split..len]);
                assert_eq!(s.finish()[..], sha2::Sha256::digest(&data[..len])[..], "len {len} split {split}");
            }
        }
        assert!(block_function_works(portable_blocks));
        assert!(!block_function_works(|state, _| state[0] ^= 1));
    }
}
