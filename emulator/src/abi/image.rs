//! The emulator as an arm64 `Image` with a PE32+ header (`efi-emulator.efi`): the door that
//! `kexec_file_load` opens on a kernel where `kexec_load` is closed (lockdown, or a kernel
//! built without it). The kernel's arm64 Image loader takes any file with an arm64 Image
//! header, checks its PE/Authenticode signature under lockdown, places it 2 MiB aligned and
//! enters its first instruction with `x0` = a device tree it built (see
//! [`super::dtb_entry`]).
//!
//! The file is the flat blob behind one page of headers, laid out as Linux lays out its own
//! Image (`arch/arm64/kernel/head.S`, `efi-header.S`):
//!
//! | offset | what |
//! |---:|---|
//! | 0x00 | `code0`: an instruction whose bytes start with "MZ" (the DOS magic) and that changes no register |
//! | 0x04 | `code1`: `b` to the blob at [`PREFIX_SIZE`] |
//! | 0x08 | `text_offset` 0, `image_size` (the whole footprint), `flags` (little endian, 4 KiB granule, anywhere in RAM) |
//! | 0x38 | `ARM\x64`, then the offset of the PE header (0x40) |
//! | 0x40 | PE signature, COFF header, PE32+ optional header, two sections |
//! | 0x1000 | the flat blob, unchanged, padded to the file alignment |
//!
//! The sections describe the blob (`.text` read-execute, `.data` read-write with `.bss` in its
//! virtual size), so `sbsign`/`pesign` can sign the file and the kernel's
//! `verify_pefile_signature` can check it. The PE entry point is a three-instruction stub that
//! returns `EFI_UNSUPPORTED`: started by real UEFI firmware, the emulator has nothing to do.

use super::BlobHeader;
use crate::mem::{le_u16, le_u32, le_u64};
use alloc::vec::Vec;
use core::fmt;

/// Bytes of headers in front of the blob: one page, so the blob stays page aligned when the
/// kernel places the Image 2 MiB aligned.
pub const PREFIX_SIZE: usize = 0x1000;
/// Room after the file for the signature `sbsign` appends: the kernel copies the whole file,
/// signature included, into the `image_size` it reserves.
pub const SIGNATURE_ROOM: u64 = 64 * 1024;
/// `ccmp x18, #0, #0xd, pl`: its first two bytes are "MZ", it writes only the flags (Linux's
/// `efi_signature_nop`). x18 is the platform register: never written.
pub const CODE0_MZ_NOP: u32 = 0xfa40_5a4d;
/// `ARM\x64` at offset 0x38.
pub const ARM64_MAGIC: [u8; 4] = *b"ARM\x64";
/// Image flags: bit 0 clear (little endian), bits 1-2 = 1 (4 KiB pages: the emulator's own
/// translation granule, which the CPU must support), bit 3 set (anywhere in physical memory).
pub const IMAGE_FLAGS: u64 = (1 << 1) | (1 << 3);
const PE_OFFSET: usize = 0x40;
const FILE_ALIGNMENT: usize = 0x200;
const SECTION_ALIGNMENT: u32 = 0x1000;
const OPTIONAL_HEADER_SIZE: usize = 240;
const SECTIONS_AT: usize = PE_OFFSET + 24 + OPTIONAL_HEADER_SIZE;
/// Where the `EFI_UNSUPPORTED` stub lives, after the section table.
const EFI_STUB_AT: usize = 0x200;
/// `movz x0, #3; movk x0, #0x8000, lsl #48; ret`: return EFI_UNSUPPORTED (0x8000000000000003).
const EFI_UNSUPPORTED_STUB: [u32; 3] = [0xd280_0060, 0xf2f0_0000, 0xd65f_03c0];

/// `b` from `from` to `to` (both offsets in the file).
fn branch(from: usize, to: usize) -> u32 {
    0x1400_0000 | ((((to as i64 - from as i64) >> 2) as u32) & 0x03ff_ffff)
}

/// The Image's `image_size` for a blob of `file_size` bytes with a footprint of `mem_size`: the
/// headers, the blob's footprint, and room for a signature after the file.
pub fn image_size(file_size: u64, mem_size: u64) -> u64 {
    let file = file_size.next_multiple_of(FILE_ALIGNMENT as u64);
    (PREFIX_SIZE as u64 + mem_size.max(file + SIGNATURE_ROOM)).next_multiple_of(SECTION_ALIGNMENT as u64)
}

/// What the kernel reserved for the Image whose blob runs at `blob_start`.
pub fn footprint(blob_start: u64, file_size: u64, mem_size: u64) -> crate::mem::Extent {
    crate::mem::Extent::new(blob_start.saturating_sub(PREFIX_SIZE as u64), image_size(file_size, mem_size))
}

/// What the headers of an `efi-emulator.efi` say, read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    pub image_size: u64,
    pub flags: u64,
    /// The blob's header, at [`PREFIX_SIZE`].
    pub blob: BlobHeader,
}

/// Why a file is not an `efi-emulator.efi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageError {
    pub what: &'static str,
    pub value: u64,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an efi-emulator Image: {} ({:#x})", self.what, self.value)
    }
}

impl core::error::Error for ImageError {}

/// Wraps the flat blob into the Image form. `blob` must be a valid blob (its header is read).
pub fn wrap(blob: &[u8]) -> Result<Vec<u8>, super::BlobHeaderError> {
    let header = BlobHeader::parse(blob)?;
    let text_end = text_size(&header).min(blob.len() as u64);
    let file_size = (blob.len() as u64).next_multiple_of(FILE_ALIGNMENT as u64) as usize;
    let image_size = image_size(blob.len() as u64, header.mem_size);

    let mut f = alloc::vec![0u8; PREFIX_SIZE + file_size];
    let put16 = |f: &mut [u8], at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut [u8], at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |f: &mut [u8], at: usize, v: u64| f[at..at + 8].copy_from_slice(&v.to_le_bytes());

    // The arm64 Image header.
    put32(&mut f, 0x00, CODE0_MZ_NOP);
    put32(&mut f, 0x04, branch(0x04, PREFIX_SIZE));
    put64(&mut f, 0x08, 0); // text_offset
    put64(&mut f, 0x10, image_size);
    put64(&mut f, 0x18, IMAGE_FLAGS);
    f[0x38..0x3c].copy_from_slice(&ARM64_MAGIC);
    put32(&mut f, 0x3c, PE_OFFSET as u32);

    // PE signature and COFF header.
    let pe = PE_OFFSET;
    f[pe..pe + 4].copy_from_slice(b"PE\0\0");
    put16(&mut f, pe + 4, crate::efi::pe::MACHINE_AARCH64);
    put16(&mut f, pe + 6, 2); // NumberOfSections
    put16(&mut f, pe + 20, OPTIONAL_HEADER_SIZE as u16);
    // EXECUTABLE_IMAGE | LINE_NUMS_STRIPPED | DEBUG_STRIPPED, as Linux's Image.
    put16(&mut f, pe + 22, 0x0206);

    // PE32+ optional header.
    let o = pe + 24;
    let data_size = file_size as u64 - text_end;
    let bss = image_size - PREFIX_SIZE as u64 - file_size as u64;
    put16(&mut f, o, crate::efi::pe::OPTIONAL_MAGIC_PE32_PLUS);
    put32(&mut f, o + 4, text_end as u32); // SizeOfCode
    put32(&mut f, o + 8, data_size as u32); // SizeOfInitializedData
    put32(&mut f, o + 12, bss as u32); // SizeOfUninitializedData
    put32(&mut f, o + 16, EFI_STUB_AT as u32); // AddressOfEntryPoint
    put32(&mut f, o + 20, PREFIX_SIZE as u32); // BaseOfCode
    put64(&mut f, o + 24, 0); // ImageBase
    put32(&mut f, o + 32, SECTION_ALIGNMENT);
    put32(&mut f, o + 36, FILE_ALIGNMENT as u32);
    let version = crate::VERSION.split('.').map(|p| p.parse::<u16>().unwrap_or(0)).collect::<Vec<_>>();
    put16(&mut f, o + 44, version.first().copied().unwrap_or(0)); // MajorImageVersion
    put16(&mut f, o + 46, version.get(1).copied().unwrap_or(0)); // MinorImageVersion
    put32(&mut f, o + 56, image_size as u32); // SizeOfImage
    put32(&mut f, o + 60, PREFIX_SIZE as u32); // SizeOfHeaders
    put16(&mut f, o + 68, crate::efi::pe::SUBSYSTEM_EFI_APPLICATION);
    put32(&mut f, o + 108, 16); // NumberOfRvaAndSizes: all zero until a signer fills the certificate table

    // Sections: the blob's code, and everything after it (rodata, data, .bss as virtual size).
    let section = |f: &mut [u8], i: usize, name: &[u8], rva: u64, vsize: u64, raw: u64, characteristics: u32| {
        let s = SECTIONS_AT + i * 40;
        f[s..s + name.len()].copy_from_slice(name);
        put32(f, s + 8, vsize as u32);
        put32(f, s + 12, rva as u32);
        put32(f, s + 16, raw as u32);
        put32(f, s + 20, rva as u32); // PointerToRawData: the file is laid out as it runs
        put32(f, s + 36, characteristics);
    };
    section(&mut f, 0, b".text", PREFIX_SIZE as u64, text_end, text_end, 0x6000_0020); // CODE | EXECUTE | READ
    section(&mut f, 1, b".data", PREFIX_SIZE as u64 + text_end, image_size - PREFIX_SIZE as u64 - text_end, data_size, 0xc000_0040); // INITIALIZED_DATA | READ | WRITE

    for (i, insn) in EFI_UNSUPPORTED_STUB.iter().enumerate() {
        put32(&mut f, EFI_STUB_AT + 4 * i, *insn);
    }
    f[PREFIX_SIZE..PREFIX_SIZE + blob.len()].copy_from_slice(blob);
    Ok(f)
}

/// Bytes of the blob's code, as its header says; a blob that predates `text_size` is
/// described as all code.
fn text_size(header: &BlobHeader) -> u64 {
    match header.text_size {
        0 => header.file_size,
        n => n as u64,
    }
}

/// Reads the headers of an `efi-emulator.efi` back, checking what the kernel's arm64 Image
/// loader checks (`image_probe`, `image_load`) and that the blob inside is one.
pub fn parse(file: &[u8]) -> Result<ImageHeader, ImageError> {
    let bad = |what, value: u64| Err(ImageError { what, value });
    if file.len() < PREFIX_SIZE + super::BLOB_HEADER_SIZE as usize {
        return bad("file shorter than the headers and the blob header", file.len() as u64);
    }
    if file[0x38..0x3c] != ARM64_MAGIC {
        return bad("no ARM\\x64 magic at 0x38", le_u32(file, 0x38).unwrap_or(0) as u64);
    }
    if file[..2] != *b"MZ" {
        return bad("no MZ at offset 0", le_u16(file, 0).unwrap_or(0) as u64);
    }
    let text_offset = le_u64(file, 0x08).unwrap_or(0);
    let image_size = le_u64(file, 0x10).unwrap_or(0);
    let flags = le_u64(file, 0x18).unwrap_or(0);
    if image_size < file.len() as u64 {
        return bad("image_size smaller than the file", image_size);
    }
    if flags & 1 != 0 {
        return bad("big-endian flag set", flags);
    }
    let blob = BlobHeader::parse(&file[PREFIX_SIZE..PREFIX_SIZE + blob_len(file)]).map_err(|_| ImageError { what: "no blob header at 0x1000", value: PREFIX_SIZE as u64 })?;
    if PREFIX_SIZE as u64 + blob.mem_size > image_size {
        return bad("image_size does not cover the blob's footprint", image_size);
    }
    Ok(ImageHeader { text_offset, image_size, flags, blob })
}

/// The blob's own length inside the file (its header says), or what the file holds.
fn blob_len(file: &[u8]) -> usize {
    let rest = file.len() - PREFIX_SIZE;
    le_u64(file, PREFIX_SIZE + 24).map_or(rest, |n| (n as usize).min(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{ABI_VERSION, BLOB_FLAG_PARAM_SLOT, BLOB_FLAG_POSITION_INDEPENDENT, BLOB_HEADER_SIZE, BLOB_MAGIC};
    use crate::efi::pe::PeImage;

    /// A blob of 0x2345 bytes: 0x1000 of code, a footprint of 0x8000.
    fn blob() -> Vec<u8> {
        let mut b = alloc::vec![0xa5u8; 0x2345];
        b[..72].fill(0);
        b[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
        b[8..16].copy_from_slice(&BLOB_MAGIC);
        b[16..20].copy_from_slice(&ABI_VERSION.to_le_bytes());
        b[20..24].copy_from_slice(&BLOB_HEADER_SIZE.to_le_bytes());
        b[24..32].copy_from_slice(&0x2345u64.to_le_bytes());
        b[32..40].copy_from_slice(&0x8000u64.to_le_bytes());
        b[56..60].copy_from_slice(&(BLOB_FLAG_POSITION_INDEPENDENT | BLOB_FLAG_PARAM_SLOT).to_le_bytes());
        b
    }

    #[test]
    fn the_image_header_is_what_the_kernel_probes() {
        let image = wrap(&blob()).unwrap();
        assert_eq!(&image[..2], b"MZ");
        assert_eq!(&image[0x38..0x3c], b"ARM\x64");
        // code1 branches to the blob: imm26 = (0x1000 - 4) / 4.
        assert_eq!(le_u32(&image, 4).unwrap(), 0x1400_0000 | ((0x1000 - 4) / 4));
        assert_eq!(&image[PREFIX_SIZE..PREFIX_SIZE + 0x2345], &blob()[..]);
        assert_eq!(image.len() % FILE_ALIGNMENT, 0);
        let h = parse(&image).unwrap();
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.flags, IMAGE_FLAGS);
        // The footprint, and room for a signature after the file.
        assert!(h.image_size >= PREFIX_SIZE as u64 + 0x8000);
        assert!(h.image_size >= image.len() as u64 + SIGNATURE_ROOM);
        assert_eq!(h.image_size % 4096, 0);
        assert_eq!(h.blob.file_size, 0x2345);
    }

    #[test]
    fn the_pe_view_describes_the_blob() {
        let image = wrap(&blob()).unwrap();
        let pe = PeImage::parse(&image).unwrap();
        assert_eq!(pe.machine, 0xaa64);
        assert_eq!(pe.subsystem, 10);
        assert_eq!(pe.size_of_headers, PREFIX_SIZE as u32);
        assert_eq!(pe.size_of_image as u64, parse(&image).unwrap().image_size);
        let sections: Vec<_> = pe.sections().collect();
        assert_eq!(sections.len(), 2);
        assert_eq!((sections[0].name(), sections[0].virtual_address, sections[0].raw_size), (".text", 0x1000, 0x1000));
        assert_eq!(&sections[0].permissions(), b"r-x");
        assert_eq!((sections[1].name(), sections[1].virtual_address, sections[1].raw_offset), (".data", 0x2000, 0x2000));
        assert_eq!(&sections[1].permissions(), b"rw-");
        // The entry point is the EFI_UNSUPPORTED stub, inside the headers.
        assert_eq!(pe.entry_point as usize, EFI_STUB_AT);
        assert_eq!(le_u32(&image, EFI_STUB_AT).unwrap(), EFI_UNSUPPORTED_STUB[0]);
    }

    #[test]
    fn damaged_images_are_named() {
        let image = wrap(&blob()).unwrap();
        let mut no_magic = image.clone();
        no_magic[0x38] = b'X';
        assert_eq!(parse(&no_magic).unwrap_err().what, "no ARM\\x64 magic at 0x38");
        let mut small = image.clone();
        small[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(parse(&small).unwrap_err().what, "image_size smaller than the file");
        let mut be = image.clone();
        be[0x18] |= 1;
        assert_eq!(parse(&be).unwrap_err().what, "big-endian flag set");
        assert_eq!(parse(&image[..100]).unwrap_err().what, "file shorter than the headers and the blob header");
        let mut no_blob = image;
        no_blob[PREFIX_SIZE + 8] = 0;
        assert_eq!(parse(&no_blob).unwrap_err().what, "no blob header at 0x1000");
    }
}
