//! `cargo xtask payloads`: real boot payloads from Debian's archive, by package name.
//!
//! - Debian's signed arm64 kernels: 6.1 (bookworm) and 6.12 (bookworm-backports), through the
//!   `linux-image-arm64` metapackage of each suite, so the newest ABI of each series is used; and
//!   6.12 with 16 KiB pages (`linux-image-arm64-16k`);
//! - `busybox-static`, packed into an initramfs whose `/init` reports and powers off;
//! - `systemd-boot-efi` 252 (bookworm) and the bookworm-backports one (254 when offered), and
//!   UKIs made of them;
//! - EFI zboot kernels built from `linux-source-6.1` and `linux-source-6.12`;
//! - the boot loaders of [`loaders`];
//! - what the kexec and kdump tests stage: [`kexec_stage`], Debian's [`kexec_tools`] (with the
//!   libraries [`elf_dynamic`] finds for it) and [`kdump`]; the bad images of [`corpus`].
//!
//! [`Payloads`] gathers them. The files below this one use one another downwards only:
//! [`apt`] and [`packages`] at the bottom, [`initramfs`] and [`uki`] over them, [`loaders`],
//! [`zboot`] and [`file_kernel`], the kexec files; [`corpus`] and [`kdump`] take a [`Payloads`].

pub mod apt;
pub mod corpus;
pub mod elf_dynamic;
pub mod file_kernel;
pub mod initramfs;
pub mod kdump;
pub mod kexec_stage;
pub mod kexec_tools;
pub mod loaders;
pub mod packages;
pub mod uki;
pub mod zboot;

use crate::paths;
use crate::payloads::apt::Apt;
use crate::payloads::initramfs::build_initramfs;
use crate::payloads::loaders::Loaders;
use crate::payloads::packages::{payload_dir, unpack, versions, Kernel, Stub};
use crate::payloads::uki::{build_uki, Uki};
use crate::payloads::zboot::Zboot;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Everything the runs and tests boot.
#[derive(Clone, Debug)]
pub struct Payloads {
    /// Debian's signed 6.1 and 6.12, 4 KiB pages.
    pub kernels: Vec<Kernel>,
    /// Debian's 6.12 with 16 KiB pages (`linux-image-arm64-16k`, unsigned): a first kernel
    /// whose page size is not the emulator's, and a payload that maps runtime services with it.
    pub kernel_16k: Kernel,
    pub busybox: PathBuf,
    pub initramfs: PathBuf,
    pub stubs: Vec<Stub>,
    pub ukis: Vec<Uki>,
    pub zboot: Vec<Zboot>,
    /// systemd-boot 257, GRUB 2.12 and shim: left to [`ensure_all`], like the zboot kernels.
    pub loaders: Option<Loaders>,
}

impl Payloads {
    /// The systemd-boot-efi build whose version starts with `version` ("252", "254").
    pub fn stub(&self, version: &str) -> Result<&Stub> {
        self.stubs.iter().find(|s| s.version.starts_with(version)).with_context(|| format!("no systemd-boot-efi {version} among the payloads"))
    }
    pub fn kernel(&self, series: &str) -> Result<&Kernel> {
        self.kernels.iter().find(|k| k.series == series).with_context(|| format!("no {series} kernel among the payloads"))
    }
    pub fn zboot(&self, series: &str) -> Result<&Zboot> {
        self.zboot.iter().find(|z| z.series == series).with_context(|| format!("no {series} zboot kernel among the payloads"))
    }
    pub fn loaders(&self) -> Result<&Loaders> {
        self.loaders.as_ref().context("the boot loaders are fetched by `cargo xtask payloads` (payloads::ensure_all)")
    }
    pub fn uki(&self, name: &str) -> Result<&Uki> {
        self.ukis.iter().find(|u| u.name == name).with_context(|| format!("no UKI {name} among the payloads"))
    }
}

/// The two test UKIs: stub 252 with the 6.1 kernel, stub 254 (or newer) with 6.12.
fn build_ukis(kernels: &[Kernel], stubs: &[Stub], busybox: &Path) -> Result<Vec<Uki>> {
    let kernel = |series: &str| kernels.iter().find(|k| k.series == series).unwrap();
    Ok(vec![build_uki(&stubs[0], kernel("6.1"), busybox)?, build_uki(&stubs[1], kernel("6.12"), busybox)?])
}

/// The concrete kernel package behind a metapackage (`linux-image-arm64`,
/// `linux-image-arm64-16k`) of a series.
fn kernel_package(apt: &Apt, meta: &str, series: &str) -> Result<(String, String)> {
    let prefix = format!("{series}.");
    for stanza in apt.show(meta)? {
        let Some(version) = apt::field(&stanza, "Version") else { continue };
        if !version.starts_with(&prefix) {
            continue;
        }
        let depends = apt::field(&stanza, "Depends").with_context(|| format!("{meta} without Depends"))?;
        let first = depends.split(',').next().unwrap().trim();
        let name = first.split_whitespace().next().unwrap().to_string();
        let pinned = first.split("(=").nth(1).map(|v| v.trim_end_matches(')').trim().to_string()).unwrap_or_else(|| version.to_string());
        return Ok((name, pinned));
    }
    bail!("no {meta} {series}.x in {:?}", apt::SUITES)
}

/// A kernel package of `meta` and `version` (a series), downloaded and unpacked, as `series`.
fn fetch_kernel(apt: &Apt, series: &'static str, meta: &str, version: &str) -> Result<Kernel> {
    let (package, version) = kernel_package(apt, meta, version)?;
    let dir = unpack(apt, &package, &version)?;
    let boot = dir.join("boot");
    let image = std::fs::read_dir(&boot)
        .with_context(|| format!("{} has no /boot", package))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .with_context(|| format!("{package} has no /boot/vmlinuz-*"))?;
    Ok(Kernel { series, package, version, image })
}

/// Makes sure the Debian payloads (and the UKIs made of them) are in the cache, downloading
/// what is missing; the zboot kernels are left to [`ensure_all`].
pub fn ensure() -> Result<Payloads> {
    let apt = Apt::open(&paths::cache_dir())?;
    let kernels = ["6.1", "6.12"].into_iter().map(|series| fetch_kernel(&apt, series, "linux-image-arm64", series)).collect::<Result<Vec<_>>>()?;
    let kernel_16k = fetch_kernel(&apt, "6.12-16k", "linux-image-arm64-16k", "6.12")?;

    let bb_version = versions(&apt, "busybox-static")?.into_iter().next().context("no busybox-static")?;
    let busybox = unpack(&apt, "busybox-static", &bb_version)?.join("bin/busybox");
    let initramfs = payload_dir().join("initramfs.cpio");
    build_initramfs(&busybox, &initramfs, "plain", &[])?;

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
    let ukis = build_ukis(&kernels, &stubs, &busybox)?;
    Ok(Payloads { kernels, kernel_16k, busybox, initramfs, stubs, ukis, zboot: Vec::new(), loaders: None })
}

/// Everything, the zboot kernels too (they are built from source: minutes, the first time).
pub fn ensure_all() -> Result<Payloads> {
    let mut p = ensure()?;
    let apt = Apt::open(&paths::cache_dir())?;
    p.zboot = ["6.1", "6.12"].into_iter().map(|s| zboot::ensure(&apt, s)).collect::<Result<Vec<_>>>()?;
    p.loaders = Some(loaders::ensure(&paths::cache_dir(), p.kernel("6.12")?, &p.busybox)?);
    Ok(p)
}
