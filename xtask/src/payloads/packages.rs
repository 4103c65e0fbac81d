//! Debian packages in the payload cache: each version downloaded and unpacked once, and the two
//! kinds of payload taken straight from them, kernels and systemd-boot's EFI stubs.

use crate::paths;
use crate::payloads::apt::{self, Apt};
use anyhow::{Context, Result};
use std::path::PathBuf;

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

impl Stub {
    /// A file of the same package beside the stub (`systemd-bootaa64.efi`, `addonaa64.efi.stub`).
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.path.with_file_name(name)
    }
}

/// The kernel's efivarfs module, decompressed (Debian 6.12 ships it xz-compressed, and
/// busybox insmod does not decompress).
pub fn efivarfs_module(kernel: &Kernel) -> Result<Vec<u8>> {
    module(kernel, "fs/efivarfs", "efivarfs")
}

/// One of the kernel's modules (`dir` under `kernel/`, `name` without `.ko`), decompressed.
pub fn module(kernel: &Kernel, dir: &str, name: &str) -> Result<Vec<u8>> {
    let root = kernel.image.parent().unwrap().parent().unwrap();
    let modules = root.join("lib/modules");
    let release = std::fs::read_dir(&modules)?.flatten().next().context("no /lib/modules/<release>")?.path();
    let dir = release.join("kernel").join(dir);
    let plain = dir.join(format!("{name}.ko"));
    if plain.exists() {
        return Ok(std::fs::read(plain)?);
    }
    let xz = dir.join(format!("{name}.ko.xz"));
    let out = std::process::Command::new("xz").arg("-dc").arg(&xz).output().with_context(|| format!("xz -dc {} (install xz-utils)", xz.display()))?;
    anyhow::ensure!(out.status.success(), "xz -dc {} failed", xz.display());
    Ok(out.stdout)
}

/// The payload cache: unpacked packages, their `.deb` files, and the initramfs images and UKIs
/// built from them.
pub fn payload_dir() -> PathBuf {
    paths::cache_dir().join("payloads")
}

/// Downloads and unpacks one package version (once); returns the directory it was unpacked in.
pub fn unpack(apt: &Apt, name: &str, version: &str) -> Result<PathBuf> {
    let arch = apt.arch();
    let dir = payload_dir().join(if arch == "arm64" { format!("{name}_{version}") } else { format!("{name}_{version}_{arch}") });
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

/// Versions of a package, newest suite first (as apt-cache lists them).
pub(crate) fn versions(apt: &Apt, name: &str) -> Result<Vec<String>> {
    Ok(apt.show(name)?.iter().filter_map(|s| apt::field(s, "Version").map(str::to_string)).collect())
}
