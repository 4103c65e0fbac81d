//! The PE loader on the real payloads (host side): Debian's kernels and systemd's stubs.

use efi_emulator::efi::pe::{PeImage, SCN_MEM_EXECUTE, SCN_MEM_WRITE};
use qemu_tests::payloads;

#[test]
fn debian_kernels_parse_and_load_as_file_layout() {
    for k in &payloads().kernels {
        let file = std::fs::read(&k.image).unwrap();
        let pe = PeImage::parse(&file).unwrap();
        assert_eq!(pe.machine, 0xaa64);
        assert_eq!(pe.image_base, 0);
        assert_eq!((pe.section_alignment, pe.file_alignment), (0x10000, 0x200));
        assert_eq!(pe.linux_image_size, Some(pe.size_of_image as u64), "{}: Image header image_size", k.series);
        assert_eq!(pe.directory(5), None, "the kernel has no base relocations");
        assert!(pe.directory(4).is_some(), "it is signed (certificate table)");
        assert!(pe.file_layout_is_memory_layout(), "so it can run where kexec put it");
        let names: Vec<_> = pe.sections().map(|s| s.name().to_string()).collect();
        assert_eq!(names, [".text", ".data"]);
        let text = pe.sections().next().unwrap();
        assert!(text.characteristics & SCN_MEM_EXECUTE != 0 && text.characteristics & SCN_MEM_WRITE == 0);
        let mut mem = vec![0xa5u8; pe.size_of_image as usize];
        pe.load(&mut mem, 0x4020_0000).unwrap();
        assert_eq!(&mem[..pe.size_of_headers as usize], &file[..pe.size_of_headers as usize]);
        for s in pe.sections() {
            let (va, n) = (s.virtual_address as usize, s.raw_size.min(s.virtual_size) as usize);
            assert_eq!(&mem[va..va + n], &file[s.raw_offset as usize..s.raw_offset as usize + n], "{} copied", s.name());
            assert!(mem[va + n..va + s.virtual_size as usize].iter().all(|&b| b == 0), "{} BSS zeroed", s.name());
        }
        assert_eq!(pe.major_image_version, if k.series == "6.1" { 1 } else { 3 }, "LINUX_EFISTUB_MAJOR_VERSION");
    }
}

#[test]
fn systemd_stub_254_relocations_move_every_pointer() {
    let stub = payloads().stubs.iter().find(|s| !s.version.starts_with("252")).unwrap();
    let file = std::fs::read(&stub.path).unwrap();
    let pe = PeImage::parse(&file).unwrap();
    assert_ne!(pe.image_base, 0, "a randomised preferred base");
    let (rva, size) = pe.directory(5).expect(".reloc");
    let mut at_base = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut at_base, pe.image_base).unwrap();
    let target = 0x4567_0000u64;
    let mut moved = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut moved, target).unwrap();
    // Walk the relocation blocks ourselves and check each DIR64 site moved by the delta.
    let delta = target.wrapping_sub(pe.image_base);
    let (mut off, end, mut sites) = (rva as usize, (rva + size) as usize, 0);
    while off + 8 <= end {
        let page = u32::from_le_bytes(at_base[off..off + 4].try_into().unwrap()) as usize;
        let block = u32::from_le_bytes(at_base[off + 4..off + 8].try_into().unwrap()) as usize;
        for i in 0..(block - 8) / 2 {
            let e = u16::from_le_bytes(at_base[off + 8 + 2 * i..off + 10 + 2 * i].try_into().unwrap());
            if e >> 12 == 10 {
                let t = page + (e & 0xfff) as usize;
                let before = u64::from_le_bytes(at_base[t..t + 8].try_into().unwrap());
                let after = u64::from_le_bytes(moved[t..t + 8].try_into().unwrap());
                assert_eq!(after, before.wrapping_add(delta), "site {t:#x}");
                sites += 1;
            }
        }
        off += block;
    }
    assert!(sites >= 50, "{sites} DIR64 sites");
    // Everything that is not a relocation site is identical.
    let differing = at_base.iter().zip(&moved).filter(|(a, b)| a != b).count();
    assert!(differing <= sites * 8);
}

#[test]
fn systemd_stub_252_has_no_relocations_and_loads() {
    let stub = payloads().stubs.iter().find(|s| s.version.starts_with("252")).unwrap();
    let file = std::fs::read(&stub.path).unwrap();
    let pe = PeImage::parse(&file).unwrap();
    assert_eq!(pe.image_base, 0);
    assert_eq!(pe.directory(5), None);
    let mut mem = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut mem, 0x4000_0000).unwrap();
    assert_eq!(pe.entry_point, 0x1000);
}

/// What `efi-kexec info` says about each real payload.
#[test]
fn image_kinds_of_the_real_payloads() {
    use efi_emulator::efi::image_info::{check_loadable, classify, ImageKind};
    let p = payloads();
    for k in &p.kernels {
        let file = std::fs::read(&k.image).unwrap();
        let kind = classify(&file, &check_loadable(&file).unwrap());
        let major = if k.series == "6.1" { 1 } else { 3 };
        assert!(matches!(kind, ImageKind::LinuxImage { stub_version: (m, 0), .. } if m == major), "{}: {kind}", k.series);
    }
    for z in &p.zboot {
        let file = std::fs::read(&z.image).unwrap();
        let kind = classify(&file, &check_loadable(&file).unwrap());
        assert!(matches!(&kind, ImageKind::Zboot { compression, payload_size } if compression == z.compression && *payload_size > 0), "{kind}");
    }
    for u in &p.ukis {
        let file = std::fs::read(&u.path).unwrap();
        let ImageKind::Uki(uki) = classify(&file, &check_loadable(&file).unwrap()) else { panic!("{} is not a UKI", u.name) };
        assert_eq!(uki.stub.as_deref(), Some(format!("systemd-stub {}", u.stub_version).as_str()));
        assert_eq!(uki.cmdline.as_deref(), Some(u.cmdline.as_str()));
        assert_eq!(uki.os_name.as_deref(), Some(format!("efi-emulator test UKI ({})", u.name).as_str()));
        assert!(matches!(uki.linux, Some(ImageKind::LinuxImage { .. })));
        assert!(uki.sections.iter().any(|(n, size)| n == ".initrd" && *size > 0));
    }
}
