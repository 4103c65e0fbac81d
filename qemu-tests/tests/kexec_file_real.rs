//! Real `kexec -s` (`kexec_file_load`) through the emulator's Image form, from a running kernel
//! that has the door: Debian's arm64 kernels lack `CONFIG_KEXEC_FILE`, so the first kernel is
//! built from `linux-source-6.12` (`xtask::payloads::file_kernel`). Debian's own kexec-tools loads
//! `efi-emulator.efi` with the payload as its initrd; `efi-kexec load -s` does the same.

use qemu_tests::{efi_kexec, payloads, EntryEl};
use std::path::PathBuf;
use std::time::Duration;
use xtask::harness::kexec::{self, stage_report, FirstBoot};
use xtask::harness::qemu::Transcript;
use xtask::payloads::initramfs::MARKER;
use xtask::payloads::kexec_stage::{stage_initramfs, NextBoot};

fn first_kernel() -> &'static PathBuf {
    qemu_tests::file_kernel()
}

fn boot(el: EntryEl, initramfs: &[u8]) -> Transcript {
    let t = kexec::boot_first_kernel(first_kernel(), el, FirstBoot::Direct, initramfs, None, Duration::from_secs(300), false).expect("starting QEMU");
    eprintln!("$ {}\n{}\n(ended after {:.3} s, exit {:?}, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.exit, t.timed_out);
    t
}

/// The emulator's Image, as `cargo xtask build` writes it (the test blob's, with its hooks), in
/// a file.
fn emulator_image() -> PathBuf {
    let path = std::env::temp_dir().join(format!("efi-emulator-{}.efi", std::process::id()));
    std::fs::write(&path, qemu_tests::emulator_image()).unwrap();
    path
}

#[test]
fn kexec_tools_kexec_s_boots_a_uki_through_the_emulator_image() {
    let u = payloads().uki("254+6.12").unwrap();
    let image = emulator_image();
    for el in [EntryEl::El1, EntryEl::El2Vhe, EntryEl::El2] {
        let next = NextBoot {
            image: image.clone(),
            initrd: Some(std::fs::read(&u.path).unwrap()),
            append: Some(String::new()),
            extra: vec!["-s".into()],
            before_load: None,
            before_exec: None,
            files: vec![],
        };
        let initramfs = xtask::payloads::kexec_tools::stage_initramfs(&payloads().busybox, qemu_tests::kexec_tools(), &next).unwrap();
        let t = boot(el, &initramfs);
        assert!(stage_report(&t, "first", "exec at uptime").is_some(), "kexec -s loaded at {el:?}");
        assert!(t.contains("(kexec_file_load): the payload at 0x") && t.contains("is one PE file"), "the emulator was entered with the DTB at {el:?}");
        assert!(t.contains("LoadOptions left empty: the UKI uses its own .cmdline"));
        assert!(t.contains(MARKER), "the UKI reached userspace at {el:?}");
        assert_eq!(qemu_tests::report(&t, "cmdline"), u.cmdline, "the UKI's .cmdline won at {el:?}");
    }
    let _ = std::fs::remove_file(image);
}

#[test]
fn efi_kexec_s_boots_an_image_with_its_initrd_and_chains() {
    let p = payloads();
    // first (the kexec_file kernel, booted directly) -> efi-kexec -s: the same kernel through
    // the emulator, with a stage initramfs -> efi-kexec -s again: Debian's 6.12 with the test
    // initramfs, through the emulator once more.
    let third = NextBoot {
        image: p.kernel("6.12").unwrap().image.clone(),
        initrd: Some(std::fs::read(&p.initramfs).unwrap()),
        append: Some("console=ttyAMA0 panic=-1 third=1".into()),
        extra: vec!["-s".into()],
        before_load: None,
        before_exec: None,
        files: vec![],
    };
    let second = NextBoot {
        image: first_kernel().clone(),
        initrd: Some(stage_initramfs(&p.busybox, efi_kexec(), "second", &third).unwrap()),
        append: Some("console=ttyAMA0 panic=-1 second=1".into()),
        extra: vec!["-s".into()],
        before_load: None,
        before_exec: None,
        files: vec![],
    };
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &second).unwrap();
    let t = boot(EntryEl::El1, &initramfs);
    assert_eq!(t.lines.iter().filter(|(_, l)| l.contains("efi-kexec: loaded through kexec_file_load")).count(), 2, "efi-kexec -s loaded twice");
    assert_eq!(t.lines.iter().filter(|(_, l)| l.contains("is a bundle, the PE file")).count(), 2, "each time a bundle of the Image and its initrd");
    assert!(stage_report(&t, "second", "cmdline").is_some_and(|c| c == "console=ttyAMA0 panic=-1 second=1"), "the second kernel got its command line");
    assert!(t.contains(MARKER), "the third kernel reached userspace");
    assert_eq!(qemu_tests::report(&t, "cmdline"), "console=ttyAMA0 panic=-1 third=1");
    assert_eq!(qemu_tests::report(&t, "initrd"), "plain");
}

/// Whether a line containing `later` follows the first line containing `first`.
fn follows(t: &Transcript, first: &str, later: &str) -> bool {
    t.lines.iter().position(|(_, l)| l.contains(first)).is_some_and(|i| t.lines[i..].iter().any(|(_, l)| l.contains(later)))
}

#[test]
fn under_lockdown_only_the_signed_emulator_gets_in() {
    // The first kernel, signed with EDK2's test key and booted by EDK2 with Secure Boot on,
    // locks itself down and trusts that key (the platform keyring, from db). The emulator
    // then enforces Secure Boot too: the UKI it is given is signed with the same key.
    let (keys, _, signed) = qemu_tests::snakeoil_and_emulator("sb");
    let dir = keys.dir.clone();
    let first = dir.join("Image.signed");
    keys.sign(first_kernel(), &first).unwrap();

    let u = payloads().uki("254+6.12").unwrap();
    let uki = dir.join("uki.signed.efi");
    keys.sign(&u.path, &uki).unwrap();
    // Before the real load, with securityfs mounted (as systemd mounts it): kexec_load is
    // refused by name (-c), and the built-in, unsigned emulator, through kexec_file_load as
    // lockdown makes efi-kexec choose, is refused by the kernel with efi-kexec's explanation.
    // Then without securityfs: efi-kexec learns of lockdown from kexec_load's EPERM and takes
    // the other door with the signed emulator.
    let before = "mkdir -p /sys/kernel/security && mount -t securityfs securityfs /sys/kernel/security\n\
                  /efi-kexec load -c /next.efi --append '' ; echo \"$p: forced kexec_load: $?\"\n\
                  /efi-kexec load /next.efi --append '' ; echo \"$p: unsigned: $?\"\n\
                  umount /sys/kernel/security";
    let next = NextBoot {
        image: uki,
        initrd: None,
        append: Some(String::new()),
        extra: vec!["--emulator".into(), "/emulator.efi".into()],
        before_load: Some(before.into()),
        before_exec: None,
        files: vec![("emulator.efi".into(), std::fs::read(&signed).unwrap())],
    };
    let initramfs = stage_initramfs(&payloads().busybox, efi_kexec(), "first", &next).unwrap();
    let t = kexec::boot_first_kernel(&first, EntryEl::El1, FirstBoot::Edk2, &initramfs, Some(&keys.vars), Duration::from_secs(300), false).expect("starting QEMU");
    eprintln!("$ {}\n{}", t.command, t.text());
    assert!(t.contains("Kernel is locked down from EFI Secure Boot"), "the first kernel locked itself down");
    assert!(t.contains("efi-kexec: the kernel is locked down (integrity): lockdown forbids kexec_load(2)"), "-c is refused by name");
    assert_eq!(stage_report(&t, "first", "forced kexec_load").as_deref(), Some("1"));
    assert!(
        t.contains("kexec_file_load failed: Operation not permitted (os error 1) (the kernel refuses unsigned or unverifiable images here"),
        "the unsigned emulator is refused, explained"
    );
    assert!(t.contains(".platform (the firmware's db"), "the explanation names the keyrings");
    assert_eq!(stage_report(&t, "first", "unsigned").as_deref(), Some("1"));
    assert!(t.contains("efi-kexec: the kernel is locked down (integrity), which forbids kexec_load(2): loading through kexec_file_load(2)"), "efi-kexec chose -s by itself");
    assert!(t.contains("efi-kexec: kexec_load(2) was refused (EPERM) although this is root: the kernel is locked down"), "and without securityfs, after kexec_load's EPERM");
    assert!(t.contains("efi-kexec: loaded through kexec_file_load") && t.contains("the Image /emulator.efi"), "the signed emulator was accepted");
    assert!(t.contains("(kexec_file_load): the payload at 0x"), "the emulator started from the DTB");
    assert!(t.contains("Secure Boot: enforced (the firmware's SecureBoot is 1): db 1 entries"), "the emulator read the policy");
    assert!(t.contains("accepted: signed by \"O=SnakeOil\", trusted through \"O=SnakeOil\""), "and verified the UKI");
    let accepted = "Secure Boot: MemoryMapped";
    assert!(
        follows(&t, accepted, "Secure boot enabled") && follows(&t, accepted, "Kernel is locked down from EFI Secure Boot"),
        "the UKI's kernel sees Secure Boot and locks itself down"
    );
    assert!(t.contains(MARKER), "the UKI reached userspace");
    assert_eq!(qemu_tests::report(&t, "cmdline"), u.cmdline);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stage's report of IMA's measurement list: how many entries, and the first one.
const IMA_REPORT: &str = "mkdir -p /sys/kernel/security && mount -t securityfs securityfs /sys/kernel/security\n\
    m=/sys/kernel/security/ima/ascii_runtime_measurements\n\
    echo \"$p: ima entries: $(wc -l < $m)\"\n\
    echo \"$p: ima first: $(head -n 1 $m)\"";

#[test]
fn the_ima_measurement_list_carries_over_through_the_emulator() {
    let p = payloads();
    // The second kernel (the same kexec_file kernel, through the emulator) reports its list and
    // powers off.
    let last = NextBoot {
        image: first_kernel().clone(),
        initrd: None,
        append: None,
        extra: vec![],
        before_load: Some(format!("{IMA_REPORT}\npoweroff -f")),
        before_exec: None,
        files: vec![],
    };
    let second = NextBoot {
        image: first_kernel().clone(),
        initrd: Some(stage_initramfs(&p.busybox, efi_kexec(), "second", &last).unwrap()),
        append: Some("console=ttyAMA0 panic=-1".into()),
        extra: vec!["-s".into()],
        before_load: Some(IMA_REPORT.into()),
        before_exec: None,
        files: vec![],
    };
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &second).unwrap();
    let t = boot(EntryEl::El1, &initramfs);
    let count = |stage| stage_report(&t, stage, "ima entries").and_then(|n| n.parse::<usize>().ok()).unwrap_or_else(|| panic!("{stage}: no IMA list"));
    let (first, second) = (count("first"), count("second"));
    assert!(first >= 1);
    assert!(t.contains("(kexec_file_load): the payload at 0x"), "the second kernel came through the emulator");
    assert_eq!(stage_report(&t, "second", "ima first"), stage_report(&t, "first", "ima first"), "the list begins with the first kernel's entries");
    assert!(second > first, "the second kernel added its own ({first} -> {second})");
}
