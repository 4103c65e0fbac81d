//! Measured boot across kexec, on swtpm behind QEMU's `tpm-tis-device`: the first kernel (the
//! TIS-capable 6.12 of `xtask::payloads::file_kernel`, booted directly or by EDK2) kexecs through
//! `efi-kexec` into a systemd-stub 254 UKI of the same kernel. Its initramfs prints the event log
//! Linux got (`binary_bios_measurements`) and the live PCRs; the log, replayed here with the
//! emulator's own replayer, must give those PCRs, and hold the stub's PCR 11 events.

use efi_emulator::efi::event_log::{alg_id, event_type, parse, replay, Event};
use efi_emulator::efi::secure_boot::hash::HashAlg;
use efi_emulator::efi::tcg2::EMULATOR_SIGNATURE;
use efi_emulator_loader::cpio::Cpio;
use qemu_tests::{efi_kexec, file_kernel, payloads, EntryEl};
use std::time::Duration;
use xtask::harness::kexec::{boot_first_kernel_with, stage_report, Extras, FirstBoot};
use xtask::harness::qemu::{Hook, Transcript};
use xtask::harness::tpm::Swtpm;
use xtask::payloads::kexec_stage::{stage_initramfs, NextBoot};

const TIMEOUT: Duration = Duration::from_secs(300);
/// What the UKI's initramfs prints: the log in hex, then `pcr <bank> <n> <hex>` lines.
const REPORT: &str = "efi-emulator-test: measured: ";

/// The UKI's `/init`: the event log and every PCR of every active bank, then power off.
fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
log=/sys/kernel/security/tpm0/binary_bios_measurements
if [ -r $log ]; then echo "{REPORT}log $(od -An -v -tx1 $log | tr -d ' \n')"; else echo "{REPORT}no log"; fi
for bank in /sys/class/tpm/tpm0/pcr-*; do
  for n in $(seq 0 23); do echo "{REPORT}pcr ${{bank##*pcr-}} $n $(cat $bank/$n)"; done
done
/efi-kexec tpm-log && echo "{REPORT}efi-kexec tpm-log agrees"
echo "{}"
poweroff -f
"#,
        xtask::payloads::initramfs::MARKER
    )
}

/// A systemd-stub 254 UKI of the TIS-capable kernel, with the reporting initramfs.
fn measuring_uki() -> std::path::PathBuf {
    let p = payloads();
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &std::fs::read(&p.busybox).unwrap());
    c.file("init", 0o755, init_script().as_bytes());
    // The user's check, on the machine itself.
    c.file("efi-kexec", 0o755, &std::fs::read(efi_kexec()).unwrap());
    let initrd = c.finish();
    let linux = std::fs::read(file_kernel()).unwrap();
    let cmdline = "console=ttyAMA0 earlycon panic=-1 efi_emulator_measured=1";
    let osrel = xtask::payloads::uki::os_release("measured");
    let sections: Vec<(&str, &[u8])> = vec![(".osrel", osrel.as_bytes()), (".cmdline", cmdline.as_bytes()), (".initrd", &initrd), (".linux", &linux)];
    let uki = xtask::payloads::uki::build(&std::fs::read(&p.stub("254").unwrap().path).unwrap(), &sections).unwrap();
    // A file of its own per call: the tests run in parallel threads of one process, and one
    // rewriting a shared file under another's stage initramfs truncated the UKI there.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = xtask::paths::out_dir().join(format!("uki-measured-{}-{call}.efi", std::process::id()));
    std::fs::write(&path, uki).unwrap();
    path
}

/// The first kernel, `boot`, on a fresh swtpm kexecs into the measuring UKI through efi-kexec
/// with `extra` arguments (`-s`: kexec_file_load); with `stop_tpm_after`, swtpm ends once a
/// console line contains it.
fn kexec_into_measuring_uki(boot: FirstBoot, extra: &[&str], stop_tpm_after: Option<&str>) -> Transcript {
    let uki = measuring_uki();
    let extra = extra.iter().map(|s| s.to_string()).collect();
    let next = NextBoot { image: uki.clone(), initrd: None, append: Some(String::new()), extra, before_load: None, before_exec: None, files: Vec::new() };
    let initramfs = stage_initramfs(&payloads().busybox, efi_kexec(), "first", &next).unwrap();
    let mut tpm = Swtpm::start().unwrap();
    let qemu_args = tpm.qemu_args();
    let mut stop = || tpm.kill();
    let hook = stop_tpm_after.map(|after| Hook { after, action: &mut stop });
    let t = boot_first_kernel_with(file_kernel(), EntryEl::El1, boot, &initramfs, None, Extras { qemu_args, hook }, TIMEOUT, false).expect("starting QEMU");
    let _ = std::fs::remove_file(uki);
    eprintln!("$ {}\n{}\n(ended after {:.3} s, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.timed_out);
    t
}

fn hex(s: &str) -> Vec<u8> {
    efi_emulator::mem::hex_bytes(s).unwrap_or_else(|| panic!("not hex: {s}"))
}

/// A PCR the second kernel printed: its bank's name, its number, its value.
type LivePcr = (String, usize, Vec<u8>);

/// The log and the PCRs the second kernel printed.
fn measured(t: &Transcript) -> (Vec<u8>, Vec<LivePcr>) {
    let lines: Vec<&str> = t.lines.iter().filter_map(|(_, l)| l.strip_prefix(REPORT)).collect();
    let log = lines.iter().find_map(|l| l.strip_prefix("log ")).unwrap_or_else(|| panic!("the second kernel has no binary_bios_measurements: {lines:?}"));
    let pcrs = lines
        .iter()
        .filter_map(|l| l.strip_prefix("pcr "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].parse().unwrap(), hex(f[2]))
        })
        .collect();
    (hex(log), pcrs)
}

fn bank(name: &str) -> HashAlg {
    match name {
        "sha1" => HashAlg::Sha1,
        "sha256" => HashAlg::Sha256,
        "sha384" => HashAlg::Sha384,
        "sha512" => HashAlg::Sha512,
        other => panic!("a bank the test does not know: {other}"),
    }
}

/// Replays `events` in every bank the kernel shows and compares each PCR in `checked`.
fn assert_replays_to(events: &[Event], pcrs: &[LivePcr], checked: &[usize]) {
    assert!(!pcrs.is_empty(), "the second kernel shows no PCR bank");
    for (name, n, live) in pcrs.iter().filter(|(_, n, _)| checked.contains(n)) {
        let replayed = replay(events, alg_id(bank(name))).unwrap();
        assert_eq!(replayed[*n].as_bytes(), &live[..], "PCR {n} of the {name} bank: the log replays to another value than the TPM holds");
    }
}

/// The stub's PCR 11 events: two per section it measured (its name, then its contents), each
/// named in UTF-16 in the event data.
fn assert_stub_measured_sections(events: &[Event]) {
    for section in [".linux", ".cmdline", ".initrd", ".osrel"] {
        let name: Vec<u8> = section.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
        let count = events.iter().filter(|e| e.pcr == 11 && e.event_type == event_type::IPL && e.data == &name[..]).count();
        assert_eq!(count, 2, "PCR 11 events for {section}");
    }
}

#[test]
fn a_uki_kexeced_from_a_directly_booted_kernel_is_measured_and_its_log_replays() {
    let t = kexec_into_measuring_uki(FirstBoot::Direct, &[], None);
    assert!(stage_report(&t, "first", "exec at uptime").is_some(), "efi-kexec load succeeded");
    assert!(t.contains("EFI_TCG2_PROTOCOL on the TPM"), "the emulator found the TPM");
    assert!(t.contains("new log: the PCRs did not start from zero"), "the first kernel had started the TPM, without a log");
    let (log, pcrs) = measured(&t);
    let (_, events) = parse(&log).expect("the second kernel's log parses");
    let start = events.iter().find(|e| e.data.starts_with(EMULATOR_SIGNATURE)).expect("the emulator's start event");
    assert_eq!(start.data[16], 1, "History::Unknown");
    assert!(start.data.ends_with(b"via a parameter block (kexec_load)\0"), "the log names the door");
    assert!(events.iter().any(|e| e.pcr == 4 && e.event_type == event_type::EFI_BOOT_SERVICES_APPLICATION), "the UKI's image measurement");
    assert_stub_measured_sections(&events);
    // Everything but PCR 10, which the first kernel's IMA extended (its own log, not this one).
    let checked: Vec<usize> = (0..24).filter(|n| *n != 10).collect();
    assert_replays_to(&events, &pcrs, &checked);
    assert!(t.contains("efi-kexec: every PCR compared (92) replays from the log") && t.contains("efi-kexec tpm-log agrees"), "efi-kexec tpm-log on the machine agrees");
}

#[test]
fn a_uki_kexeced_from_an_edk2_booted_kernel_continues_the_firmware_log_from_power_on() {
    let t = kexec_into_measuring_uki(FirstBoot::Edk2, &[], None);
    assert!(t.contains("the TPM at 0xc000000 (ACPI MSFT0101) goes to the emulator"), "efi-kexec found the TPM ACPI describes");
    assert!(t.contains("continuing the earlier boot's log"), "the emulator continued EDK2's log");
    let (log, pcrs) = measured(&t);
    let (_, events) = parse(&log).expect("the second kernel's log parses");
    let start = events.iter().position(|e| e.data.starts_with(EMULATOR_SIGNATURE)).expect("the emulator's start event");
    assert_eq!(events[start].data[16], 0, "History::Continued");
    let before = &events[..start];
    assert!(before.iter().any(|e| e.pcr == 0 && e.event_type == event_type::S_CRTM_VERSION), "EDK2's own events come first");
    assert!(before.iter().any(|e| e.pcr == 4 && e.event_type == event_type::EFI_BOOT_SERVICES_APPLICATION), "the first kernel's measurement by EDK2");
    assert!(before.iter().any(|e| e.pcr == 5 && e.data == b"Exit Boot Services Returned with Success"), "the first boot's final events, which Linux had not copied");
    assert_stub_measured_sections(&events[start..]);
    let checked: Vec<usize> = (0..24).filter(|n| *n != 10).collect();
    assert_replays_to(&events, &pcrs, &checked);
    assert!(t.contains("efi-kexec tpm-log agrees"), "efi-kexec tpm-log on the machine agrees");
}

#[test]
fn a_tpm_that_stops_answering_mid_boot_leaves_the_boot_unmeasured_and_says_so() {
    // swtpm ends once the emulator has started measuring: the UKI's own measurement is the
    // first to meet a TPM that no longer answers.
    let t = kexec_into_measuring_uki(FirstBoot::Direct, &[], Some("EFI_TCG2_PROTOCOL on the TPM"));
    assert!(t.contains("nothing more is measured this boot"), "the emulator said the TPM stopped");
    assert!(t.contains(xtask::payloads::initramfs::MARKER), "the UKI's kernel still reached userspace");
    assert!(t.contains("EFI stub: Exiting boot services"), "the kernel's stub ran on");
}

#[test]
fn a_uki_kexeced_through_kexec_file_load_is_measured_and_its_log_replays() {
    let t = kexec_into_measuring_uki(FirstBoot::Direct, &["-s"], None);
    assert!(t.contains("efi-kexec: loaded through kexec_file_load"), "the kexec_file_load door");
    let (log, pcrs) = measured(&t);
    let (_, events) = parse(&log).expect("the second kernel's log parses");
    let start = events.iter().find(|e| e.data.starts_with(EMULATOR_SIGNATURE)).expect("the emulator's start event");
    assert!(start.data.ends_with(b"via kexec_file_load\0"), "the log names the door: {:?}", String::from_utf8_lossy(start.data));
    assert_stub_measured_sections(&events);
    let checked: Vec<usize> = (0..24).filter(|n| *n != 10).collect();
    assert_replays_to(&events, &pcrs, &checked);
}

#[test]
fn a_chain_of_two_kexecs_keeps_one_log_that_replays() {
    // first (direct) -> efi-kexec -> the TIS-capable 6.12 with a stage initramfs -> efi-kexec ->
    // the measuring UKI: the second emulator continues the log the first one began (its
    // final-events table and the stub's copy pass on through the chain).
    let p = payloads();
    let uki = measuring_uki();
    let third = NextBoot { image: uki.clone(), initrd: None, append: Some(String::new()), extra: vec![], before_load: None, before_exec: None, files: Vec::new() };
    let second = NextBoot {
        image: file_kernel().clone(),
        initrd: Some(stage_initramfs(&p.busybox, efi_kexec(), "second", &third).unwrap()),
        append: Some("console=ttyAMA0 panic=-1 second=1".into()),
        extra: vec![],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let initramfs = stage_initramfs(&p.busybox, efi_kexec(), "first", &second).unwrap();
    let tpm = Swtpm::start().unwrap();
    let extras = Extras { qemu_args: tpm.qemu_args(), hook: None };
    let t = boot_first_kernel_with(file_kernel(), EntryEl::El1, FirstBoot::Direct, &initramfs, None, extras, TIMEOUT, false).expect("starting QEMU");
    let _ = std::fs::remove_file(uki);
    eprintln!("$ {}\n{}\n(ended after {:.3} s, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.timed_out);
    assert!(stage_report(&t, "second", "exec at uptime").is_some(), "the second kernel kexeced again");
    assert!(t.contains("continuing the earlier boot's log"), "the second emulator continued the first one's log");
    let (log, pcrs) = measured(&t);
    let (_, events) = parse(&log).expect("the third kernel's log parses");
    let starts: Vec<u8> = events.iter().filter(|e| e.data.starts_with(EMULATOR_SIGNATURE)).map(|e| e.data[16]).collect();
    assert_eq!(starts, [1, 0], "a new log, then its continuation");
    assert_eq!(
        events.iter().filter(|e| e.pcr == 5 && e.data == b"Exit Boot Services Returned with Success").count(),
        2,
        "both ExitBootServices, the first from the final-events table"
    );
    assert_stub_measured_sections(&events);
    let checked: Vec<usize> = (0..24).filter(|n| *n != 10).collect();
    assert_replays_to(&events, &pcrs, &checked);
}
