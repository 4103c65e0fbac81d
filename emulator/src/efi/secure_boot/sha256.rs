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

/// A stream of 64-byte blocks into `W` 32-bit state words, padded as SHA-1 and SHA-2's 256-bit
/// family are (FIPS 180-4 5.1.1: 0x80, zeros, the length in bits, big-endian).
#[derive(Clone)]
pub struct BlockStream<const W: usize> {
    state: [u32; W],
    buffer: [u8; 64],
    buffered: usize,
    length: u64,
    compress: fn(&mut [u32; W], &[u8]),
}

impl<const W: usize> BlockStream<W> {
    pub fn new(state: [u32; W], compress: fn(&mut [u32; W], &[u8])) -> Self {
        BlockStream { state, buffer: [0; 64], buffered: 0, length: 0, compress }
    }

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
            (self.compress)(&mut self.state, &self.buffer);
            self.buffered = 0;
        }
        let whole = data.len() / 64 * 64;
        (self.compress)(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The digest: the state words, big-endian, into `out` (4 * W bytes).
    pub fn finish_into(mut self, out: &mut [u8]) {
        let bits = self.length * 8;
        self.update(&[0x80]);
        while self.buffered != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
    }
}

#[derive(Clone)]
pub struct Sha256(BlockStream<8>);

impl Default for Sha256 {
    fn default() -> Self {
        Sha256(BlockStream::new([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19], blocks))
    }
}

impl Sha256 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }

    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.0.finish_into(&mut out);
        out
    }
}

/// Whether `f` compresses as the portable code does, over two blocks of varied bytes: a block
/// function is checked before it is trusted with a verdict.
pub fn block_function_works(f: BlockFunction) -> bool {
    let message: [u8; 128] = core::array::from_fn(|i| (i * 7 + 3) as u8);
    let mut theirs = Sha256::default().0.state;
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
