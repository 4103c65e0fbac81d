//! The UEFI compression format (UEFI 2.10 section 19, "Compression Algorithm Specification"),
//! decoding side, for EFI_DECOMPRESS_PROTOCOL: LZ77 over an 8 KiB window with blocks of
//! canonical Huffman codes. Version 1 (the EFI algorithm the protocol serves) takes 4-bit
//! position-set counts; version 2 (Tiano) 5-bit ones.
//!
//! The data is hostile input: every table is checked for completeness, every copy for its
//! source, and the output never grows past the size the header declares.

/// The 8-byte header: compressed size (after the header), original size.
pub const HEADER: usize = 8;

/// Symbols of the character-and-length set: 256 literals and lengths 3..=256.
const NC: usize = 0xff + MAXMATCH + 2 - THRESHOLD;
const MAXMATCH: usize = 256;
const THRESHOLD: usize = 3;
/// Symbols of the extra set (code lengths of the C set) and most of the position set.
const NT: usize = 19;
const MAXNP: usize = 31;
const CBIT: u32 = 9;
const TBIT: u32 = 5;
/// Longest code.
const MAX_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// EFI: 4-bit position-set counts (EFI_DECOMPRESS_PROTOCOL).
    Efi,
    /// Tiano: 5-bit position-set counts.
    Tiano,
}

/// Why data does not decompress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecompressError {
    /// Shorter than its header, or than the compressed size the header gives.
    Truncated { have: usize, need: usize },
    /// The destination is smaller than the original size.
    TooSmall { have: usize, need: usize },
    /// A code-length table that is not a complete prefix code, or has too many entries.
    BadTable,
    /// A match that reaches before the start of the output.
    BadDistance,
}

impl core::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { have, need } => write!(f, "compressed data of {have} bytes, its header needs {need}"),
            Self::TooSmall { have, need } => write!(f, "destination of {have} bytes for {need} bytes of output"),
            Self::BadTable => write!(f, "a Huffman code-length table that is not a complete code"),
            Self::BadDistance => write!(f, "a match before the start of the output"),
        }
    }
}

/// (compressed size, original size) from the header.
pub fn sizes(src: &[u8]) -> Result<(usize, usize), DecompressError> {
    let head = src.get(..HEADER).ok_or(DecompressError::Truncated { have: src.len(), need: HEADER })?;
    let le = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]) as usize;
    let (comp, orig) = (le(0), le(4));
    if comp.checked_add(HEADER).is_none_or(|n| n > src.len()) {
        return Err(DecompressError::Truncated { have: src.len(), need: comp.saturating_add(HEADER) });
    }
    Ok((comp, orig))
}

/// Reads the stream most significant bit first; past its end, zeros (as the format expects).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    have: u32,
}

impl Bits<'_> {
    fn refill(&mut self) {
        while self.have <= 56 {
            let b = self.data.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            self.buf |= (b as u64) << (56 - self.have);
            self.have += 8;
        }
    }

    fn peek(&mut self, n: u32) -> u32 {
        self.refill();
        if n == 0 {
            0
        } else {
            (self.buf >> (64 - n)) as u32
        }
    }

    fn skip(&mut self, n: u32) {
        self.refill();
        self.buf = if n == 64 { 0 } else { self.buf << n };
        self.have -= n;
    }

    fn get(&mut self, n: u32) -> u32 {
        let v = self.peek(n);
        self.skip(n);
        v
    }
}

/// A canonical Huffman code: shorter codes first, equal lengths in symbol order; or one
/// symbol that takes no bits (the format's "all the same" table).
struct Code<const N: usize> {
    count: [u16; MAX_LEN + 1],
    symbols: [u16; N],
    constant: Option<u16>,
}

impl<const N: usize> Code<N> {
    fn constant(symbol: u32) -> Self {
        Code { count: [0; MAX_LEN + 1], symbols: [0; N], constant: Some(symbol as u16) }
    }

    /// From code lengths (0: unused). The code must be complete, as the format's decoders
    /// require; no used symbol at all is accepted (a block that never decodes from it).
    fn new(lengths: &[u8]) -> Result<Self, DecompressError> {
        let mut c = Code { count: [0; MAX_LEN + 1], symbols: [0; N], constant: None };
        for &l in lengths {
            if l as usize > MAX_LEN {
                return Err(DecompressError::BadTable);
            }
            c.count[l as usize] += 1;
        }
        c.count[0] = 0;
        let kraft: u32 = (1..=MAX_LEN).map(|l| (c.count[l] as u32) << (MAX_LEN - l)).sum();
        if kraft != 1 << MAX_LEN && kraft != 0 {
            return Err(DecompressError::BadTable);
        }
        let mut offset = [0u16; MAX_LEN + 2];
        for l in 1..=MAX_LEN {
            offset[l + 1] = offset[l] + c.count[l];
        }
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                c.symbols[offset[l as usize] as usize] = sym as u16;
                offset[l as usize] += 1;
            }
        }
        Ok(c)
    }

    fn decode(&self, bits: &mut Bits) -> Result<usize, DecompressError> {
        if let Some(s) = self.constant {
            return Ok(s as usize);
        }
        let (mut code, mut first, mut index) = (0u32, 0u32, 0u32);
        for len in 1..=MAX_LEN {
            code |= bits.get(1);
            let count = self.count[len] as u32;
            if code - first < count {
                return Ok(self.symbols[(index + code - first) as usize] as usize);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(DecompressError::BadTable)
    }
}

/// The extra or position set's code lengths: a count of `count_bits`, then each length as 3
/// bits (7 and more as 7 plus one `1` per step and a closing `0`); after the `special`-th, a
/// 2-bit run of zero lengths.
fn read_pt_lengths<const N: usize>(bits: &mut Bits, max: usize, count_bits: u32, special: Option<usize>) -> Result<Code<N>, DecompressError> {
    let n = bits.get(count_bits) as usize;
    if n == 0 {
        return Ok(Code::constant(bits.get(count_bits)));
    }
    if n > max {
        return Err(DecompressError::BadTable);
    }
    let mut lengths = [0u8; N];
    let mut i = 0;
    while i < n {
        let mut len = bits.peek(3);
        if len == 7 {
            let mut probe = 1u64 << 60;
            bits.refill();
            while bits.buf & probe != 0 && len < MAX_LEN as u32 + 1 {
                probe >>= 1;
                len += 1;
            }
        }
        bits.skip(if len < 7 { 3 } else { len - 3 });
        lengths[i] = len as u8;
        i += 1;
        if Some(i) == special {
            for _ in 0..bits.get(2) {
                if i < n {
                    lengths[i] = 0;
                    i += 1;
                }
            }
        }
    }
    Code::new(&lengths[..max])
}

/// The character-and-length set's code lengths, coded with the extra set: 0 one zero length,
/// 1 a run of 3..=18, 2 a run of 20..=531, n > 2 the length n - 2.
fn read_c_lengths(bits: &mut Bits, extra: &Code<NT>) -> Result<Code<NC>, DecompressError> {
    let n = bits.get(CBIT) as usize;
    if n == 0 {
        return Ok(Code::constant(bits.get(CBIT)));
    }
    if n > NC {
        return Err(DecompressError::BadTable);
    }
    let mut lengths = [0u8; NC];
    let mut i = 0;
    while i < n {
        match extra.decode(bits)? {
            sym @ 0..=2 => {
                let run = match sym {
                    0 => 1,
                    1 => bits.get(4) as usize + 3,
                    _ => bits.get(CBIT) as usize + 20,
                };
                i = (i + run).min(n);
            }
            sym => {
                lengths[i] = (sym - 2) as u8;
                i += 1;
            }
        }
    }
    Code::new(&lengths)
}

/// Decompresses `src` (header included) into `dst`; returns the original size.
pub fn decompress(src: &[u8], dst: &mut [u8], version: Version) -> Result<usize, DecompressError> {
    let (comp, orig) = sizes(src)?;
    if dst.len() < orig {
        return Err(DecompressError::TooSmall { have: dst.len(), need: orig });
    }
    let mut bits = Bits { data: &src[HEADER..HEADER + comp], pos: 0, buf: 0, have: 0 };
    let pbit = match version {
        Version::Efi => 4,
        Version::Tiano => 5,
    };
    let mut out = 0;
    while out < orig {
        // A block of 0 symbols is one of 65536: the reference decoder counts down in 16 bits.
        let block = match bits.get(16) {
            0 => 1 << 16,
            n => n,
        };
        let extra = read_pt_lengths::<NT>(&mut bits, NT, TBIT, Some(3))?;
        let chars = read_c_lengths(&mut bits, &extra)?;
        let positions = read_pt_lengths::<MAXNP>(&mut bits, MAXNP, pbit, None)?;
        for _ in 0..block {
            let c = chars.decode(&mut bits)?;
            if c < 256 {
                dst[out] = c as u8;
                out += 1;
            } else {
                let len = c - (256 - THRESHOLD);
                let p = positions.decode(&mut bits)? as u32;
                let distance = if p > 1 { (1usize << (p - 1)) + bits.get(p - 1) as usize } else { p as usize } + 1;
                let from = out.checked_sub(distance).ok_or(DecompressError::BadDistance)?;
                for k in 0..len.min(orig - out) {
                    dst[out + k] = dst[from + k];
                }
                out += len.min(orig - out);
            }
            if out >= orig {
                break;
            }
        }
    }
    Ok(orig)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors made by an independent implementation of the EDK2 compressor (`EfiCompress`,
    /// `TianoCompress` of the `uefi_firmware` Python package), from the inputs below.
    const TEXT: &[u8] = include_bytes!("../../tests/data/decompress/text.txt");
    const TEXT_EFI: &[u8] = include_bytes!("../../tests/data/decompress/text.efi");
    const TEXT_TIANO: &[u8] = include_bytes!("../../tests/data/decompress/text.tiano");
    const MIXED_EFI: &[u8] = include_bytes!("../../tests/data/decompress/mixed.efi");
    const ZEROS_EFI: &[u8] = include_bytes!("../../tests/data/decompress/zeros.efi");

    /// 80 KiB: pseudo-random bytes, runs, and repeats at every distance class (several blocks).
    pub fn mixed() -> Vec<u8> {
        let mut v = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        while v.len() < 80 * 1024 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 4 {
                0 => v.extend((0..(x >> 8) % 64).map(|i| (x >> (i % 56)) as u8)),
                1 => v.extend(core::iter::repeat_n((x >> 16) as u8, ((x >> 24) % 300) as usize)),
                _ => {
                    let back = ((x >> 32) as usize % 8192).min(v.len());
                    let len = ((x >> 48) % 200) as usize;
                    let start = v.len() - back;
                    for i in 0..len.min(back) {
                        v.push(v[start + i]);
                    }
                }
            }
        }
        v.truncate(80 * 1024);
        v
    }

    fn run(src: &[u8], version: Version) -> Result<Vec<u8>, DecompressError> {
        let (_, orig) = sizes(src)?;
        let mut out = vec![0u8; orig];
        decompress(src, &mut out, version).map(|n| {
            out.truncate(n);
            out
        })
    }

    #[test]
    fn decodes_what_the_reference_compressor_made() {
        assert_eq!(run(TEXT_EFI, Version::Efi).unwrap(), TEXT);
        assert_eq!(run(TEXT_TIANO, Version::Tiano).unwrap(), TEXT);
        assert_eq!(run(MIXED_EFI, Version::Efi).unwrap(), mixed());
        assert_eq!(run(ZEROS_EFI, Version::Efi).unwrap(), vec![0u8; 100_000]);
    }

    #[test]
    fn damaged_data_is_refused_not_overrun() {
        assert_eq!(run(&TEXT_EFI[..5], Version::Efi), Err(DecompressError::Truncated { have: 5, need: HEADER }));
        assert!(matches!(run(&TEXT_EFI[..TEXT_EFI.len() - 1], Version::Efi), Err(DecompressError::Truncated { .. })));
        let mut small = vec![0u8; TEXT.len() - 1];
        assert_eq!(decompress(TEXT_EFI, &mut small, Version::Efi), Err(DecompressError::TooSmall { have: TEXT.len() - 1, need: TEXT.len() }));
        // Every single-byte corruption either decodes to something of the declared size or is
        // refused; none panics or writes past the output.
        for i in HEADER..MIXED_EFI.len().min(HEADER + 400) {
            let mut bad = MIXED_EFI.to_vec();
            bad[i] ^= 0x5a;
            let _ = run(&bad, Version::Efi);
        }
    }
}
