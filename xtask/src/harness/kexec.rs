//! Real kexec under QEMU: a first kernel (Debian's 6.12, booted directly with `-kernel`) whose
//! initramfs holds `efi-kexec` and the next payload; its `/init` loads the payload through
//! `efi-kexec` and kexecs into it. The payload's own initramfs may do the same again (a chain).
//!
//! The first kernel runs on `-cpu max,lpa2=off`: Debian's 6.12.95 oopses in
//! `trans_pgd_create_copy` during `kexec_load` on a CPU with FEAT_LPA2 (52-bit VAs).

use crate::build::Blob;
use crate::harness::qemu::{self, Transcript};
use crate::harness::trampoline::EntryEl;
use crate::paths;
use crate::payloads::Payloads;
use anyhow::{Context, Result};
use efi_emulator::abi::cpio::Cpio;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const TARGET: &str = "aarch64-unknown-linux-musl";
/// Prefix of every line a kexec stage's `/init` prints.
pub const STAGE_PREFIX: &str = "efi-kexec-test: ";
/// The first kernel's command line (the nVHE case adds `kvm-arm.mode=nvhe`).
pub const FIRST_APPEND: &str = "console=ttyAMA0 panic=-1";
/// QEMU's CPU for the first kernel: no FEAT_LPA2 (see the module comment).
pub const FIRST_CPU: &str = "max,lpa2=off";

/// Builds the static arm64 `efi-kexec` with `blob` embedded; returns the binary.
pub fn build_efi_kexec(blob: &Blob) -> Result<PathBuf> {
    let bin = std::fs::canonicalize(&blob.bin)?;
    crate::build::build_release("efi-kexec", TARGET, &[("EFI_EMULATOR_BLOB", &bin)], "efi-kexec")
}

/// What a stage kexecs into: an image, its initrd, its command line.
pub struct NextBoot {
    pub image: PathBuf,
    pub initrd: Option<Vec<u8>>,
    /// `None` passes no `--append` at all.
    pub append: Option<String>,
    /// Extra `efi-kexec load` arguments.
    pub extra: Vec<String>,
    /// Shell commands the stage runs just before `efi-kexec load` (tests).
    pub before_load: Option<String>,
    /// Extra files for the stage's own initramfs (tests): path, contents.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Shell-quotes for the stage script.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `/init` of a stage: report, load the next boot through efi-kexec, exec it.
pub fn stage_script(stage: &str, next: &NextBoot) -> String {
    let mut load = vec!["/efi-kexec".to_string(), "load".into(), "/next.efi".into()];
    if next.initrd.is_some() {
        load.extend(["--initrd".into(), "/next.initrd".into()]);
    }
    if let Some(a) = &next.append {
        load.extend(["--append".into(), quote(a)]);
    }
    load.extend(next.extra.iter().cloned());
    script(stage, "/efi-kexec info /next.efi", &load.join(" "), "/efi-kexec exec", next.before_load.as_deref().unwrap_or(""))
}

/// A stage's `/init` around a loader's commands: the reports every kexec test and the bench
/// read ("up", "cmdline", "load at uptime", "exec at uptime", "load refused"), then `exec`.
pub fn script(stage: &str, setup: &str, load: &str, exec: &str, before_load: &str) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
p="{STAGE_PREFIX}{stage}"
echo "$p: up: $(uname -r), cpus $(grep -c ^processor /proc/cpuinfo), efi $([ -d /sys/firmware/efi ] && echo yes || echo no)"
echo "$p: cmdline: $(cat /proc/cmdline)"
{setup}
{before_load}
echo "$p: load at uptime $(cut -d' ' -f1 /proc/uptime)"
if ! {load}; then
    echo "$p: load refused; still running $(uname -r)"
    poweroff -f
fi
echo "$p: exec at uptime $(cut -d' ' -f1 /proc/uptime)"
{exec}
echo "$p: exec failed"
poweroff -f
"#
    )
}

/// An initramfs whose `/init` kexecs `next` through `efi-kexec`.
pub fn stage_initramfs(busybox: &Path, efi_kexec: &Path, stage: &str, next: &NextBoot) -> Result<Vec<u8>> {
    let mut c = stage_cpio(busybox, &[], &stage_script(stage, next), next)?;
    c.file("efi-kexec", 0o755, &read(efi_kexec)?);
    Ok(c.finish())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// What every stage's initramfs holds: the directories (`/bin`, `/dev`, `/proc`, `/sys`, `/tmp`
/// and `dirs`, parents first), the console, busybox, `script` as `/init`, and `next`'s image,
/// initrd and files. The caller adds its loader.
pub fn stage_cpio(busybox: &Path, dirs: &[String], script: &str, next: &NextBoot) -> Result<Cpio> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "tmp"].into_iter().chain(dirs.iter().map(String::as_str)) {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &read(busybox)?);
    c.file("init", 0o755, script.as_bytes());
    c.file("next.efi", 0o644, &read(&next.image)?);
    if let Some(initrd) = &next.initrd {
        c.file("next.initrd", 0o644, initrd);
    }
    for (path, data) in &next.files {
        c.file(path, 0o644, data);
    }
    Ok(c)
}

/// How the first kernel runs: its EL, and so its machine and command line.
pub fn first_machine(el: EntryEl) -> (&'static str, &'static str) {
    match el {
        EntryEl::El1 => ("virt", ""),
        EntryEl::El2Vhe => ("virt,virtualization=on", ""),
        EntryEl::El2 => ("virt,virtualization=on", " kvm-arm.mode=nvhe"),
    }
}

/// What starts the first kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstBoot {
    /// QEMU enters the Image itself: no UEFI, the machine's device tree.
    Direct,
    /// The same, with [`crate::payloads::kdump::CRASHKERNEL`] reserving a crash kernel region.
    DirectCrashKernel,
    /// EDK2 (Debian's AAVMF, with a writable variable store) boots it through its EFI stub; on
    /// QEMU `virt` the kernel then takes ACPI, and `/sys/firmware/fdt` holds only `/chosen`.
    Edk2,
    /// The same, with SMBIOS naming an Ampere eMAG processor: arm64 Linux then calls
    /// SetVirtualAddressMap (those machines need it), so the first kernel moves the firmware to
    /// new virtual addresses.
    Edk2Emag,
}

/// Debian's EDK2 for QEMU: the code (read-only) and the variable store template.
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";

/// QEMU's arguments for Debian's AAVMF: its code read-only, `vars` (written by the firmware) as
/// the variable store.
pub fn edk2_flash(vars: &Path) -> [String; 4] {
    ["-drive".into(), format!("if=pflash,format=raw,readonly=on,file={AAVMF_CODE}"), "-drive".into(), format!("if=pflash,format=raw,file={}", vars.display())]
}

/// Boots Debian's 6.12 directly with `initramfs` as its initrd, 2 CPUs, 2 GiB.
pub fn boot_first(payloads: &Payloads, el: EntryEl, initramfs: &[u8], timeout: Duration, echo: bool) -> Result<Transcript> {
    boot_first_with(payloads, el, FirstBoot::Direct, initramfs, timeout, echo)
}

/// Boots Debian's 6.12 as `boot` says, with `initramfs` as its initrd, 2 CPUs, 2 GiB.
pub fn boot_first_with(payloads: &Payloads, el: EntryEl, boot: FirstBoot, initramfs: &[u8], timeout: Duration, echo: bool) -> Result<Transcript> {
    boot_first_vars(payloads, el, boot, initramfs, None, timeout, echo)
}

/// [`boot_first_with`], with EDK2's variable store in `vars` (kept across boots) instead of a
/// fresh copy.
pub fn boot_first_vars(payloads: &Payloads, el: EntryEl, boot: FirstBoot, initramfs: &[u8], vars: Option<&Path>, timeout: Duration, echo: bool) -> Result<Transcript> {
    boot_first_kernel(&payloads.kernel("6.12")?.image, el, boot, initramfs, vars, timeout, echo)
}

/// [`boot_first_vars`] with another first kernel than Debian's 6.12, such as
/// [`crate::payloads::file_kernel`]'s `Image` (a raw arm64 Image with the EFI stub, for EDK2).
pub fn boot_first_kernel(kernel: &Path, el: EntryEl, boot: FirstBoot, initramfs: &[u8], vars: Option<&Path>, timeout: Duration, echo: bool) -> Result<Transcript> {
    let dir = paths::out_dir().join("runs").join(format!("kexec-{}-{:?}-{}", std::process::id(), el, unique()));
    std::fs::create_dir_all(&dir)?;
    let initrd = dir.join("first.cpio");
    std::fs::write(&initrd, initramfs)?;
    let (machine, extra) = first_machine(el);
    let mut args: Vec<String> =
        ["-M", machine, "-cpu", FIRST_CPU, "-m", "2G", "-smp", "2", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none"]
            .iter()
            .map(|s| s.to_string())
            .chain(["-kernel".into(), kernel.display().to_string(), "-initrd".into(), initrd.display().to_string()])
            .chain([
                "-append".into(),
                format!("{FIRST_APPEND}{extra}{}", if boot == FirstBoot::DirectCrashKernel { format!(" {}", crate::payloads::kdump::CRASHKERNEL) } else { String::new() }),
            ])
            .collect();
    if boot == FirstBoot::Edk2Emag {
        args.extend(["-smbios".into(), "type=4,version=eMAG".into()]);
    }
    if matches!(boot, FirstBoot::Edk2 | FirstBoot::Edk2Emag) {
        let vars = match vars {
            Some(v) => v.to_path_buf(),
            None => {
                let fresh = dir.join("AAVMF_VARS.fd");
                std::fs::copy(AAVMF_VARS, &fresh).with_context(|| format!("copying {AAVMF_VARS} (install qemu-efi-aarch64: `cargo xtask setup`)"))?;
                fresh
            }
        };
        args.extend(edk2_flash(&vars));
    }
    let t = qemu::run(&args, timeout, echo);
    let _ = std::fs::remove_dir_all(&dir);
    t
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The value a stage reported for `key` (`efi-kexec-test: <stage>: <key>: value`).
pub fn stage_report(t: &Transcript, stage: &str, key: &str) -> Option<String> {
    let prefix = format!("{STAGE_PREFIX}{stage}: {key}");
    t.lines.iter().find_map(|(_, l)| l.strip_prefix(&prefix).map(|v| v.trim_start_matches(':').trim().to_string()))
}
