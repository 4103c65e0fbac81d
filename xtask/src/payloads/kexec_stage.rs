//! The initramfs of a kexec stage under QEMU: its `/init` (report, load the next boot through
//! `efi-kexec`, exec it) and its archive, with busybox and the next boot's image, initrd and files.
//! The payload's own initramfs may be a stage again (a chain). The first kernel that runs it is
//! booted by the harness (`harness::kexec`).

use anyhow::{Context, Result};
use efi_emulator_loader::cpio::Cpio;
use std::path::{Path, PathBuf};

/// Prefix of every line a kexec stage's `/init` prints.
pub const STAGE_PREFIX: &str = "efi-kexec-test: ";

/// What a stage kexecs into: an image, its initrd, its command line.
#[derive(Default)]
pub struct NextBoot {
    pub image: PathBuf,
    pub initrd: Option<Vec<u8>>,
    /// `None` passes no `--append` at all.
    pub append: Option<String>,
    /// Extra `efi-kexec load` arguments.
    pub extra: Vec<String>,
    /// Shell commands the stage runs just before `efi-kexec load`, and between the load and
    /// `efi-kexec exec` (tests).
    pub before_load: Option<String>,
    pub before_exec: Option<String>,
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
    let exec = format!("{}\n/efi-kexec exec", next.before_exec.as_deref().unwrap_or(""));
    script(stage, "/efi-kexec info /next.efi", &load.join(" "), exec.trim_start(), next.before_load.as_deref().unwrap_or(""))
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
