//! Real kexec: Debian's 6.12 boots directly (the first kernel, 2 CPUs), and its `/init` kexecs
//! through `efi-kexec` into (a) Debian's 6.1 Image with an initrd and a new command line,
//! (b) the systemd-stub 254 UKI with an empty command line, (c) the 6.12 zboot image; at EL1,
//! EL2 with VHE and EL2 without VHE (`kvm-arm.mode=nvhe`). Then a chain (the second kernel
//! kexecs a third time) and a refusal (a damaged image; the first kernel keeps running).

use qemu_tests::{efi_kexec, payloads, report, EntryEl};
use std::time::Duration;
use xtask::harness::kexec::{boot_first, stage_report};
use xtask::harness::qemu::Transcript;
use xtask::harness::run::verdict;
use xtask::payloads::kexec_stage::{stage_initramfs, NextBoot};

const APPEND: &str = "console=ttyAMA0 earlycon panic=-1 efi_kexec_test=second";
const TIMEOUT: Duration = Duration::from_secs(300);

fn kexec(el: EntryEl, next: NextBoot) -> Transcript {
    let p = payloads();
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &next).unwrap();
    let t = boot_first(p, el, &initramfs, TIMEOUT, false).expect("starting QEMU");
    eprintln!("$ {}\n{}\n(ended after {:.3} s, exit {:?}, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.exit, t.timed_out);
    t
}

/// What every kexec through the emulator must show: the first kernel at the right EL, the
/// emulator entered there, the second kernel at userspace with EFI and both CPUs.
fn assert_second_boot(t: &Transcript, el: EntryEl) {
    verdict(t).unwrap();
    assert!(stage_report(t, "first", "up").unwrap().starts_with("6.12"), "the first kernel ran /init");
    assert!(stage_report(t, "first", "exec at uptime").is_some(), "efi-kexec load succeeded");
    let banner = t.find("efi-emulator 0.").expect("the emulator's banner after kexec").1.clone();
    assert!(banner.contains(&format!("running at {}", el.name())), "{banner}");
    if el == EntryEl::El2 {
        assert!(t.contains("Hyp nVHE mode initialized successfully"), "the first kernel ran nVHE");
    }
    assert!(t.contains("EFI stub: "), "the payload's own EFI stub ran");
    assert_eq!(report(t, "efi"), "yes");
    assert_eq!(report(t, "cpus"), "2", "the second kernel brought both CPUs up");
    assert!(!t.contains("FIRMWARE BUG") && !t.contains("[Firmware Bug]") && !t.contains("corrupted by EFI"));
}

fn image_6_1(el: EntryEl) {
    let p = payloads();
    let next = NextBoot {
        image: p.kernel("6.1").unwrap().image.clone(),
        initrd: Some(std::fs::read(&p.initramfs).unwrap()),
        append: Some(APPEND.into()),
        extra: vec![],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let t = kexec(el, next);
    assert_second_boot(&t, el);
    assert!(report(&t, "uname -r").starts_with("6.1."), "{}", report(&t, "uname -r"));
    assert_eq!(report(&t, "cmdline"), APPEND);
    assert_eq!(report(&t, "initrd"), "plain");
    assert!(t.contains("EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path"));
}

fn uki_254(el: EntryEl) {
    let p = payloads();
    let u = p.uki("254+6.12").unwrap();
    let next = NextBoot { image: u.path.clone(), initrd: None, append: Some(String::new()), extra: vec![], before_load: None, before_exec: None, files: Vec::new() };
    let t = kexec(el, next);
    assert_second_boot(&t, el);
    assert!(t.contains("efi-kexec: empty command line: the UKI uses its own .cmdline"));
    assert_eq!(report(&t, "cmdline"), u.cmdline, "the UKI's own .cmdline won");
    assert_eq!(report(&t, "initrd"), u.initrd_id, "the initrd came from the UKI");
    assert_eq!(report(&t, "StubInfo"), format!("systemd-stub {}", u.stub_version));
}

fn zboot_6_12(el: EntryEl) {
    let p = payloads();
    let z = p.zboot("6.12").unwrap();
    let next = NextBoot {
        image: z.image.clone(),
        initrd: Some(std::fs::read(&p.initramfs).unwrap()),
        append: Some(APPEND.into()),
        extra: vec![],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let t = kexec(el, next);
    assert_second_boot(&t, el);
    assert!(t.contains("efi-kexec: /next.efi: EFI zboot image, zstd-compressed"));
    assert!(report(&t, "uname -r").starts_with("6.12"));
    assert_eq!(report(&t, "cmdline"), APPEND);
}

#[test]
fn image_6_1_at_el1() {
    image_6_1(EntryEl::El1);
}
#[test]
fn image_6_1_at_el2_vhe() {
    image_6_1(EntryEl::El2Vhe);
}
#[test]
fn image_6_1_at_el2_nvhe() {
    image_6_1(EntryEl::El2);
}
#[test]
fn uki_254_at_el1() {
    uki_254(EntryEl::El1);
}
#[test]
fn uki_254_at_el2_vhe() {
    uki_254(EntryEl::El2Vhe);
}
#[test]
fn uki_254_at_el2_nvhe() {
    uki_254(EntryEl::El2);
}
#[test]
fn zboot_6_12_at_el1() {
    zboot_6_12(EntryEl::El1);
}
#[test]
fn zboot_6_12_at_el2_vhe() {
    zboot_6_12(EntryEl::El2Vhe);
}
#[test]
fn zboot_6_12_at_el2_nvhe() {
    zboot_6_12(EntryEl::El2);
}

/// 6.12 -> efi-kexec -> 6.1 -> efi-kexec -> 6.12 zboot: the emulator leaves a machine that
/// kexecs again, at EL2 with VHE.
#[test]
fn chain_kexecs_a_third_kernel() {
    let p = payloads();
    let third = NextBoot {
        image: p.zboot("6.12").unwrap().image.clone(),
        initrd: Some(std::fs::read(&p.initramfs).unwrap()),
        append: Some(APPEND.into()),
        extra: vec![],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let second_initramfs = stage_initramfs(&p.busybox, efi_kexec(), "second", &third).unwrap();
    let second = NextBoot {
        image: p.kernel("6.1").unwrap().image.clone(),
        initrd: Some(second_initramfs),
        append: Some("console=ttyAMA0 earlycon panic=-1 efi_kexec_test=middle".into()),
        extra: vec![],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let t = kexec(EntryEl::El2Vhe, second);
    verdict(&t).unwrap();
    let middle = stage_report(&t, "second", "up").expect("the second kernel ran its /init");
    assert!(middle.starts_with("6.1.") && middle.contains("cpus 2") && middle.contains("efi yes"), "{middle}");
    assert_eq!(stage_report(&t, "second", "cmdline").unwrap(), "console=ttyAMA0 earlycon panic=-1 efi_kexec_test=middle");
    assert!(t.contains("efi-kexec: booted by UEFI firmware (system table"), "the second kernel was booted by the emulator");
    assert!(t.contains("is an earlier efi-emulator's (a kexec chain): the payload gets this one's services"), "whose services the third emulator does not pass on");
    assert_eq!(t.lines.iter().filter(|(_, l)| l.contains("efi-emulator 0.") && l.contains("running at EL2 (VHE")).count(), 2, "the emulator ran twice");
    assert!(report(&t, "uname -r").starts_with("6.12"), "the third kernel reached userspace");
    assert_eq!(report(&t, "cmdline"), APPEND);
    assert_eq!(report(&t, "cpus"), "2");
    assert_eq!(report(&t, "efi"), "yes");
}

/// A damaged image is refused by `efi-kexec load` with the emulator's message; nothing is
/// loaded and the first kernel keeps running.
#[test]
fn damaged_image_is_refused_and_the_first_kernel_keeps_running() {
    let p = payloads();
    let bad = xtask::payloads::corpus::bad_images(p).unwrap().into_iter().find(|b| b.name == "wrong-machine").unwrap();
    let path = xtask::paths::out_dir().join("kexec-wrong-machine.efi");
    std::fs::write(&path, &bad.bytes).unwrap();
    let t = kexec(EntryEl::El1, NextBoot { image: path, initrd: None, append: Some(APPEND.into()), extra: vec![], before_load: None, before_exec: None, files: Vec::new() });
    assert!(t.powered_off(), "the first kernel powered off by itself");
    assert!(t.contains("efi-kexec: refusing /next.efi: bad PE image: Machine = 0x8664: expected 0xaa64 (AArch64)"));
    assert!(stage_report(&t, "first", "load refused; still running").unwrap().starts_with("6.12"));
    assert!(!t.contains("efi-emulator 0."), "nothing was started");
}

/// EDK2 -> Debian 6.12 (on ACPI: its device tree holds only `/chosen`) -> efi-kexec -> the
/// emulator, which takes the firmware's memory map, ACPI and SMBIOS tables and runtime services
/// from what the first kernel's stub recorded -> `next`, which boots on EDK2's ACPI tables and
/// reaches EDK2's runtime services through the emulator (both kernels map them 1:1, as arm64
/// Linux does unless the machine needs SetVirtualAddressMap).
fn uefi_first_kernel(el: EntryEl, next: NextBoot) -> Transcript {
    let t = uefi_boot(el, xtask::harness::kexec::FirstBoot::Edk2, next);
    let seen = |needle: &str| after_exec(&t).iter().any(|(_, l)| l.contains(needle));
    assert!(seen("rtc-efi rtc-efi.0: registered as rtc0"), "the next kernel reads EDK2's clock through GetTime after ExitBootServices");
    assert!(!seen("runtime services will not be available"));
    t
}

/// The console after the first kernel's `exec`.
fn after_exec(t: &Transcript) -> &[(Duration, String)] {
    let exec = t.lines.iter().position(|(_, l)| l.contains("first: exec at uptime")).expect("efi-kexec loaded");
    &t.lines[exec..]
}

/// EDK2 boots the first kernel as `boot` says; what every such kexec must show.
fn uefi_boot(el: EntryEl, boot: xtask::harness::kexec::FirstBoot, next: NextBoot) -> Transcript {
    let p = payloads();
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &next).unwrap();
    let t = xtask::harness::kexec::boot_first_with(p, el, boot, &initramfs, TIMEOUT, false).unwrap();
    eprintln!("$ {}\n{}\n(ended after {:.3} s, exit {:?}, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.exit, t.timed_out);
    verdict(&t).unwrap();
    assert!(stage_report(&t, "first", "up").unwrap().contains("efi yes"), "EDK2 booted the first kernel");
    assert!(t.contains("efi-kexec: booted by UEFI firmware (system table"));
    assert!(t.contains(", ACPI only)"), "the first kernel ran on ACPI");
    let seen = |needle: &str| after_exec(&t).iter().any(|(_, l)| l.contains(needle));
    assert!(seen("firmware ranges joined the map"), "the emulator took the firmware's map");
    assert!(seen("efi-emulator 0.") && seen("running at"));
    assert!(seen(" by efi-emulator"), "the next kernel was booted by the emulator");
    assert!(seen("ACPI: RSDP") && seen("BOCHS"), "the next kernel found EDK2's ACPI tables");
    assert!(seen("DMI: QEMU QEMU Virtual Machine"), "and QEMU's SMBIOS");
    assert!(!seen("[Firmware Bug]"));
    assert_eq!(report(&t, "cpus"), "2");
    assert_eq!(report(&t, "efi"), "yes");
    t
}

/// EDK2 boots the first kernel on a GICv3 with an ITS: its LPI tables are persistent
/// reservations (LINUX_EFI_MEMRESERVE), which its stub's table holds. Through the emulator the
/// chain reaches the next kernel, which takes the tables as reserved instead of allocating new
/// ones under LPIs the first kernel left on.
#[test]
fn gicv3_lpi_tables_stay_reserved_across_the_emulator() {
    let t = uefi_boot(EntryEl::El1, xtask::harness::kexec::FirstBoot::Edk2Gicv3Its, image_6_12(APPEND));
    let seen = |needle: &str| after_exec(&t).iter().any(|(_, l)| l.contains(needle));
    let first: Vec<_> = t.lines.iter().take_while(|(_, l)| !l.contains("first: exec at uptime")).filter(|(_, l)| l.contains("LPI pending table")).collect();
    assert!(!first.is_empty(), "the first kernel set LPIs up (a GICv3 with an ITS)");
    assert!(seen("the payload's memreserve table at"), "the stub's new root continues with the first kernel's chain");
    assert!(seen("using reserved LPI pending table"), "the next kernel reuses the reserved tables");
    assert!(!seen("LPIs already enabled") && !seen("memory probably corrupted"));
}

/// Two kexecs on a GICv3 with an ITS under EDK2, with a virtio-pci disk whose interrupts are
/// MSI-X (LPIs): EDK2 -> 6.12 -> efi-kexec -> 6.12 -> efi-kexec -> 6.12. Each kernel leaves its
/// LPI tables on; the second emulator passes on what the first one had (the memreserve chain,
/// ACPI), so the third kernel reuses the reserved tables and reads the disk through MSI-X.
#[test]
fn two_kexecs_on_a_gicv3_keep_msi_working() {
    use xtask::harness::kexec::{FirstBoot, DISK_MARKER};
    let p = payloads();
    let kernel = p.kernel("6.12").unwrap();
    let third_initramfs = xtask::paths::out_dir().join(format!("initramfs-third-disk-{}.cpio", std::process::id()));
    let virtio_blk = xtask::payloads::packages::module(kernel, "drivers/block", "virtio_blk").unwrap();
    xtask::payloads::initramfs::build_initramfs(&p.busybox, &third_initramfs, "third-disk", &[("virtio_blk.ko", virtio_blk)]).unwrap();
    let third = NextBoot { initrd: Some(std::fs::read(&third_initramfs).unwrap()), ..image_6_12(APPEND) };
    let _ = std::fs::remove_file(&third_initramfs);
    let second =
        NextBoot { initrd: Some(stage_initramfs(&p.busybox, efi_kexec(), "second", &third).unwrap()), ..image_6_12("console=ttyAMA0 earlycon panic=-1 efi_kexec_test=middle") };
    let t = uefi_boot(EntryEl::El1, FirstBoot::Edk2Gicv3ItsDisk, second);
    let lines = |needle: &str| t.lines.iter().filter(|(_, l)| l.contains(needle)).count();
    assert!(stage_report(&t, "second", "up").is_some(), "the second kernel ran its /init");
    assert!(t.contains("is an earlier efi-emulator's (a kexec chain)"), "the second emulator found the first");
    assert_eq!(lines("using reserved LPI pending table"), 4, "both CPUs of the second and of the third kernel reuse the reserved tables");
    assert_eq!(lines("memory probably corrupted") + lines("LPIs already enabled"), 0);
    assert_eq!(report(&t, "initrd"), "third-disk", "the third kernel reached userspace");
    assert_eq!(report(&t, "disk"), DISK_MARKER, "and read the virtio-pci disk");
    let msi: u32 = report(&t, "disk interrupts").parse().unwrap();
    assert!(msi > 0, "through MSI-X");
}

fn image_6_12(append: &str) -> NextBoot {
    let p = payloads();
    NextBoot {
        image: p.kernel("6.12").unwrap().image.clone(),
        initrd: Some(std::fs::read(&p.initramfs).unwrap()),
        append: Some(append.into()),
        extra: vec![],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    }
}

fn image_6_12_with_acpi_force(el: EntryEl) {
    let append = format!("{APPEND} acpi=force");
    let t = uefi_first_kernel(el, image_6_12(&append));
    assert!(report(&t, "uname -r").starts_with("6.12"));
    assert_eq!(report(&t, "cmdline"), append);
    // Both kernels set their clock from EDK2's GetTime: the second through the emulator.
    let dates: Vec<_> = t.lines.iter().filter_map(|(_, l)| l.split("rtc-efi rtc-efi.0: setting system clock to ").nth(1)).map(|d| d[..10].to_string()).collect();
    assert_eq!(dates.len(), 2, "{dates:?}");
    assert_eq!(dates[0], dates[1], "the same day from the same clock");
}

#[test]
fn uefi_first_kernel_image_6_12_with_acpi_force_at_el1() {
    image_6_12_with_acpi_force(EntryEl::El1);
}

#[test]
fn uefi_first_kernel_image_6_12_with_acpi_force_at_el2() {
    image_6_12_with_acpi_force(EntryEl::El2Vhe);
}

/// SMBIOS says Ampere eMAG, so the first kernel's stub calls SetVirtualAddressMap and EDK2 moves
/// to new virtual addresses. The next kernel's stub maps runtime services 1:1 (it finds no SMBIOS
/// protocol to tell it otherwise), where the moved firmware would fault: the emulator hides the
/// firmware at ExitBootServices, serves its own runtime services and says so, and the next
/// kernel boots without EDK2's (no rtc-efi) and without a firmware fault.
fn firmware_moved_by_the_first_kernel(el: EntryEl) {
    let t = uefi_boot(el, xtask::harness::kexec::FirstBoot::Edk2Emag, image_6_12(APPEND));
    let seen = |needle: &str| after_exec(&t).iter().any(|(_, l)| l.contains(needle));
    let fw = t.find("firmware runtime services at").expect("the emulator passes the firmware on").1.clone();
    let (virt, phys) = (fw.split("at ").nth(1).unwrap().split(' ').next().unwrap(), fw.split("physical ").nth(1).unwrap().split(')').next().unwrap());
    assert_ne!(virt, phys, "the first kernel moved the firmware: {fw}");
    assert!(seen("its runtime services are hidden (the emulator serves its own)"));
    assert!(!seen("rtc-efi rtc-efi.0: registered"), "GetTime is not offered");
    assert!(report(&t, "uname -r").starts_with("6.12"));
}

#[test]
fn uefi_firmware_moved_by_the_first_kernel_is_hidden_at_el1() {
    firmware_moved_by_the_first_kernel(EntryEl::El1);
}

#[test]
fn uefi_firmware_moved_by_the_first_kernel_is_hidden_at_el2() {
    firmware_moved_by_the_first_kernel(EntryEl::El2Vhe);
}

/// The first kernel writes a variable into EDK2's store; the UKI's kernel lists EDK2's variables
/// through the emulator, that one among them, and systemd-stub's volatile StubInfo, which EDK2
/// (at runtime since the first ExitBootServices) would refuse and the emulator keeps itself.
fn uki_sees_edk2_variables(el: EntryEl) {
    let p = payloads();
    let u = p.uki("254+6.12").unwrap();
    let efivarfs = xtask::payloads::packages::efivarfs_module(p.kernel("6.12").unwrap()).unwrap();
    let write = "insmod /efivarfs.ko && mount -t efivarfs efivarfs /sys/firmware/efi/efivars && \
                 printf '\\007\\000\\000\\000kexec' > /sys/firmware/efi/efivars/EfiKexecTest-4f5b1e0a-9f57-4e8a-8a3e-2d1f1b9c7a11 && \
                 echo \"efi-kexec-test: first: variable written\"";
    let next = NextBoot {
        image: u.path.clone(),
        initrd: None,
        append: Some(String::new()),
        extra: vec![],
        before_load: Some(write.into()),
        before_exec: None,
        files: vec![("efivarfs.ko".into(), efivarfs)],
    };
    let t = uefi_first_kernel(el, next);
    assert!(t.contains("efi-kexec-test: first: variable written"));
    assert_eq!(report(&t, "cmdline"), u.cmdline);
    let vars = report(&t, "efivars");
    for name in ["PlatformLang-8be4df61-93ca-11d2-aa0d-00e098032b8c", "Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c", "EfiKexecTest-4f5b1e0a-9f57-4e8a-8a3e-2d1f1b9c7a11"] {
        assert!(vars.contains(name), "{name} missing from {vars}");
    }
    assert_eq!(report(&t, "StubInfo"), format!("systemd-stub {}", u.stub_version), "the stub's volatile variable, kept by the emulator");
}

#[test]
fn uefi_first_kernel_uki_254_at_el1_sees_edk2_variables() {
    uki_sees_edk2_variables(EntryEl::El1);
}

#[test]
fn uefi_first_kernel_uki_254_at_el2_sees_edk2_variables() {
    uki_sees_edk2_variables(EntryEl::El2Vhe);
}

/// A variable the kexec'ed kernel writes through the emulator into EDK2's store survives its
/// `end` (`poweroff -f` or `reboot -f`: arm64 Linux does both through EFI ResetSystem while
/// runtime services are up): a later plain EDK2 boot with the same store lists it.
fn variable_survives(el: EntryEl, end: &str) {
    use efi_emulator_loader::cpio::Cpio;
    let p = payloads();
    let efivarfs = xtask::payloads::packages::efivarfs_module(p.kernel("6.12").unwrap()).unwrap();
    let busybox = std::fs::read(&p.busybox).unwrap();
    let initramfs = |script: &str, end: &str| {
        let mut c = Cpio::default();
        for d in ["bin", "dev", "proc", "sys"] {
            c.dir(d);
        }
        c.char_device("dev/console", 5, 1);
        c.file("bin/busybox", 0o755, &busybox);
        c.file("efivarfs.ko", 0o644, &efivarfs);
        c.file("init", 0o755, format!("#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\ninsmod /efivarfs.ko\nmount -t efivarfs efivarfs /sys/firmware/efi/efivars\n{script}\n{end}\n").as_bytes());
        c.finish()
    };
    let var = "EfiKexecPersist-4f5b1e0a-9f57-4e8a-8a3e-2d1f1b9c7a11";
    let writer = initramfs(
        &format!(
            "printf '\\007\\000\\000\\000kept' > /sys/firmware/efi/efivars/{var} && echo \"efi-kexec-test: second: wrote {var}\"\necho \"{}\"",
            xtask::payloads::initramfs::MARKER
        ),
        end,
    );
    let next = NextBoot {
        image: p.kernel("6.12").unwrap().image.clone(),
        initrd: Some(writer),
        append: Some(APPEND.into()),
        extra: vec![],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let store = xtask::paths::out_dir().join(format!("persist-vars-{}-{el:?}.fd", std::process::id()));
    std::fs::copy(xtask::harness::kexec::AAVMF_VARS, &store).unwrap();
    let first = stage_initramfs(&p.busybox, efi_kexec(), "first", &next).unwrap();
    let t = xtask::harness::kexec::boot_first_vars(p, el, xtask::harness::kexec::FirstBoot::Edk2, &first, Some(&store), TIMEOUT, false).unwrap();
    eprintln!("{}", t.text());
    assert!(t.powered_off(), "the kexec'ed kernel's {end} ended QEMU (-no-reboot) through ResetSystem");
    assert!(t.contains(if end.starts_with("reboot") { "reboot: Restarting system" } else { "reboot: Power down" }));
    assert!(t.contains(&format!("efi-kexec-test: second: wrote {var}")));
    assert!(t.contains("efi-emulator 0."));

    let lister = initramfs("echo \"efi-kexec-test: third: vars: $(ls /sys/firmware/efi/efivars | tr '\\n' ' ')\"", "poweroff -f");
    let t = xtask::harness::kexec::boot_first_vars(p, el, xtask::harness::kexec::FirstBoot::Edk2, &lister, Some(&store), TIMEOUT, false).unwrap();
    let _ = std::fs::remove_file(&store);
    eprintln!("{}", t.text());
    let vars = stage_report(&t, "third", "vars").expect("the plain EDK2 boot listed its variables");
    assert!(vars.contains(var), "{var} missing after the power-off: {vars}");
}

#[test]
fn uefi_variable_written_after_kexec_survives_a_poweroff_into_the_next_edk2_boot_at_el1() {
    variable_survives(EntryEl::El1, "poweroff -f");
}

#[test]
fn uefi_variable_written_after_kexec_survives_a_reboot_into_the_next_edk2_boot_at_el2() {
    variable_survives(EntryEl::El2Vhe, "reboot -f");
}

/// With `kexec_load_disabled` set, `efi-kexec load` says so and loads nothing.
#[test]
fn disabled_kexec_load_is_explained() {
    let p = payloads();
    let next = NextBoot {
        image: p.zboot("6.12").unwrap().image.clone(),
        initrd: None,
        append: Some(APPEND.into()),
        extra: vec![],
        before_load: Some("echo 1 > /proc/sys/kernel/kexec_load_disabled".into()),
        before_exec: None,
        files: Vec::new(),
    };
    let t = kexec(EntryEl::El1, next);
    assert!(t.powered_off());
    assert!(t.contains("efi-kexec: kexec is disabled: /proc/sys/kernel/kexec_load_disabled is 1 (for both kexec_load and kexec_file_load)"));
    assert!(stage_report(&t, "first", "load refused; still running").is_some());
    assert!(!t.contains("efi-emulator 0."));
}

/// arm64 takes a 2048-byte command line, the parameter block 511 UTF-16 units: a longer line
/// goes through /chosen to LoadOptions and reaches the next kernel whole.
#[test]
fn a_command_line_longer_than_the_block_reaches_the_kernel() {
    let p = payloads();
    // One long word: every unknown `name=value` becomes one of init's at most 32 variables.
    let append = format!("{APPEND} efi_kexec_pad={}", "0123456789".repeat(140));
    assert!(append.len() > 1400 && append.len() < 2000);
    let next = NextBoot { image: p.kernel("6.1").unwrap().image.clone(), initrd: Some(std::fs::read(&p.initramfs).unwrap()), append: Some(append.clone()), ..Default::default() };
    let t = kexec(EntryEl::El1, next);
    assert_second_boot(&t, EntryEl::El1);
    assert_eq!(report(&t, "cmdline"), append);
}

/// Two NUMA nodes, two `/memory` nodes: the plan spans both banks and the next kernel, booted
/// through the emulator, sets both nodes up again from the device tree beside the UEFI map.
#[test]
fn two_memory_nodes_reach_the_next_kernel() {
    let p = payloads();
    let next = NextBoot { image: p.kernel("6.12").unwrap().image.clone(), initrd: Some(std::fs::read(&p.initramfs).unwrap()), append: Some(APPEND.into()), ..Default::default() };
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &next).unwrap();
    let t = xtask::harness::kexec::boot_first_with(p, EntryEl::El1, xtask::harness::kexec::FirstBoot::DirectTwoNodes, &initramfs, TIMEOUT, false).unwrap();
    eprintln!("$ {}\n{}", t.command, t.text());
    assert_second_boot(&t, EntryEl::El1);
    let exec = t.lines.iter().position(|(_, l)| l.contains("first: exec at uptime")).unwrap();
    let after = &t.lines[exec..];
    for node in ["node 0", "node 1"] {
        assert!(after.iter().any(|(_, l)| l.contains(&format!("Initmem setup {node}"))), "the next kernel set up {node}");
    }
    let mem_kb: u64 = report(&t, "memtotal").split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(mem_kb > 1_900_000, "both banks are the next kernel's RAM: {mem_kb} kB");
}

/// "Load, then disable": after `kexec_load_disabled` is set, what was loaded still runs (as
/// reboot(LINUX_REBOOT_CMD_KEXEC) allows); an unload with nothing loaded says so.
#[test]
fn exec_after_kexec_load_is_disabled_boots_what_was_loaded() {
    let p = payloads();
    let next = NextBoot {
        image: p.kernel("6.1").unwrap().image.clone(),
        initrd: Some(std::fs::read(&p.initramfs).unwrap()),
        append: Some(APPEND.into()),
        before_load: Some("/efi-kexec unload".into()),
        before_exec: Some("echo 1 > /proc/sys/kernel/kexec_load_disabled".into()),
        ..Default::default()
    };
    let t = kexec(EntryEl::El1, next);
    assert!(t.contains("efi-kexec: no image is loaded: nothing to unload"));
    assert_second_boot(&t, EntryEl::El1);
    assert!(report(&t, "uname -r").starts_with("6.1."), "{}", report(&t, "uname -r"));
}

/// Every image of the bad-image corpus is refused by efi-kexec's check with the words the
/// emulator uses for it (the same function, run before any segment is loaded).
#[test]
fn efi_kexec_refuses_the_bad_image_corpus_like_the_emulator() {
    for bad in xtask::payloads::corpus::bad_images(payloads()).unwrap() {
        let e = efi_emulator::efi::image_info::check_loadable(&bad.bytes).err().unwrap_or_else(|| panic!("{} was accepted", bad.name));
        assert!(e.to_string().contains(bad.expect), "{}: {e}", bad.name);
    }
}

/// The user's own boot chain: the first kernel kexecs systemd-boot 254 from an ESP directory
/// (`efi-kexec load BOOTAA64.EFI --esp DIR`), which boots the default UKI from `EFI/Linux`.
fn systemd_boot_from_esp(el: EntryEl) {
    let p = payloads();
    let sd_boot = p.stub("254").unwrap().sibling("systemd-bootaa64.efi");
    let u = p.uki("254+6.12").unwrap();
    let make_esp = "mkdir -p /tmp/esp/EFI/BOOT /tmp/esp/EFI/Linux /tmp/esp/loader && cp /next.efi /tmp/esp/EFI/BOOT/BOOTAA64.EFI && mv /uki.efi /tmp/esp/EFI/Linux/uki-254.efi && cp /loader.conf /tmp/esp/loader/";
    let next = NextBoot {
        image: sd_boot,
        initrd: None,
        append: Some(String::new()),
        extra: vec!["--esp".into(), "/tmp/esp".into(), "--esp-path".into(), "'\\EFI\\BOOT\\BOOTAA64.EFI'".into()],
        before_load: Some(make_esp.into()),
        before_exec: None,
        files: vec![("uki.efi".into(), std::fs::read(&u.path).unwrap()), ("loader.conf".into(), b"timeout 0\ndefault uki-254*\n".to_vec())],
    };
    let t = kexec(el, next);
    assert_second_boot(&t, el);
    assert!(t.contains("the kernel is \\EFI\\BOOT\\BOOTAA64.EFI on the ESP"));
    assert!(report(&t, "efivars").contains("LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), "systemd-boot chose the entry");
    assert_eq!(report(&t, "initrd"), u.initrd_id, "the UKI from EFI/Linux booted");
}

#[test]
fn systemd_boot_from_esp_at_el1() {
    systemd_boot_from_esp(EntryEl::El1);
}

#[test]
fn systemd_boot_from_esp_at_el2_nvhe() {
    systemd_boot_from_esp(EntryEl::El2);
}

/// shim -> GRUB -> Linux under a real kexec: the first kernel kexecs Debian's signed shim from an
/// ESP directory; shim starts the signed GRUB beside it, which reads `EFI/debian/grub.cfg` and
/// boots the 6.12 kernel with its own initrd from the ESP.
fn shim_grub_from_esp(el: EntryEl) {
    let p = payloads();
    let l = p.loaders().unwrap();
    let cfg = "set timeout=0\nmenuentry 'Linux' {\n  linux /vmlinuz console=ttyAMA0 earlycon panic=-1\n  initrd /initrd\n}\n";
    let make_esp = "mkdir -p /tmp/esp/EFI/BOOT /tmp/esp/EFI/debian && cp /next.efi /tmp/esp/EFI/BOOT/BOOTAA64.EFI && mv /grubaa64.efi /tmp/esp/EFI/BOOT/ && mv /grub.cfg /tmp/esp/EFI/debian/ && mv /vmlinuz /grub-initrd /tmp/esp/ && mv /tmp/esp/grub-initrd /tmp/esp/initrd";
    let next = NextBoot {
        image: l.shim.path.clone(),
        initrd: None,
        append: Some(String::new()),
        extra: vec!["--esp".into(), "/tmp/esp".into(), "--esp-path".into(), "'\\EFI\\BOOT\\BOOTAA64.EFI'".into()],
        before_load: Some(make_esp.into()),
        before_exec: None,
        files: vec![
            ("grubaa64.efi".into(), std::fs::read(&l.grub.signed).unwrap()),
            ("grub.cfg".into(), cfg.as_bytes().to_vec()),
            ("vmlinuz".into(), std::fs::read(&p.kernel("6.12").unwrap().image).unwrap()),
            ("grub-initrd".into(), std::fs::read(&l.grub_initrd).unwrap()),
        ],
    };
    let t = kexec(el, next);
    assert_second_boot(&t, el);
    assert!(t.contains("Booting `Linux'"), "GRUB ran its entry");
    assert_eq!(report(&t, "initrd"), xtask::payloads::loaders::GRUB_INITRD_ID, "the initrd GRUB loaded from the ESP");
    assert!(report(&t, "efivars").contains("MokListRT-605dab50-e046-4300-abb6-3dd810dd8b23"), "shim ran");
}

#[test]
fn shim_grub_from_esp_at_el2_nvhe() {
    shim_grub_from_esp(EntryEl::El2);
}
