//! Real kexec across page sizes: Debian's 6.12 with 16 KiB pages, and a 6.12 built with 64 KiB
//! pages, as the first kernel place the boot on their own pages (kexec_load refuses a segment
//! off them), and as the payload map the emulator's runtime services, whose ranges are whole
//! 64 KiB granules.

use qemu_tests::{efi_kexec, payloads, report, EntryEl};
use std::time::Duration;
use xtask::harness::kexec::{boot_first, boot_first_kernel, stage_report, FirstBoot};
use xtask::harness::qemu::Transcript;
use xtask::harness::run::verdict;
use xtask::payloads::kexec_stage::{stage_initramfs, NextBoot};

const APPEND: &str = "console=ttyAMA0 earlycon panic=-1 efi_kexec_test=second";
const TIMEOUT: Duration = Duration::from_secs(300);

fn next(image: &std::path::Path) -> NextBoot {
    let p = payloads();
    NextBoot { image: image.to_path_buf(), initrd: Some(std::fs::read(&p.initramfs).unwrap()), append: Some(APPEND.into()), ..Default::default() }
}

fn show(t: Transcript) -> Transcript {
    eprintln!("$ {}\n{}\n(ended after {:.3} s, exit {:?}, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.exit, t.timed_out);
    t
}

/// The second kernel at userspace through the emulator, with EFI, both CPUs, and runtime
/// services that work (rtc-efi registers only when GetTime does).
fn assert_second_boot(t: &Transcript) {
    verdict(t).unwrap();
    assert!(stage_report(t, "first", "exec at uptime").is_some(), "efi-kexec load succeeded");
    assert!(t.contains("efi-emulator 0."), "the emulator ran");
    assert!(t.contains("EFI stub: "), "the payload's own EFI stub ran");
    assert_eq!(report(t, "efi"), "yes");
    assert_eq!(report(t, "cpus"), "2");
    assert!(t.contains("rtc-efi rtc-efi.0: registered as rtc"), "runtime GetTime works");
    let exec = t.lines.iter().position(|(_, l)| l.contains("first: exec at uptime")).unwrap();
    assert!(!t.lines[exec..].iter().any(|(_, l)| l.contains("rtc-pl031")), "the clock the emulator serves is not bound twice");
    assert!(!t.contains("FIRMWARE BUG") && !t.contains("[Firmware Bug]") && !t.contains("corrupted by EFI"));
}

#[test]
fn a_16k_first_kernel_kexecs_the_4k_6_12_image() {
    let p = payloads();
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &next(&p.kernel("6.12").unwrap().image)).unwrap();
    let t = show(boot_first_kernel(&p.kernel_16k.image, EntryEl::El1, FirstBoot::Direct, &initramfs, None, TIMEOUT, false).expect("starting QEMU"));
    assert!(stage_report(&t, "first", "up").unwrap().contains("-arm64-16k"), "the first kernel has 16 KiB pages");
    assert_second_boot(&t);
    let uname = report(&t, "uname -r");
    assert!(uname.starts_with("6.12.") && !uname.contains("16k"), "{uname}");
}

#[test]
fn the_4k_first_kernel_kexecs_the_16k_kernel() {
    let p = payloads();
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &next(&p.kernel_16k.image)).unwrap();
    let t = show(boot_first(p, EntryEl::El1, &initramfs, TIMEOUT, false).expect("starting QEMU"));
    assert!(!stage_report(&t, "first", "up").unwrap().contains("16k"));
    assert_second_boot(&t);
    assert!(report(&t, "uname -r").ends_with("-arm64-16k"), "{}", report(&t, "uname -r"));
}

#[test]
fn a_64k_first_kernel_kexecs_the_4k_6_12_image() {
    let p = payloads();
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &next(&p.kernel("6.12").unwrap().image)).unwrap();
    let t = show(boot_first_kernel(qemu_tests::file_kernel_64k(), EntryEl::El1, FirstBoot::Direct, &initramfs, None, TIMEOUT, false).expect("starting QEMU"));
    assert!(t.contains("efi-kexec: loaded"), "segments on 64 KiB pages were taken");
    assert_second_boot(&t);
    assert!(report(&t, "uname -r").starts_with("6.12.95+deb12-arm64"), "{}", report(&t, "uname -r"));
}

#[test]
fn the_4k_first_kernel_kexecs_the_64k_kernel() {
    let p = payloads();
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &next(qemu_tests::file_kernel_64k())).unwrap();
    let t = show(boot_first(p, EntryEl::El1, &initramfs, TIMEOUT, false).expect("starting QEMU"));
    assert_second_boot(&t);
}
