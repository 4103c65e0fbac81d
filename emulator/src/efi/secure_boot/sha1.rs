//! SHA-1 (FIPS 180-4 6.1), for the certificates, `db`/`dbx` entries and TPM PCR banks that still
//! use it: one compact round loop on the SHA-256 stream's padding, about a fifth of the unrolled
//! code a crate brings into the size-bound blob.

use super::sha256::BlockStream;

fn compress(state: &mut [u32; 5], data: &[u8]) {
    for block in data.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = *state;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i / 20 {
                0 => ((b & c) | (!b & d), 0x5a82_7999),
                1 => (b ^ c ^ d, 0x6ed9_eba1),
                2 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
            *s = s.wrapping_add(v);
        }
    }
}

#[derive(Clone)]
pub struct Sha1(BlockStream<5>);

impl Default for Sha1 {
    fn default() -> Self {
        Sha1(BlockStream::new([0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476, 0xc3d2_e1f0], compress))
    }
}

impl Sha1 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }

    pub fn finish(self) -> [u8; 20] {
        let mut out = [0u8; 20];
        self.0.finish_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Sha1;

    fn sha1(parts: &[&[u8]]) -> [u8; 20] {
        let mut s = Sha1::default();
        parts.iter().for_each(|p| s.update(p));
        s.finish()
    }

    fn hex(b: &[u8]) -> std::string::String {
        b.iter().map(|b| std::format!("{b:02x}")).collect()
    }

    /// FIPS 180-4's examples (NIST's SHA-1 example values), whole and split at block edges.
    #[test]
    fn the_standards_examples() {
        assert_eq!(hex(&sha1(&[b"abc"])), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(&sha1(&[])), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(&[two_blocks])), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(hex(&sha1(&[&two_blocks[..55], &two_blocks[55..]])), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        let million = std::vec![b'a'; 1_000_000];
        assert_eq!(hex(&sha1(&[&million[..64], &million[64..]])), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    }
}
