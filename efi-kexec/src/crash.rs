//! What a crash kernel needs besides its image, as kexec-tools builds it for arm64: the ELF core
//! header that the crash kernel's `/proc/vmcore` is made from, and where the running kernel
//! keeps what goes into it.
//!
//! The header has one PT_NOTE per CPU (its `crash_notes`, filled at the panic), one PT_NOTE for
//! `vmcoreinfo`, a PT_LOAD for the kernel text at its kernel-image address, and one PT_LOAD per
//! range of System RAM outside the crash region at its linear-map address. Offsets are physical
//! addresses: the crash kernel reads old memory there.

use efi_emulator::mem::Extent;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
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

/// The linear-map offset and the kernel text mapping from `/proc/kcore`'s program headers:
/// the largest PT_LOAD with a physical address is a bank of the linear map; the one holding
/// `kernel_code` (the physical "Kernel code" of `/proc/iomem`) at another offset is the kernel
/// image mapping.
pub fn kcore_mappings(kcore: &[u8], kernel_code: Option<Extent>) -> Result<(u64, Option<(Extent, u64)>), String> {
    let le16 = |o: usize| kcore.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let le32 = |o: usize| kcore.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let le64 = |o: usize| kcore.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    if kcore.get(..5) != Some(b"\x7fELF\x02") {
        return Err("/proc/kcore is not an ELF64 file".into());
    }
    let (phoff, phentsize, phnum) = (le64(32).unwrap_or(0) as usize, le16(54).unwrap_or(0) as usize, le16(56).unwrap_or(0) as usize);
    let mut loads = Vec::new();
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        let (Some(ty), Some(vaddr), Some(paddr), Some(size)) = (le32(p), le64(p + 16), le64(p + 24), le64(p + 40)) else {
            return Err(format!("/proc/kcore: program header {i} lies past the {} bytes read", kcore.len()));
        };
        if ty == PT_LOAD && paddr != u64::MAX && size != 0 {
            loads.push((vaddr, paddr, size));
        }
    }
    let &(lv, lp, _) = loads.iter().max_by_key(|l| l.2).ok_or("/proc/kcore has no PT_LOAD with a physical address (is it readable, and is CONFIG_PROC_KCORE on?)")?;
    let linear = lv.wrapping_sub(lp);
    let text = kernel_code
        .and_then(|code| loads.iter().find(|&&(v, p, s)| v.wrapping_sub(p) != linear && p <= code.start && code.start < p + s).map(|&(v, p, _)| (code, v + (code.start - p))));
    Ok((linear, text))
}

/// `/sys/kernel/vmcoreinfo`: "ADDRESS SIZE" in hex.
pub fn parse_vmcoreinfo(text: &str) -> Result<Extent, String> {
    let mut words = text.split_whitespace();
    let mut hex = |what: &str| words.next().and_then(|w| u64::from_str_radix(w, 16).ok()).ok_or_else(|| format!("/sys/kernel/vmcoreinfo: no {what} in {text:?}"));
    Ok(Extent::new(hex("address")?, hex("size")?))
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

    #[test]
    fn kcore_gives_the_linear_map_and_the_kernel_image() {
        // An ELF64 header and three PT_LOADs: vmalloc (no physical address), the kernel
        // image mapping, and the linear map of one 2 GiB bank.
        let mut k = vec![0u8; 64 + 3 * 56];
        k[..5].copy_from_slice(b"\x7fELF\x02");
        k[32..40].copy_from_slice(&64u64.to_le_bytes());
        k[54..56].copy_from_slice(&56u16.to_le_bytes());
        k[56..58].copy_from_slice(&3u16.to_le_bytes());
        for (i, (v, p, s)) in
            [(0xffff_8000_0000_0000u64, u64::MAX, 1u64 << 40), (0xffff_8000_8000_0000, 0x4020_0000, 0x300_0000), (0xffff_0000_0000_0000, 0x4000_0000, 0x8000_0000)]
                .into_iter()
                .enumerate()
        {
            let o = 64 + 56 * i;
            k[o..o + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            k[o + 16..o + 24].copy_from_slice(&v.to_le_bytes());
            k[o + 24..o + 32].copy_from_slice(&p.to_le_bytes());
            k[o + 40..o + 48].copy_from_slice(&s.to_le_bytes());
        }
        let code = Extent::new(0x4021_0000, 0x100_0000);
        let (linear, text) = kcore_mappings(&k, Some(code)).unwrap();
        assert_eq!(linear, 0xffff_0000_0000_0000u64.wrapping_sub(0x4000_0000));
        assert_eq!(text, Some((code, 0xffff_8000_8001_0000)));
        assert!(kcore_mappings(&k[..100], None).unwrap_err().contains("past the"));
        assert!(kcore_mappings(b"not elf", None).is_err());
        assert_eq!(parse_vmcoreinfo("41000000 1024\n"), Ok(Extent::new(0x4100_0000, 0x1024)));
        assert!(parse_vmcoreinfo("").is_err());
    }
}
