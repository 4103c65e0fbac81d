//! The ELF core header a crash kernel's `/proc/vmcore` is made from, as kexec-tools builds it
//! for arm64: one PT_NOTE per CPU (its `crash_notes`, filled at the panic), one PT_NOTE for
//! `vmcoreinfo`, a PT_LOAD for the kernel text at its kernel-image address, and one PT_LOAD per
//! range of System RAM outside the crash region at its linear-map address. Offsets are physical
//! addresses: the crash kernel reads old memory there.

use efi_emulator::mem::Extent;

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
const EM_AARCH64: u16 = 183;
const ET_CORE: u16 = 4;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The running kernel's memory, as the core header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreLayout {
    /// Each possible CPU's `crash_notes` (physical).
    pub cpu_notes: Vec<Extent>,
    /// The `vmcoreinfo` note (physical).
    pub vmcoreinfo: Extent,
    /// The kernel text: its physical extent and virtual address.
    pub kernel_text: Option<(Extent, u64)>,
    /// System RAM outside the crash region.
    pub ram: Vec<Extent>,
    /// Virtual minus physical address in the linear map.
    pub linear_offset: u64,
}

/// `ram` without `region`.
pub fn outside(ram: &[Extent], region: Extent) -> Vec<Extent> {
    let mut out = Vec::new();
    for r in ram {
        if !r.overlaps(&region) {
            out.push(*r);
            continue;
        }
        if r.start < region.start {
            out.push(Extent::new(r.start, region.start - r.start));
        }
        if region.end() < r.end() {
            out.push(Extent::new(region.end(), r.end() - region.end()));
        }
    }
    out
}

/// The ELF64 core header (little-endian, EM_AARCH64).
pub fn elf_core_header(c: &CoreLayout) -> Vec<u8> {
    let mut phdrs: Vec<(u32, u32, u64, u64, u64, u64)> = Vec::new(); // type, flags, offset, vaddr, paddr, size
    for n in c.cpu_notes.iter().chain(core::iter::once(&c.vmcoreinfo)) {
        phdrs.push((PT_NOTE, 0, n.start, 0, n.start, n.size));
    }
    const RWX: u32 = 7;
    if let Some((text, vaddr)) = c.kernel_text {
        phdrs.push((PT_LOAD, RWX, text.start, vaddr, text.start, text.size));
    }
    for r in &c.ram {
        phdrs.push((PT_LOAD, RWX, r.start, r.start.wrapping_add(c.linear_offset), r.start, r.size));
    }
    let mut out = Vec::with_capacity(EHDR + PHDR * phdrs.len());
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, little-endian, EV_CURRENT, System V
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&ET_CORE.to_le_bytes());
    out.extend_from_slice(&EM_AARCH64.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&(EHDR as u16).to_le_bytes());
    out.extend_from_slice(&(PHDR as u16).to_le_bytes());
    out.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 6]); // no sections
    for (ty, flags, offset, vaddr, paddr, size) in phdrs {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        for v in [offset, vaddr, paddr, size, size, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn ram_outside_the_crash_region() {
        let ram = [Extent::new(0x4000_0000, 0x8000_0000), Extent::new(0x1_0000_0000, 0x1000_0000)];
        let crash = Extent::new(0x6000_0000, 0x1000_0000);
        assert_eq!(outside(&ram, crash), [Extent::new(0x4000_0000, 0x2000_0000), Extent::new(0x7000_0000, 0x5000_0000), Extent::new(0x1_0000_0000, 0x1000_0000)]);
        assert_eq!(outside(&ram[..1], Extent::new(0x4000_0000, 0x8000_0000)), []);
    }

    #[test]
    fn the_header_kexec_tools_would_build() {
        let c = CoreLayout {
            cpu_notes: vec![Extent::new(0xbf00_0000, 0x1b0), Extent::new(0xbf00_1000, 0x1b0)],
            vmcoreinfo: Extent::new(0x4100_0000, 0x1000),
            kernel_text: Some((Extent::new(0x4021_0000, 0x2030000), 0xffff_8000_8000_0000)),
            ram: vec![Extent::new(0x4000_0000, 0x2000_0000)],
            linear_offset: 0xffff_0000_0000_0000u64.wrapping_sub(0x4000_0000),
        };
        let h = elf_core_header(&c);
        assert_eq!(h.len(), 64 + 5 * 56);
        assert_eq!(&h[..6], b"\x7fELF\x02\x01");
        assert_eq!((u16::from_le_bytes([h[16], h[17]]), u16::from_le_bytes([h[18], h[19]]), u16::from_le_bytes([h[56], h[57]])), (ET_CORE, EM_AARCH64, 5));
        let ph = |i: usize| &h[64 + 56 * i..64 + 56 * (i + 1)];
        // Notes at their physical addresses, sized.
        assert_eq!((u32::from_le_bytes(ph(1)[..4].try_into().unwrap()), u64_at(ph(1), 8), u64_at(ph(1), 32)), (PT_NOTE, 0xbf00_1000, 0x1b0));
        assert_eq!((u64_at(ph(2), 8), u64_at(ph(2), 32)), (0x4100_0000, 0x1000), "vmcoreinfo");
        // The kernel text at its image address, RAM at its linear-map address.
        assert_eq!((u32::from_le_bytes(ph(3)[..4].try_into().unwrap()), u64_at(ph(3), 16), u64_at(ph(3), 24)), (PT_LOAD, 0xffff_8000_8000_0000, 0x4021_0000));
        assert_eq!((u64_at(ph(4), 8), u64_at(ph(4), 16), u64_at(ph(4), 24), u64_at(ph(4), 40)), (0x4000_0000, 0xffff_0000_0000_0000, 0x4000_0000, 0x2000_0000));
    }
}
