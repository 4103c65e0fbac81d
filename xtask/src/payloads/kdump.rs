//! The kdump payloads: a first kernel with a crash region (booted by the harness's
//! `harness::kexec`) loads a crash kernel through `efi-kexec load -p`, plants a known
//! pattern in a locked page (`kdump-probe plant`), and panics; the crash kernel boots through the
//! emulator inside the region and finds the pattern in `/proc/vmcore` at the physical address the
//! first kernel reported (`kdump-probe check`). Here: the first stage's initramfs and the crash
//! kernel's initramfs and UKI.

use crate::payloads::initramfs::{MARKER, REPORT_PREFIX};
use crate::payloads::kexec_stage::{script, stage_cpio, NextBoot};
use crate::payloads::kexec_tools::{tools_cpio, KexecTools};
use crate::payloads::uki;
use crate::payloads::Payloads;
use efi_emulator_loader::cpio::Cpio;

use anyhow::Result;
use std::path::Path;

/// The crash kernel's command line, before the pattern's address.
pub const CRASH_APPEND: &str = "console=ttyAMA0 earlycon panic=-1 maxcpus=1 reset_devices";

/// The crash kernel's `/init`: the userspace marker, then the probe's check of `/proc/vmcore`
/// at the address on the command line.
pub fn crash_init() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "{MARKER}"
echo "{p}uname -r: $(uname -r)"
echo "{p}cmdline: $(cat /proc/cmdline)"
echo "{p}uptime: $(cut -d' ' -f1 /proc/uptime)"
echo "{p}memtotal: $(grep MemTotal /proc/meminfo | tr -s ' ')"
echo "{p}vmcore: $(ls -l /proc/vmcore 2>&1 | tr -s ' ' | cut -d' ' -f5)"
/kdump-probe check "$(sed -n 's/.*kdump_pattern=\([0-9a-fx]*\).*/\1/p' /proc/cmdline)"
echo "{p}done"
poweroff -f
"#,
        p = REPORT_PREFIX
    )
}

/// The crash kernel's initramfs: busybox, the probe, [`crash_init`].
pub fn crash_initramfs(busybox: &Path, probe: &Path) -> Result<Vec<u8>> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &std::fs::read(busybox)?);
    c.file("kdump-probe", 0o755, &std::fs::read(probe)?);
    c.file("init", 0o755, crash_init().as_bytes());
    Ok(c.finish())
}

/// A UKI for crash boots: the 254 stub with Debian's 6.12 and [`crash_initramfs`] as its
/// `.initrd`; the loader's command line (with the pattern's address) overrides its `.cmdline`.
pub fn crash_uki(p: &Payloads, probe: &Path) -> Result<Vec<u8>> {
    let stub = std::fs::read(&p.stub("254")?.path)?;
    let linux = std::fs::read(&p.kernel("6.12")?.image)?;
    let initrd = crash_initramfs(&p.busybox, probe)?;
    let osrel = uki::os_release("kdump");
    let sections: Vec<(&str, &[u8])> = vec![(".osrel", osrel.as_bytes()), (".cmdline", b"console=ttyAMA0"), (".initrd", &initrd), (".linux", &linux)];
    uki::build(&stub, &sections)
}

/// What the first stage does before it loads: plant the pattern, keep its address in $PATTERN.
/// A background job's stdin is /dev/null: devtmpfs provides it.
const PLANT: &str = "mount -t devtmpfs devtmpfs /dev\n/kdump-probe plant /tmp/pattern &\nfor i in 1 2 3 4 5 6 7 8 9 10; do [ -s /tmp/pattern ] && break; sleep 1; done\nPATTERN=$(cat /tmp/pattern)";
/// After the load: panic.
const PANIC: &str = "echo \"$p: panic at uptime $(cut -d' ' -f1 /proc/uptime)\"\necho c > /proc/sysrq-trigger";

/// The crash kernel's command line, with the pattern's address the first stage found.
fn crash_append() -> String {
    format!("{CRASH_APPEND} kdump_pattern=$PATTERN")
}

/// The first kernel's initramfs: plants the pattern, loads `next` as the crash kernel with the
/// pattern's address on its command line (`efi-kexec load -p`, with `extra` arguments such as
/// `-s`), and panics.
pub fn first_stage(busybox: &Path, efi_kexec: &Path, probe: &Path, next: &NextBoot) -> Result<Vec<u8>> {
    let mut load = format!("/efi-kexec load -p /next.efi --append \"{}\"", crash_append());
    if next.initrd.is_some() {
        load.push_str(" --initrd /next.initrd");
    }
    for a in &next.extra {
        load.push(' ');
        load.push_str(a);
    }
    let before = format!("{}\n{PLANT}", next.before_load.as_deref().unwrap_or(""));
    let mut c = stage_cpio(busybox, &[], &script("first", "/efi-kexec info /next.efi", &load, PANIC, &before), next)?;
    c.file("efi-kexec", 0o755, &std::fs::read(efi_kexec)?);
    c.file("kdump-probe", 0o755, &std::fs::read(probe)?);
    Ok(c.finish())
}

/// The same with Debian's kexec-tools through the signed door: `kexec -s -p emulator.efi
/// --initrd=PAYLOAD`, the payload being `next`'s image (a PE file or a bundle).
pub fn first_stage_kexec_file(busybox: &Path, tools: &KexecTools, emulator: &[u8], probe: &Path, next: &NextBoot) -> Result<Vec<u8>> {
    let load = format!("/sbin/kexec -s -p /emulator.efi --initrd=/next.efi --append=\"{}\"", crash_append());
    let mut c = tools_cpio(busybox, tools, &script("first", "", &load, PANIC, PLANT), next)?;
    c.file("emulator.efi", 0o644, emulator);
    c.file("kdump-probe", 0o755, &std::fs::read(probe)?);
    Ok(c.finish())
}
