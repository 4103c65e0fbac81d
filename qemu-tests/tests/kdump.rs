//! kdump through the emulator: Debian's 6.12 with `crashkernel=256M` loads a crash kernel with
//! `efi-kexec load -p` (the 6.12 Image, or a UKI), plants a known pattern in a locked page,
//! reports the page's physical address and panics (`echo c > /proc/sysrq-trigger`). The crash
//! kernel boots through the emulator inside the crash region, finds `/proc/vmcore`, checks that
//! its vmcoreinfo names the first kernel's release, and reads the pattern back, byte for byte.

use qemu_tests::{efi_kexec, payloads, report, EntryEl};
use std::sync::OnceLock;
use std::time::Duration;
use xtask::harness::kexec::{stage_report, FirstBoot};
use xtask::harness::qemu::Transcript;
use xtask::harness::run::verdict;
use xtask::payloads::kexec_stage::NextBoot;

fn probe() -> &'static std::path::PathBuf {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| xtask::build::build_kdump_probe().expect("building kdump-probe"))
}

fn at(t: &Transcript, needle: &str) -> Duration {
    t.lines.iter().find(|(_, l)| l.contains(needle)).map(|(d, _)| *d).unwrap_or_else(|| panic!("no {needle:?}"))
}

/// Panics the first kernel with `next` loaded as its crash kernel; checks the vmcore.
fn kdump(el: EntryEl, next: NextBoot) -> Transcript {
    kdump_with(el, FirstBoot::DirectCrashKernel, next, 256)
}

/// A kdump whose first kernel reserves crash memory as `boot` says; the emulator must confine
/// itself to `usable_mib` in all.
fn kdump_with(el: EntryEl, boot: FirstBoot, next: NextBoot, usable_mib: u64) -> Transcript {
    let p = payloads();
    let first = xtask::payloads::kdump::first_stage(&p.busybox, efi_kexec(), probe(), &next).unwrap();
    let t = xtask::harness::kexec::boot_first_with(p, el, boot, &first, Duration::from_secs(300), false).unwrap();
    check(&t, el, usable_mib);
    t
}

/// The crash kernel found what the first kernel left: its vmcoreinfo and the planted pattern.
fn check(t: &Transcript, el: EntryEl, usable_mib: u64) {
    eprintln!("$ {}\n{}\n(ended after {:.3} s, exit {:?}, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.exit, t.timed_out);
    verdict(t).unwrap();
    let first_release = stage_report(t, "first", "up").unwrap().split(',').next().unwrap().to_string();
    let planted = t.lines.iter().find_map(|(_, l)| l.strip_prefix("efi-emulator-test: kdump: planted at ")).expect("the first kernel planted the pattern").to_string();
    assert!(t.contains("Starting crashdump kernel"), "the first kernel panicked into the crash kernel");
    assert!(t.contains(&format!("crash kernel: confined to {usable_mib} MiB")), "the emulator confined itself to the crash region");
    assert!(t.contains("integrity at ExitBootServices: 64 sample pages of the crashed kernel's RAM unchanged"));
    assert!(report(t, "vmcore").parse::<u64>().unwrap_or(0) > 0, "/proc/vmcore is there");
    assert_eq!(report(t, "kdump: vmcoreinfo OSRELEASE"), first_release, "vmcoreinfo names the first kernel's release");
    assert_eq!(report(t, &format!("kdump: pattern at {planted}")), "intact", "the pattern, byte for byte");
    let panic = at(t, "first: panic at uptime");
    let marker = at(t, xtask::payloads::initramfs::MARKER);
    eprintln!("kdump at {el:?}: panic to the crash kernel's userspace marker in {:.3} s", (marker - panic).as_secs_f64());
}

/// Debian's 6.12 Image as the crash kernel, with the probe's initramfs.
fn crash_6_12() -> NextBoot {
    let p = payloads();
    NextBoot { image: p.kernel("6.12").unwrap().image.clone(), initrd: Some(xtask::payloads::kdump::crash_initramfs(&p.busybox, probe()).unwrap()), ..Default::default() }
}

fn image_6_12(el: EntryEl) {
    kdump(el, crash_6_12());
}

#[test]
fn kdump_6_12_image_at_el1() {
    image_6_12(EntryEl::El1);
}

#[test]
fn kdump_6_12_image_at_el2() {
    image_6_12(EntryEl::El2);
}

/// The 254 stub with the 6.12 kernel and the crash initramfs as its `.initrd`; the loader's
/// command line (with the pattern's address) overrides its `.cmdline`.
fn uki_254(el: EntryEl) {
    let uki = xtask::payloads::kdump::crash_uki(payloads(), probe()).unwrap();
    let dir = std::env::var_os("CARGO_TARGET_TMPDIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("kdump-uki-{}-{el:?}.efi", std::process::id()));
    std::fs::write(&path, uki).unwrap();
    let next = NextBoot { image: path.clone(), initrd: None, append: None, extra: vec![], before_load: None, before_exec: None, files: vec![] };
    let t = kdump(el, next);
    assert_eq!(report(&t, "StubInfo"), "", "no efivarfs in the crash initramfs");
    assert!(t.contains("EFI stub: "), "the UKI's kernel ran its EFI stub");
    let _ = std::fs::remove_file(path);
}

/// `crashkernel=256M,high crashkernel=64M,low` on 4 GiB, as servers reserve it: the crash kernel
/// is loaded into the high region (the kernel refuses crash segments elsewhere), runs with both,
/// and the dump is whole.
#[test]
fn kdump_with_high_and_low_crash_regions() {
    let next = crash_6_12();
    let t = kdump_with(EntryEl::El1, FirstBoot::DirectCrashKernelHighLow, next, 320);
    let (_, line) = t.find("crash kernel: confined to").unwrap();
    let at = line.split(" MiB at ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap();
    assert!(u64::from_str_radix(at.trim_start_matches("0x"), 16).unwrap() >= 1 << 32, "the high region is named first: {line}");
}

/// kdump on a machine with UEFI firmware, as servers are: EDK2 boots the first kernel (ACPI),
/// `efi-kexec load -p` takes the firmware from its /chosen, and at the panic the emulator
/// passes the firmware on to the crash kernel inside the crash region.
#[test]
fn kdump_under_uefi_firmware() {
    let next = crash_6_12();
    let t = kdump_with(EntryEl::El1, FirstBoot::Edk2CrashKernel, next, 256);
    assert!(t.contains("efi-kexec: booted by UEFI firmware (system table"), "the first kernel was UEFI-booted");
    let panic = t.lines.iter().position(|(_, l)| l.contains("Starting crashdump kernel")).unwrap();
    assert!(t.lines[panic..].iter().any(|(_, l)| l.contains("firmware ranges joined the map")), "the crash kernel's boot took the firmware's map");
}

/// RAM a driver manages is the crashed kernel's memory too: 512 MiB plugged through virtio-mem
/// ("System RAM (virtio_mem)") are in the dump (they were left out, 1,909,403,648 B of vmcore for
/// 2 GiB less the crash region).
#[test]
fn kdump_dumps_virtio_mem() {
    let p = payloads();
    let mut next = crash_6_12();
    next.files = vec![("virtio_mem.ko".into(), xtask::payloads::packages::module(p.kernel("6.12").unwrap(), "drivers/virtio", "virtio_mem").unwrap())];
    // Plugging runs in the driver's worker: wait until the 512 MiB are online.
    next.before_load = Some(
        "insmod /virtio_mem.ko\nfor i in 1 2 3 4 5 6 7 8 9 10; do grep -q 'System RAM (virtio_mem)' /proc/iomem && break; sleep 1; done\ngrep -i virtio /proc/iomem\necho \"$p: virtio-mem: $(grep -c 'System RAM (virtio_mem)' /proc/iomem) ranges\"".into(),
    );
    let t = kdump_with(EntryEl::El1, FirstBoot::DirectCrashKernelVirtioMem, next, 256);
    assert!(stage_report(&t, "first", "virtio-mem").is_some_and(|r| r != "0 ranges"), "the driver plugged memory");
    let vmcore: u64 = report(&t, "vmcore").parse().unwrap();
    assert!(vmcore > 1_909_403_648 + 500_000_000, "the plugged 512 MiB are in the dump: {vmcore} B");
}

#[test]
fn kdump_uki_254_at_el1() {
    uki_254(EntryEl::El1);
}

#[test]
fn kdump_uki_254_at_el2() {
    uki_254(EntryEl::El2);
}

/// kdump through the signed door, from the kexec_file first kernel with `crashkernel=256M`: the
/// kernel builds the ELF core header itself. Debian's `kexec -s -p efi-emulator.efi --initrd
/// UKI`, then `efi-kexec load -s -p` with the 6.12 Image and the crash initramfs (a bundle).
#[test]
fn kdump_through_kexec_file_load() {
    let p = payloads();
    let dir = std::env::var_os("CARGO_TARGET_TMPDIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let uki = dir.join(format!("kdump-file-uki-{}.efi", std::process::id()));
    std::fs::write(&uki, xtask::payloads::kdump::crash_uki(p, probe()).unwrap()).unwrap();
    let boot = |first: &[u8]| {
        let t =
            xtask::harness::kexec::boot_first_kernel(qemu_tests::file_kernel(), EntryEl::El1, FirstBoot::DirectCrashKernel, first, None, Duration::from_secs(300), false).unwrap();
        check(&t, EntryEl::El1, 256);
        assert!(t.contains("(kexec_file_load): the payload at 0x"), "the crash kernel came through the device-tree entry");
        assert!(t.contains(", a crash boot"));
        t
    };

    let next = NextBoot { image: uki.clone(), initrd: None, append: None, extra: vec![], before_load: None, before_exec: None, files: vec![] };
    let first = xtask::payloads::kdump::first_stage_kexec_file(&p.busybox, qemu_tests::kexec_tools(), &qemu_tests::emulator_image(), probe(), &next).unwrap();
    let t = boot(&first);
    assert!(t.contains("EFI stub: "), "the UKI's kernel ran its EFI stub");

    let next = NextBoot {
        image: p.kernel("6.12").unwrap().image.clone(),
        initrd: Some(xtask::payloads::kdump::crash_initramfs(&p.busybox, probe()).unwrap()),
        append: None,
        extra: vec!["-s".into()],
        before_load: None,
        before_exec: None,
        files: vec![],
    };
    let first = xtask::payloads::kdump::first_stage(&p.busybox, efi_kexec(), probe(), &next).unwrap();
    let t = boot(&first);
    assert!(t.contains("efi-kexec: loaded through kexec_file_load") && t.contains("the crash kernel starts at the next panic"));
    assert!(t.contains("is a bundle, the PE file"));
    let _ = std::fs::remove_file(uki);
}
