//! PE/COFF headers of a UEFI image: enough to describe and, later, load it.
//!
//! Every offset read from the file is bounds-checked; a malformed image yields a [`PeError`]
//! that names the field, the value found and what was expected.

use crate::bulk;
use crate::mem::{le_u16 as u16_at, le_u32 as u32_at, le_u64 as u64_at};
use core::fmt;

pub const MACHINE_AARCH64: u16 = 0xaa64;
pub const OPTIONAL_MAGIC_PE32_PLUS: u16 = 0x20b;
pub const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
pub const SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER: u16 = 11;
pub const SUBSYSTEM_EFI_RUNTIME_DRIVER: u16 = 12;
pub const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
pub const SCN_MEM_READ: u32 = 0x4000_0000;
pub const SCN_MEM_WRITE: u32 = 0x8000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeError {
    pub field: &'static str,
    pub value: u64,
    pub expected: &'static str,
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad PE image: {} = {:#x}: expected {}", self.field, self.value, self.expected)
    }
}

impl core::error::Error for PeError {}

/// A header field the bounds checks let through but the file does not hold: unreachable for a
/// checked image, and an error, not a panic, all the same.
fn past_end(file: &[u8]) -> PeError {
    PeError { field: "file size", value: file.len() as u64, expected: "every header field inside the file" }
}

fn bad<T>(field: &'static str, value: impl Into<u64>, expected: &'static str) -> Result<T, PeError> {
    Err(PeError { field, value: value.into(), expected })
}

/// One section header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: [u8; 8],
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub raw_size: u32,
    pub raw_offset: u32,
    pub characteristics: u32,
}

impl Section {
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(8);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
    /// `r-x`-style permissions.
    pub fn permissions(&self) -> [u8; 3] {
        let flag = |bit, c| if self.characteristics & bit != 0 { c } else { b'-' };
        [flag(SCN_MEM_READ, b'r'), flag(SCN_MEM_WRITE, b'w'), flag(SCN_MEM_EXECUTE, b'x')]
    }
}

/// The headers of a PE32+ AArch64 EFI application.
#[derive(Clone, Copy, Debug)]
pub struct PeImage<'a> {
    file: &'a [u8],
    pub machine: u16,
    pub subsystem: u16,
    pub entry_point: u32,
    pub image_base: u64,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub size_of_image: u32,
    pub size_of_headers: u32,
    pub major_image_version: u16,
    pub minor_image_version: u16,
    sections_offset: usize,
    pub section_count: u16,
    /// Offset of the optional header's data directories, and how many there are.
    directories: (usize, u32),
    /// Size from the arm64 Linux `Image` header (`image_size` at +16), when the file has one.
    pub linux_image_size: Option<u64>,
}

impl<'a> PeImage<'a> {
    pub fn parse(file: &'a [u8]) -> Result<Self, PeError> {
        let magic = u16_at(file, 0).ok_or(PeError { field: "file size", value: file.len() as u64, expected: "at least a DOS header" })?;
        if magic != 0x5a4d {
            return bad("DOS magic", magic, "\"MZ\" (0x5a4d)");
        }
        let lfanew = u32_at(file, 0x3c).ok_or(PeError { field: "file size", value: file.len() as u64, expected: "at least a DOS header" })? as usize;
        if lfanew.checked_add(24).is_none_or(|end| end > file.len()) {
            return bad("e_lfanew", lfanew as u64, "the offset of a PE header inside the file");
        }
        let sig = u32_at(file, lfanew).ok_or_else(|| past_end(file))?;
        if sig != 0x0000_4550 {
            return bad("PE signature", sig, "\"PE\\0\\0\"");
        }
        let coff = lfanew + 4;
        let machine = u16_at(file, coff).ok_or_else(|| past_end(file))?;
        if machine != MACHINE_AARCH64 {
            return bad("Machine", machine, "0xaa64 (AArch64)");
        }
        let section_count = u16_at(file, coff + 2).ok_or_else(|| past_end(file))?;
        let opt_size = u16_at(file, coff + 16).ok_or_else(|| past_end(file))? as usize;
        let opt = coff + 20;
        let sections_offset = opt + opt_size;
        if opt_size < 112 || sections_offset > file.len() {
            return bad("SizeOfOptionalHeader", opt_size as u64, "at least 112 bytes, inside the file");
        }
        let opt_magic = u16_at(file, opt).ok_or_else(|| past_end(file))?;
        if opt_magic != OPTIONAL_MAGIC_PE32_PLUS {
            return bad("OptionalHeader.Magic", opt_magic, "0x20b (PE32+)");
        }
        let pe = PeImage {
            file,
            machine,
            entry_point: u32_at(file, opt + 16).ok_or_else(|| past_end(file))?,
            image_base: u64_at(file, opt + 24).ok_or_else(|| past_end(file))?,
            section_alignment: u32_at(file, opt + 32).ok_or_else(|| past_end(file))?,
            file_alignment: u32_at(file, opt + 36).ok_or_else(|| past_end(file))?,
            major_image_version: u16_at(file, opt + 44).ok_or_else(|| past_end(file))?,
            minor_image_version: u16_at(file, opt + 46).ok_or_else(|| past_end(file))?,
            size_of_image: u32_at(file, opt + 56).ok_or_else(|| past_end(file))?,
            size_of_headers: u32_at(file, opt + 60).ok_or_else(|| past_end(file))?,
            subsystem: u16_at(file, opt + 68).ok_or_else(|| past_end(file))?,
            sections_offset,
            section_count,
            directories: (opt + 112, u32_at(file, opt + 108).ok_or_else(|| past_end(file))?),
            linux_image_size: (u32_at(file, 0x38) == Some(0x644d_5241)).then(|| u64_at(file, 16)).flatten(),
        };
        let mut pe = pe;
        pe.check()?;
        // The spec wants a multiple of SectionAlignment; gnu-efi images (systemd-stub 252) are
        // not. Round up, as EDK2 and U-Boot do.
        pe.size_of_image = pe.size_of_image.next_multiple_of(pe.section_alignment);
        Ok(pe)
    }

    fn check(&self) -> Result<(), PeError> {
        if !matches!(self.subsystem, SUBSYSTEM_EFI_APPLICATION | SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER | SUBSYSTEM_EFI_RUNTIME_DRIVER) {
            return bad("Subsystem", self.subsystem, "10, 11 or 12 (EFI application, boot service driver, runtime driver)");
        }
        // Below a page, sections share pages: the image then gets no per-section permissions.
        let sa = self.section_alignment;
        if sa == 0 || !sa.is_power_of_two() {
            return bad("SectionAlignment", sa, "a power of two");
        }
        if self.size_of_image == 0 || self.size_of_image > 1 << 30 {
            return bad("SizeOfImage", self.size_of_image, "non-zero and at most 1 GiB");
        }
        if self.size_of_headers as usize > self.file.len() || self.size_of_headers > self.size_of_image {
            return bad("SizeOfHeaders", self.size_of_headers, "inside the file and the image");
        }
        // The pairwise overlap check below is quadratic: 65,535 sections would take minutes.
        if self.section_count > MAX_SECTIONS {
            return bad("NumberOfSections", self.section_count, "at most 96 (the limit of the Windows loader, which PE files are made for)");
        }
        let table_end = self.sections_offset + self.section_count as usize * 40;
        if table_end > self.file.len() {
            return bad("NumberOfSections", self.section_count, "a section table inside the file");
        }
        for s in self.sections() {
            let end = s.virtual_address as u64 + s.virtual_size.max(s.raw_size) as u64;
            if end > self.size_of_image as u64 {
                return bad("section VirtualAddress + size", end, "inside SizeOfImage");
            }
            if s.raw_offset as u64 + s.raw_size as u64 > self.file.len() as u64 {
                return bad("section PointerToRawData + SizeOfRawData", s.raw_offset as u64 + s.raw_size as u64, "inside the file");
            }
        }
        // Pairwise, without allocating: this runs before the emulator has a heap.
        let span = |s: &Section| (s.virtual_address as u64, s.virtual_address as u64 + s.virtual_size.max(s.raw_size) as u64);
        for (i, a) in self.sections().enumerate() {
            for b in self.sections().skip(i + 1) {
                let ((a0, a1), (b0, b1)) = (span(&a), span(&b));
                if a0 < b1 && b0 < a1 {
                    return bad("section VirtualAddress", a0.max(b0), "sections that do not overlap");
                }
            }
        }
        if self.entry_point >= self.size_of_image {
            return bad("AddressOfEntryPoint", self.entry_point, "inside SizeOfImage");
        }
        Ok(())
    }

    /// The whole file the headers were read from.
    pub fn file(&self) -> &'a [u8] {
        self.file
    }

    /// Offset of the optional header in the file.
    pub fn optional_header_offset(&self) -> usize {
        self.directories.0 - 112
    }

    /// Offset of data directory `index`'s entry in the file, when the header has that many.
    pub fn directory_entry_offset(&self, index: u32) -> Option<usize> {
        (index < self.directories.1).then_some(self.directories.0 + index as usize * 8)
    }

    /// Data directory `index` (RVA, size), when present and non-empty.
    pub fn directory(&self, index: u32) -> Option<(u32, u32)> {
        if index >= self.directories.1 {
            return None;
        }
        let o = self.directories.0 + index as usize * 8;
        let (rva, size) = (u32_at(self.file, o)?, u32_at(self.file, o + 4)?);
        (size != 0).then_some((rva, size))
    }

    /// True for an image whose sections sit in the file where they sit in memory (and the
    /// headers before them), so the file can run where it lies once its BSS is zeroed.
    pub fn file_layout_is_memory_layout(&self) -> bool {
        self.sections().all(|s| s.raw_size == 0 || s.raw_offset == s.virtual_address)
            && self.sections().all(|s| s.virtual_address >= self.size_of_headers)
            && self.file.len() as u64 <= self.size_of_image as u64
    }

    /// Copies the image into `dest` (SizeOfImage bytes, which will run at `dest_addr`): headers
    /// and sections, zero everywhere else, base relocations applied.
    pub fn load(&self, dest: &mut [u8], dest_addr: u64) -> Result<(), PeError> {
        let size = self.size_of_image as usize;
        if dest.len() < size {
            return bad("destination size", dest.len() as u64, "at least SizeOfImage");
        }
        // Copy what the file holds and zero only the rest: for a kernel, the copy is 40 MB
        // and zeroing it first would double the memory traffic.
        let h = self.size_of_headers as usize;
        bulk::copy(&mut dest[..h], &self.file[..h]);
        let mut filled = h;
        let mut sections: alloc::vec::Vec<Section> = self.sections().collect();
        crate::mem::sort_by_key(&mut sections, |s| u64::from(s.virtual_address));
        for s in &sections {
            let va = s.virtual_address as usize;
            // Raw data may be padded past VirtualSize up to FileAlignment: copy what belongs.
            let n = if s.virtual_size == 0 { s.raw_size } else { s.raw_size.min(s.virtual_size) } as usize;
            if va > filled {
                bulk::fill(&mut dest[filled..va], 0);
            }
            bulk::copy(&mut dest[va..va + n], &self.file[s.raw_offset as usize..s.raw_offset as usize + n]);
            filled = filled.max(va + n);
        }
        bulk::fill(&mut dest[filled..size], 0);
        self.relocate(dest, dest_addr)
    }

    /// Zeroes what the file has but the image must not: section tails past their raw data.
    /// For an image that runs where its file lies.
    pub fn prepare_in_place(&self, image: &mut [u8]) -> Result<(), PeError> {
        if image.len() < self.size_of_image as usize {
            return bad("image size", image.len() as u64, "at least SizeOfImage");
        }
        for s in self.sections() {
            if s.virtual_size > s.raw_size {
                let start = (s.virtual_address + s.raw_size) as usize;
                let end = (s.virtual_address + s.virtual_size) as usize;
                bulk::fill(&mut image[start..end], 0);
            }
        }
        Ok(())
    }

    /// Applies the base relocations for running at `addr` (the image is laid out in `image`).
    pub fn relocate(&self, image: &mut [u8], addr: u64) -> Result<(), PeError> {
        let delta = addr.wrapping_sub(self.image_base);
        let Some((rva, size)) = self.directory(5) else {
            return Ok(());
        };
        let (mut at, end) = (rva as usize, rva as usize + size as usize);
        if end > image.len() {
            return bad("base relocation directory end", end as u64, "inside SizeOfImage");
        }
        while at + 8 <= end {
            let page = u32_at(image, at).ok_or_else(|| past_end(image))? as usize;
            let block = u32_at(image, at + 4).ok_or_else(|| past_end(image))? as usize;
            if block < 8 || at + block > end {
                return bad("base relocation block size", block as u64, "at least 8, inside the directory");
            }
            for i in 0..(block - 8) / 2 {
                let entry = u16_at(image, at + 8 + i * 2).ok_or_else(|| past_end(image))?;
                let (kind, offset) = (entry >> 12, (entry & 0xfff) as usize);
                match kind {
                    0 => {} // IMAGE_REL_BASED_ABSOLUTE: padding
                    10 => {
                        let target = page + offset;
                        if target + 8 > image.len() {
                            return bad("DIR64 relocation target", target as u64, "inside SizeOfImage");
                        }
                        let v = u64_at(image, target).ok_or_else(|| past_end(image))?.wrapping_add(delta);
                        image[target..target + 8].copy_from_slice(&v.to_le_bytes());
                    }
                    other => return bad("base relocation type", other, "DIR64 (10) or ABSOLUTE (0)"),
                }
            }
            at += block;
        }
        Ok(())
    }

    /// The section headers. `check` established at parse time that the table lies inside the
    /// file, so the reads below cannot fail.
    pub fn sections(&self) -> impl Iterator<Item = Section> + '_ {
        (0..self.section_count as usize).map(|i| {
            let o = self.sections_offset + i * 40;
            let f = self.file;
            Section {
                name: f[o..o + 8].try_into().unwrap(),
                virtual_size: u32_at(f, o + 8).unwrap(),
                virtual_address: u32_at(f, o + 12).unwrap(),
                raw_size: u32_at(f, o + 16).unwrap(),
                raw_offset: u32_at(f, o + 20).unwrap(),
                characteristics: u32_at(f, o + 36).unwrap(),
            }
        })
    }
}

/// The most sections an image may have (PE/COFF: the Windows loader's limit).
pub const MAX_SECTIONS: u16 = 96;

/// A minimal, valid PE32+ AArch64 EFI application with one `.text` section, for tests here
/// and in the tools (UKI assembly, bad-image corpora).
#[doc(hidden)]
pub fn test_image() -> alloc::vec::Vec<u8> {
    {
        let mut f = alloc::vec![0u8; 0x400];
        f[0..2].copy_from_slice(b"MZ");
        f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        f[0x40..0x44].copy_from_slice(b"PE\0\0");
        let coff = 0x44;
        f[coff..coff + 2].copy_from_slice(&MACHINE_AARCH64.to_le_bytes());
        f[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes());
        f[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
        let opt = coff + 20;
        f[opt..opt + 2].copy_from_slice(&OPTIONAL_MAGIC_PE32_PLUS.to_le_bytes());
        f[opt + 16..opt + 20].copy_from_slice(&0x1000u32.to_le_bytes());
        f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
        f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
        f[opt + 56..opt + 60].copy_from_slice(&0x2000u32.to_le_bytes());
        f[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
        f[opt + 68..opt + 70].copy_from_slice(&SUBSYSTEM_EFI_APPLICATION.to_le_bytes());
        f[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let s = opt + 240;
        f[s..s + 5].copy_from_slice(b".text");
        f[s + 8..s + 12].copy_from_slice(&0x200u32.to_le_bytes());
        f[s + 12..s + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        f[s + 16..s + 20].copy_from_slice(&0x200u32.to_le_bytes());
        f[s + 20..s + 24].copy_from_slice(&0x200u32.to_le_bytes());
        f[s + 36..s + 40].copy_from_slice(&(SCN_MEM_READ | SCN_MEM_EXECUTE).to_le_bytes());
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic() -> std::vec::Vec<u8> {
        test_image()
    }

    #[test]
    fn parses_synthetic_image() {
        let f = synthetic();
        let pe = PeImage::parse(&f).unwrap();
        assert_eq!(pe.entry_point, 0x1000);
        assert_eq!(pe.size_of_image, 0x2000);
        let s: std::vec::Vec<_> = pe.sections().collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name(), ".text");
        assert_eq!(&s[0].permissions(), b"r-x");
        assert_eq!(pe.linux_image_size, None);
    }

    /// The synthetic image with a `.reloc` section holding one DIR64 entry at RVA 0x1100, whose
    /// target holds ImageBase + 0x1000, and ImageBase 0x1_0000_0000.
    fn with_relocation() -> std::vec::Vec<u8> {
        let mut f = synthetic();
        f.resize(0x600, 0);
        let opt = 0x58;
        f[opt + 24..opt + 32].copy_from_slice(&0x1_0000_0000u64.to_le_bytes());
        f[opt + 56..opt + 60].copy_from_slice(&0x3000u32.to_le_bytes());
        f[0x44 + 2..0x44 + 4].copy_from_slice(&2u16.to_le_bytes());
        // Directory 5: RVA 0x2000, 12 bytes.
        f[opt + 112 + 40..opt + 112 + 48].copy_from_slice(&[0x00, 0x20, 0, 0, 12, 0, 0, 0]);
        let s = opt + 240 + 40;
        f[s..s + 6].copy_from_slice(b".reloc");
        f[s + 8..s + 12].copy_from_slice(&12u32.to_le_bytes());
        f[s + 12..s + 16].copy_from_slice(&0x2000u32.to_le_bytes());
        f[s + 16..s + 20].copy_from_slice(&0x200u32.to_le_bytes());
        f[s + 20..s + 24].copy_from_slice(&0x400u32.to_le_bytes());
        f[0x400..0x40c].copy_from_slice(&[0x00, 0x10, 0, 0, 12, 0, 0, 0, 0x00, 0xa1, 0, 0]);
        // The pointer at RVA 0x1100 (file 0x300).
        f[0x300..0x308].copy_from_slice(&0x1_0000_1000u64.to_le_bytes());
        f
    }

    #[test]
    fn loads_and_relocates() {
        let f = with_relocation();
        let pe = PeImage::parse(&f).unwrap();
        assert_eq!(pe.directory(5), Some((0x2000, 12)));
        let mut mem = std::vec![0xeeu8; 0x3000];
        pe.load(&mut mem, 0x4020_0000).unwrap();
        assert_eq!(&mem[..2], b"MZ", "headers copied");
        assert_eq!(u64::from_le_bytes(mem[0x1100..0x1108].try_into().unwrap()), 0x4020_1000, "DIR64 moved by the delta");
        assert!(mem[0x1200..0x2000].iter().all(|&b| b == 0), "the rest zeroed");
        // Loading at the preferred base changes nothing.
        pe.load(&mut mem, 0x1_0000_0000).unwrap();
        assert_eq!(u64::from_le_bytes(mem[0x1100..0x1108].try_into().unwrap()), 0x1_0000_1000);
        let mut bad = f.clone();
        bad[0x40a] = 0x00;
        bad[0x40b] = 0x31; // type 3 (HIGHLOW)
        let e = PeImage::parse(&bad).unwrap().load(&mut mem, 0).unwrap_err();
        assert_eq!(e.field, "base relocation type");
        let mut bad = f.clone();
        bad[0x404] = 0xff; // block larger than the directory
        assert_eq!(PeImage::parse(&bad).unwrap().load(&mut mem, 0).unwrap_err().field, "base relocation block size");
        assert!(!pe.file_layout_is_memory_layout(), ".text is at file 0x200, RVA 0x1000");
    }

    #[test]
    fn rejects_overlapping_sections() {
        let mut f = with_relocation();
        let reloc = 0x58 + 240 + 40;
        f[reloc + 12..reloc + 16].copy_from_slice(&0x1100u32.to_le_bytes());
        let e = PeImage::parse(&f).unwrap_err();
        assert_eq!((e.field, e.value), ("section VirtualAddress", 0x1100));
    }

    #[test]
    fn size_of_image_is_rounded_up_to_the_section_alignment() {
        let mut f = synthetic();
        f[0x58 + 56..0x58 + 60].copy_from_slice(&0x1e00u32.to_le_bytes());
        assert_eq!(PeImage::parse(&f).unwrap().size_of_image, 0x2000);
    }

    #[test]
    fn accepts_what_edk2_loads() {
        let mut f = synthetic();
        // A PE header at an offset that is not a multiple of 8, and drivers.
        f.copy_within(0x40..0x300, 0x44);
        f[0x3c..0x40].copy_from_slice(&0x44u32.to_le_bytes());
        let opt = 0x44 + 24;
        for subsystem in [SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER, SUBSYSTEM_EFI_RUNTIME_DRIVER] {
            f[opt + 68..opt + 70].copy_from_slice(&subsystem.to_le_bytes());
            assert_eq!(PeImage::parse(&f).unwrap().subsystem, subsystem);
        }
        // SectionAlignment below a page (FileAlignment 512, sections in file layout).
        let mut f = synthetic();
        f[0x58 + 32..0x58 + 36].copy_from_slice(&0x200u32.to_le_bytes());
        assert_eq!(PeImage::parse(&f).unwrap().section_alignment, 0x200);
    }

    #[test]
    fn rejects_each_broken_field() {
        let cases: &[(usize, &[u8], &str)] = &[
            (0, b"ZM", "DOS magic"),
            (0x3c, &0x3fffu32.to_le_bytes(), "e_lfanew"),
            (0x44, &0x8664u16.to_le_bytes(), "Machine"),
            (0x58, &0x10bu16.to_le_bytes(), "OptionalHeader.Magic"),
            (0x58 + 68, &3u16.to_le_bytes(), "Subsystem"),
            (0x58 + 32, &0x1800u32.to_le_bytes(), "SectionAlignment"),
            (0x58 + 56, &0u32.to_le_bytes(), "SizeOfImage"),
            (0x58 + 16, &0x2000u32.to_le_bytes(), "AddressOfEntryPoint"),
            (0x46, &60000u16.to_le_bytes(), "NumberOfSections"),
            (0x58 + 240 + 12, &0x1f00u32.to_le_bytes(), "section VirtualAddress + size"),
            (0x58 + 240 + 20, &0x3f0u32.to_le_bytes(), "section PointerToRawData + SizeOfRawData"),
        ];
        for (off, bytes, field) in cases {
            let mut f = synthetic();
            f[*off..*off + bytes.len()].copy_from_slice(bytes);
            let e = PeImage::parse(&f).unwrap_err();
            assert_eq!(e.field, *field, "patching {off:#x}");
        }
        assert_eq!(PeImage::parse(&[]).unwrap_err().field, "file size");
    }

    /// 65,535 sections made the pairwise overlap check run for minutes under TCG; more than 96
    /// are refused before it, with the table inside the file or not.
    #[test]
    fn more_than_96_sections_are_refused_at_once() {
        let mut f = synthetic();
        f.resize(0x148 + 65_535 * 40, 0);
        for n in [97u16, 65_535] {
            f[0x46..0x48].copy_from_slice(&n.to_le_bytes());
            let started = std::time::Instant::now();
            let e = PeImage::parse(&f).unwrap_err();
            assert_eq!((e.field, e.value), ("NumberOfSections", n as u64));
            assert!(started.elapsed() < std::time::Duration::from_millis(50));
        }
        f[0x46..0x48].copy_from_slice(&96u16.to_le_bytes());
        assert_ne!(PeImage::parse(&f).err().map(|e| e.field), Some("NumberOfSections"), "96 are allowed");
    }
}
