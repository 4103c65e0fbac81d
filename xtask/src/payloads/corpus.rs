//! The bad-image corpus: real payloads (Debian's Image, systemd-stub 254) damaged one way each.
//! Booted as the kernel, every one must end in a message naming the failed check.

use crate::payloads::Payloads;
use anyhow::{Context, Result};
use efi_emulator::efi::pe::PeImage;

/// One damaged image and the words the emulator must say about it.
pub struct BadImage {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub expect: &'static str,
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Offsets of the PE headers of a file.
struct Offsets {
    coff: usize,
    opt: usize,
    sections: usize,
}

fn offsets(f: &[u8]) -> Offsets {
    let coff = le32(f, 0x3c) as usize + 4;
    let opt = coff + 20;
    let sections = opt + u16::from_le_bytes(f[coff + 16..coff + 18].try_into().unwrap()) as usize;
    Offsets { coff, opt, sections }
}

/// File offset of the first base relocation block.
fn reloc_block(f: &[u8]) -> Result<usize> {
    let pe = PeImage::parse(f)?;
    let (rva, _) = pe.directory(5).context("no relocations")?;
    let s = pe.sections().find(|s| s.virtual_address <= rva && rva < s.virtual_address + s.virtual_size).context("relocations outside sections")?;
    Ok((s.raw_offset + (rva - s.virtual_address)) as usize)
}

pub fn bad_images(p: &Payloads) -> Result<Vec<BadImage>> {
    let kernel = std::fs::read(&p.kernel("6.12")?.image)?;
    let stub = std::fs::read(&p.stubs.iter().find(|s| !s.version.starts_with("252")).context("stub 254")?.path)?;
    let k = offsets(&kernel);
    let s = offsets(&stub);
    let patch = |base: &[u8], at: usize, bytes: &[u8]| {
        let mut v = base.to_vec();
        v[at..at + bytes.len()].copy_from_slice(bytes);
        v
    };
    let block = reloc_block(&stub)?;
    let first_entry = block + 8;
    let mut out = vec![
        BadImage { name: "truncated-kernel", bytes: kernel[..1 << 20].to_vec(), expect: "section PointerToRawData + SizeOfRawData" },
        BadImage { name: "truncated-to-dos-header", bytes: kernel[..32].to_vec(), expect: "file size" },
        BadImage { name: "e-lfanew-out-of-range", bytes: patch(&kernel, 0x3c, &0x7fff_fff8u32.to_le_bytes()), expect: "e_lfanew" },
        BadImage { name: "wrong-machine", bytes: patch(&kernel, k.coff, &0x8664u16.to_le_bytes()), expect: "Machine" },
        BadImage { name: "pe32-not-pe32plus", bytes: patch(&kernel, k.opt, &0x10bu16.to_le_bytes()), expect: "OptionalHeader.Magic" },
        BadImage { name: "section-past-size-of-image", bytes: patch(&kernel, k.sections + 40 + 12, &0x7000_0000u32.to_le_bytes()), expect: "section VirtualAddress + size" },
        BadImage { name: "overlapping-sections", bytes: patch(&kernel, k.sections + 40 + 12, &0x0002_0000u32.to_le_bytes()), expect: "section VirtualAddress" },
        BadImage { name: "huge-size-of-image", bytes: patch(&kernel, k.opt + 56, &0xfff0_0000u32.to_le_bytes()), expect: "SizeOfImage" },
        BadImage { name: "entry-outside-image", bytes: patch(&stub, s.opt + 16, &0x7fff_0000u32.to_le_bytes()), expect: "AddressOfEntryPoint" },
        BadImage { name: "relocation-block-out-of-bounds", bytes: patch(&stub, block + 4, &0x00ff_fff0u32.to_le_bytes()), expect: "base relocation block size" },
    ];
    // The first entry's type nibble becomes 3 (HIGHLOW), which AArch64 images never use.
    let mut unknown = stub.clone();
    unknown[first_entry + 1] = (unknown[first_entry + 1] & 0x0f) | 0x30;
    out.push(BadImage { name: "unknown-relocation-type", bytes: unknown, expect: "base relocation type" });
    Ok(out)
}
