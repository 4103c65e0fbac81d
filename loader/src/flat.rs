//! The bare-metal ELF turned into the flat blob a loader copies, with the checks that make it
//! safe to run anywhere: `_start` at 0, only `R_AARCH64_RELATIVE` dynamic relocations (the
//! entry code applies nothing else), and a header that tells the truth about the footprint.
//! Used by `cargo xtask build` and by `efi-kexec`'s build script.

use efi_emulator::abi::BlobHeader;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, RelocationFlags};

const R_AARCH64_RELATIVE: u32 = 1027;

/// The flat blob and the sizes of its parts.
pub struct FlatBlob {
    pub bytes: Vec<u8>,
    pub header: BlobHeader,
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub relocations: usize,
}

fn symbol(elf: &object::File, name: &str) -> Result<u64, String> {
    elf.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address()).ok_or(format!("symbol {name} missing from the blob ELF"))
}

/// Flattens the emulator ELF (as linked by `linker.ld`).
pub fn flatten(elf_bytes: &[u8]) -> Result<FlatBlob, String> {
    let elf = object::File::parse(elf_bytes).map_err(|e| format!("parsing the blob ELF: {e}"))?;
    let file_end = symbol(&elf, "__file_end")?;
    let mem_end = symbol(&elf, "__mem_end")?;
    let text_end = symbol(&elf, "__text_end")?;
    let rw_start = symbol(&elf, "__rw_start")?;
    if symbol(&elf, "_start")? != 0 {
        return Err("_start must be at offset 0".into());
    }
    let mut flat = vec![0u8; file_end as usize];
    for seg in elf.segments() {
        let bytes = seg.data().map_err(|e| format!("segment data: {e}"))?;
        if bytes.is_empty() {
            continue;
        }
        let at = seg.address() as usize;
        if at + bytes.len() > flat.len() {
            return Err(format!("segment at {at:#x} (+{:#x}) lies past __file_end {file_end:#x}", bytes.len()));
        }
        flat[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let mut relocations = 0;
    for (offset, reloc) in elf.dynamic_relocations().into_iter().flatten() {
        match reloc.flags() {
            RelocationFlags::Elf { r_type: R_AARCH64_RELATIVE } => relocations += 1,
            other => return Err(format!("dynamic relocation at {offset:#x} is {other:?}: the blob only applies R_AARCH64_RELATIVE")),
        }
    }
    if let Some(relr) = elf.section_by_name(".relr.dyn") {
        let data = relr.data().map_err(|e| format!(".relr.dyn: {e}"))?;
        for at in relr_offsets(data) {
            if at + 8 > file_end {
                return Err(format!("packed relocation at {at:#x} lies past __file_end {file_end:#x}"));
            }
            relocations += 1;
        }
    }
    let header = BlobHeader::parse(&flat).map_err(|e| format!("the built blob's header: {e}"))?;
    if header.mem_size != mem_end {
        return Err(format!("header mem_size {:#x} != __mem_end {mem_end:#x}", header.mem_size));
    }
    Ok(FlatBlob { bytes: flat, header, text: text_end, rodata: rw_start - text_end, data: file_end - rw_start, relocations })
}

/// The offsets a packed (RELR) relocation section relocates, as the entry code decodes it: an
/// even word is an offset, an odd one a bitmap of the 63 words after the last offset.
pub fn relr_offsets(section: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut next = 0u64;
    for word in section.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())) {
        if word & 1 == 0 {
            out.push(word);
            next = word + 8;
        } else {
            out.extend((1..64).filter(|bit| word >> bit & 1 != 0).map(|bit| next + (bit - 1) * 8));
            next += 63 * 8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn relr_entries_decode_to_offsets() {
        let words: Vec<u64> = vec![0x1000, 0b1011, 0x2000, 1 | (1 << 63)];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        // 0x1000, then bits 1 and 3 of the bitmap: 0x1008 and 0x1018; 0x2000, then bit 63: the
        // 63rd word after it.
        assert_eq!(super::relr_offsets(&bytes), [0x1000, 0x1008, 0x1018, 0x2000, 0x2008 + 62 * 8]);
    }
}
