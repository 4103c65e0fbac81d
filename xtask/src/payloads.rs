//! `cargo xtask payloads`: real boot payloads from Debian's archive, by package name.
//!
//! - Debian's signed arm64 kernels: 6.1 (bookworm) and 6.12 (bookworm-backports), through the
//!   `linux-image-arm64` metapackage of each suite, so the newest ABI of each series is used;
//! - `busybox-static`, packed into an initramfs whose `/init` reports and powers off;
//! - `systemd-boot-efi` 252 (bookworm) and the bookworm-backports one (254 when offered).

use crate::apt::{self, Apt};
use crate::cpio::Cpio;
use crate::paths;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// First line `/init` prints: the boot reached userspace.
pub const MARKER: &str = "efi-emulator-test: userspace reached";
/// Prefix of every line `/init` prints.
pub const REPORT_PREFIX: &str = "efi-emulator-test: ";

/// A kernel of one series.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// "6.1" or "6.12".
    pub series: &'static str,
    /// The package, e.g. `linux-image-6.12.38+deb12-arm64`.
    pub package: String,
    pub version: String,
    /// The PE file (`/boot/vmlinuz-*`): an arm64 Image with the EFI stub.
    pub image: PathBuf,
}

/// A systemd-boot EFI stub.
#[derive(Clone, Debug)]
pub struct Stub {
    pub version: String,
    pub path: PathBuf,
}

/// Everything the runs and tests boot.
#[derive(Clone, Debug)]
pub struct Payloads {
    pub kernels: Vec<Kernel>,
    pub busybox: PathBuf,
    pub initramfs: PathBuf,
    pub stubs: Vec<Stub>,
}

impl Payloads {
    pub fn kernel(&self, series: &str) -> Result<&Kernel> {
        self.kernels.iter().find(|k| k.series == series).with_context(|| format!("no {series} kernel among the payloads"))
    }
}

/// The `/init` of the test initramfs.
pub fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo "{MARKER}"
echo "{p}uname -r: $(/bin/busybox uname -r)"
echo "{p}cmdline: $(/bin/busybox cat /proc/cmdline)"
if [ -d /sys/firmware/efi ]; then echo "{p}efi: yes"; else echo "{p}efi: no"; fi
echo "{p}memtotal: $(/bin/busybox grep MemTotal /proc/meminfo | /bin/busybox tr -s ' ')"
echo "{p}cpus: $(/bin/busybox grep -c ^processor /proc/cpuinfo)"
echo "{p}kaslr: $(/bin/busybox dmesg | /bin/busybox grep -o 'KASLR [a-z]*' | /bin/busybox head -n1)"
echo "{p}done"
/bin/busybox poweroff -f
"#,
        p = REPORT_PREFIX
    )
}

/// Builds the initramfs: busybox, `/init`, and the `/dev/console` the kernel opens for it.
pub fn build_initramfs(busybox: &Path, out: &Path) -> Result<()> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?);
    c.symlink("bin/sh", "busybox");
    c.file("init", 0o755, init_script().as_bytes());
    std::fs::write(out, c.finish())?;
    Ok(())
}

fn payload_dir() -> PathBuf {
    paths::cache_dir().join("payloads")
}

/// Downloads and unpacks one package version (once); returns the directory it was unpacked in.
fn unpack(apt: &Apt, name: &str, version: &str) -> Result<PathBuf> {
    let dir = payload_dir().join(format!("{name}_{version}"));
    let done = dir.join(".unpacked");
    if done.exists() {
        return Ok(dir);
    }
    let file = apt.resolve(name, version)?;
    let deb = apt.fetch(&file, &payload_dir().join("debs"))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    apt::extract(&deb, &dir)?;
    std::fs::write(&done, "")?;
    Ok(dir)
}

/// The concrete kernel package behind the `linux-image-arm64` metapackage of a series.
fn kernel_package(apt: &Apt, series: &str) -> Result<(String, String)> {
    let prefix = format!("{series}.");
    for stanza in apt.show("linux-image-arm64")? {
        let Some(version) = apt::field(&stanza, "Version") else { continue };
        if !version.starts_with(&prefix) {
            continue;
        }
        let depends = apt::field(&stanza, "Depends").context("linux-image-arm64 without Depends")?;
        let first = depends.split(',').next().unwrap().trim();
        let name = first.split_whitespace().next().unwrap().to_string();
        let pinned = first.split("(=").nth(1).map(|v| v.trim_end_matches(')').trim().to_string()).unwrap_or_else(|| version.to_string());
        return Ok((name, pinned));
    }
    bail!("no linux-image-arm64 {series}.x in {:?}", apt::SUITES)
}

/// Versions of a package, newest suite first (as apt-cache lists them).
fn versions(apt: &Apt, name: &str) -> Result<Vec<String>> {
    Ok(apt.show(name)?.iter().filter_map(|s| apt::field(s, "Version").map(str::to_string)).collect())
}

/// Makes sure every payload is in the cache, downloading what is missing.
pub fn ensure() -> Result<Payloads> {
    let apt = Apt::open(&paths::cache_dir())?;
    let mut kernels = Vec::new();
    for series in ["6.1", "6.12"] {
        let (package, version) = kernel_package(&apt, series)?;
        let dir = unpack(&apt, &package, &version)?;
        let boot = dir.join("boot");
        let image = std::fs::read_dir(&boot)
            .with_context(|| format!("{} has no /boot", package))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
            .with_context(|| format!("{package} has no /boot/vmlinuz-*"))?;
        kernels.push(Kernel { series, package, version, image });
    }

    let bb_version = versions(&apt, "busybox-static")?.into_iter().next().context("no busybox-static")?;
    let busybox = unpack(&apt, "busybox-static", &bb_version)?.join("bin/busybox");
    let initramfs = payload_dir().join("initramfs.cpio");
    build_initramfs(&busybox, &initramfs)?;

    let mut stubs = Vec::new();
    let all = versions(&apt, "systemd-boot-efi")?;
    let old = all.iter().find(|v| v.starts_with("252.")).context("no systemd-boot-efi 252")?;
    let new = all.iter().find(|v| v.starts_with("254.")).or_else(|| all.iter().find(|v| !v.starts_with("252."))).context("no systemd-boot-efi from bookworm-backports")?;
    for version in [old, new] {
        let dir = unpack(&apt, "systemd-boot-efi", version)?;
        let path = dir.join("usr/lib/systemd/boot/efi/linuxaa64.efi.stub");
        if !path.exists() {
            bail!("systemd-boot-efi {version} has no linuxaa64.efi.stub");
        }
        stubs.push(Stub { version: version.clone(), path });
    }
    Ok(Payloads { kernels, busybox, initramfs, stubs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initramfs_has_init_console_and_busybox() {
        let dir = std::env::temp_dir().join(format!("efi-emu-initramfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bb = dir.join("busybox");
        std::fs::write(&bb, b"\x7fELF-not-really").unwrap();
        let out = dir.join("initramfs.cpio");
        build_initramfs(&bb, &out).unwrap();
        let data = std::fs::read(&out).unwrap();
        for needle in [&b"dev/console\0"[..], b"bin/busybox\0", b"init\0", MARKER.as_bytes(), b"poweroff -f"] {
            assert!(data.windows(needle.len()).any(|w| w == needle), "{}", String::from_utf8_lossy(needle));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
