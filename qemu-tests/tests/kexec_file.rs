//! The Image form (`efi-emulator.efi`) laid out and entered as arm64 `kexec_file_load` does
//! (`cargo xtask run --kexec-file`): the payload is the "initrd", `x0` the DTB, and the
//! emulator makes its own parameter block. Real `kexec -s` from a running kernel is in
//! `kexec_file_real.rs`.

use qemu_tests::{boot, options, payloads, report, EntryEl};
use xtask::harness::run::{verdict, DEFAULT_APPEND};

#[test]
fn a_bundle_a_uki_and_a_zboot_image_boot_through_the_device_tree_entry() {
    let p = payloads();
    // The 6.12 Image with the test initramfs and a command line: a bundle, at EL1.
    let mut o = options(EntryEl::El1);
    o.kexec_file = true;
    o.append = format!("{DEFAULT_APPEND} kexec_file_bundle=1");
    let t = boot(o);
    verdict(&t).unwrap();
    assert!(t.contains("(kexec_file_load): the payload at 0x"), "entered with the DTB");
    assert!(t.contains("is a bundle, the PE file"));
    assert!(t.contains("the bundle's initrd: "));
    assert_eq!(report(&t, "cmdline"), format!("{DEFAULT_APPEND} kexec_file_bundle=1"), "the bundle's cmdline reached the kernel");
    assert_eq!(report(&t, "initrd"), "plain", "the bundle's initrd reached the kernel");

    // A UKI alone, with an empty bootargs: its own .cmdline wins, at EL2 (nVHE).
    let u = p.uki("254+6.12").unwrap();
    let mut o = options(EntryEl::El2);
    o.kexec_file = true;
    o.kernel = Some(u.path.clone());
    o.no_initrd = true;
    o.append = String::new();
    o.timeout = std::time::Duration::from_secs(150);
    let t = boot(o);
    verdict(&t).unwrap();
    assert!(t.contains("is one PE file, the PE file"));
    assert!(t.contains("LoadOptions left empty: the UKI uses its own .cmdline"));
    assert_eq!(report(&t, "cmdline"), u.cmdline);
    assert_eq!(report(&t, "initrd"), u.initrd_id, "the initrd came from the UKI, not from /chosen");

    // The 6.12 zboot image alone, its command line in bootargs, at EL2 (VHE).
    let z = p.zboot("6.12").unwrap();
    let mut o = options(EntryEl::El2Vhe);
    o.kexec_file = true;
    o.kernel = Some(z.image.clone());
    o.no_initrd = true;
    o.append = "console=ttyAMA0 panic=-1 from_bootargs".into();
    o.timeout = std::time::Duration::from_secs(150);
    let t = boot(o);
    assert!(t.contains("is one PE file"));
    assert!(t.contains("cmdline (") && t.contains("\"console=ttyAMA0 panic=-1 from_bootargs\""), "bootargs became the command line");
    assert!(t.contains("EFI stub: "), "the zboot image's stub ran");
    assert!(t.contains("Kernel command line: console=ttyAMA0 panic=-1 from_bootargs"), "and Linux got it");
}

#[test]
fn a_payload_that_is_neither_pe_nor_bundle_is_refused_by_name() {
    let mut o = options(EntryEl::El1);
    o.kexec_file = true;
    o.kernel = Some(payloads().busybox.clone());
    o.no_initrd = true;
    let t = boot(o);
    assert!(t.contains("efi-emulator: fatal: the payload (/chosen/linux,initrd-*): payload starts with [7f, 45, 4c, 46, 02, 01]: neither a PE file"), "named");
    assert!(t.powered_off(), "powered off");
}
