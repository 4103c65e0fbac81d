//! Where the running kernel keeps what goes into a crash kernel's ELF core header (built by
//! `efi_emulator_loader::core_header`): the linear-map offset and the kernel text mapping
//! from `/proc/kcore`, and `vmcoreinfo`.

use efi_emulator::mem::Extent;

const PT_LOAD: u32 = efi_emulator_loader::core_header::PT_LOAD;

/// The linear-map offset and the kernel image mapping from `/proc/kcore`'s program headers: the
/// largest PT_LOAD with a physical address is a bank of the linear map; the one holding
/// `kernel_code` (the physical "Kernel code" of `/proc/iomem`) at another offset is kcore's
/// kernel text entry, `_text` to `_end` (the whole image: head, text, rodata, data, bss, as
/// kexec-tools dumps it).
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
    let text =
        kernel_code.and_then(|code| loads.iter().find(|&&(v, p, s)| v.wrapping_sub(p) != linear && p <= code.start && code.start < p + s).map(|&(v, p, s)| (Extent::new(p, s), v)));
    Ok((linear, text))
}

/// The ELF header and program headers of `/proc/kcore`, however many (a machine with many
/// memory blocks has thousands): the header first, then as much as its table needs.
pub fn read_kcore_headers(file: &mut impl std::io::Read) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; 64];
    file.read_exact(&mut bytes).map_err(|e| format!("cannot read /proc/kcore: {e}"))?;
    let le = |o: usize, n: usize| bytes[o..o + n].iter().rev().fold(0u64, |a, &b| (a << 8) | b as u64);
    let end = le(32, 8).saturating_add(le(54, 2) * le(56, 2));
    if bytes.get(..5) != Some(b"\x7fELF\x02") || end > 16 << 20 {
        return Err(format!("/proc/kcore: no ELF64 header, or a program header table ending at {end:#x}"));
    }
    bytes.resize(end.max(64) as usize, 0);
    file.read_exact(&mut bytes[64..]).map_err(|e| format!("cannot read /proc/kcore's program headers: {e}"))?;
    Ok(bytes)
}

/// `/sys/kernel/vmcoreinfo`: "ADDRESS SIZE" in hex (the address as `%pa` prints it, with 0x).
pub fn parse_vmcoreinfo(text: &str) -> Result<Extent, String> {
    let mut words = text.split_whitespace();
    let mut hex =
        |what: &str| words.next().and_then(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok()).ok_or_else(|| format!("/sys/kernel/vmcoreinfo: no {what} in {text:?}"));
    Ok(Extent::new(hex("address")?, hex("size")?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(text, Some((Extent::new(0x4020_0000, 0x300_0000), 0xffff_8000_8000_0000)), "_text to _end, not only Kernel code");
        assert!(kcore_mappings(&k[..100], None).unwrap_err().contains("past the"));
        assert!(kcore_mappings(b"not elf", None).is_err());
        assert_eq!(parse_vmcoreinfo("41000000 1024\n"), Ok(Extent::new(0x4100_0000, 0x1024)));
        assert_eq!(parse_vmcoreinfo("0x00000000438d0000 1024\n"), Ok(Extent::new(0x438d_0000, 0x1024)), "as Debian's 6.12 prints it");
        assert!(parse_vmcoreinfo("").is_err());
        // The whole table is read, past any fixed buffer.
        let mut many = k.clone();
        many[56..58].copy_from_slice(&2000u16.to_le_bytes());
        many.resize(64 + 2000 * 56, 0);
        assert_eq!(read_kcore_headers(&mut &many[..]).unwrap().len(), 64 + 2000 * 56);
        assert!(read_kcore_headers(&mut &many[..1000]).unwrap_err().contains("program headers"));
    }
}
