//! The boot loaders a machine's own boot chain has, from Debian by package name:
//! - `systemd-boot-efi` 257 from trixie (systemd-boot, systemd-stub and the add-on stub);
//! - GRUB 2.12 from bookworm-backports: the arm64-efi modules (`grub-efi-arm64-bin`) with the
//!   `grub-mkimage` of the same release built for this host (`grub-common`);
//! - Debian's signed monolithic `grubaa64.efi` (`grub-efi-arm64-signed`) from trixie: bookworm's
//!   (SBAT generation `grub,4`) is revoked by the SBAT level shim 16.1 applies under Secure Boot
//!   (`grub,5`), so shim would refuse it;
//! - Debian's signed `shimaa64.efi` (`shim-signed`, bookworm).

use crate::payloads::apt::{self, Apt};
use crate::payloads::initramfs::build_initramfs;
use crate::payloads::packages::{efivarfs_module, payload_dir, unpack, versions, Kernel, Stub};
use crate::payloads::uki::{build_uki, Uki};
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the boot-chain tests boot through.
#[derive(Clone, Debug)]
pub struct Loaders {
    /// systemd-boot-efi 257: `linuxaa64.efi.stub`, with `systemd-bootaa64.efi` and
    /// `addonaa64.efi.stub` beside it.
    pub systemd: Stub,
    /// Stub 257 with the 6.12 kernel ("257+6.12").
    pub uki: Uki,
    pub grub: Grub,
    pub shim: Shim,
    /// An initramfs for the GRUB chains (`/initrd-id` says [`GRUB_INITRD_ID`]), with the 6.12
    /// kernel's efivarfs module: proof that the initrd GRUB loaded is the one that booted.
    pub grub_initrd: PathBuf,
}

pub const GRUB_INITRD_ID: &str = "grub-initrd";

/// GRUB 2.12 for arm64-efi.
#[derive(Clone, Debug)]
pub struct Grub {
    pub version: String,
    /// `usr/lib/grub/arm64-efi`: the modules and `kernel.img`.
    pub modules: PathBuf,
    /// This host's `grub-mkimage` of the same release.
    pub mkimage: PathBuf,
    /// Debian's signed monolithic image (`grubaa64.efi.signed`): what shim starts.
    pub signed: PathBuf,
    pub signed_version: String,
}

/// Debian's signed shim.
#[derive(Clone, Debug)]
pub struct Shim {
    pub version: String,
    /// `shimaa64.efi.signed`.
    pub path: PathBuf,
}

/// The newest version of `name` starting with `prefix`.
fn version(apt: &Apt, name: &str, prefix: &str) -> Result<String> {
    versions(apt, name)?.into_iter().find(|v| v.starts_with(prefix)).with_context(|| format!("no {name} {prefix}* for {} in the package lists", apt.arch()))
}

/// The one file under `dir` whose name is `name`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                return Ok(p);
            }
        }
    }
    anyhow::bail!("no {name} under {}", dir.display())
}

/// Makes sure the loaders are in the cache, downloading what is missing.
pub fn ensure(cache: &Path, kernel: &Kernel, busybox: &Path) -> Result<Loaders> {
    let trixie = Apt::open_archive(cache, apt::TRIXIE)?;
    let v = version(&trixie, "systemd-boot-efi", "257.")?;
    let dir = unpack(&trixie, "systemd-boot-efi", &v)?;
    let systemd = Stub { version: v.clone(), path: dir.join("usr/lib/systemd/boot/efi/linuxaa64.efi.stub") };
    for f in ["linuxaa64.efi.stub", "systemd-bootaa64.efi", "addonaa64.efi.stub"] {
        ensure!(systemd.sibling(f).exists(), "systemd-boot-efi {v} has no {f}");
    }

    let bookworm = Apt::open_archive(cache, apt::BOOKWORM)?;
    let host = Apt::open_archive(cache, apt::HOST_TOOLS)?;
    let gv = version(&bookworm, "grub-efi-arm64-bin", "2.12")?;
    let modules = unpack(&bookworm, "grub-efi-arm64-bin", &gv)?.join("usr/lib/grub/arm64-efi");
    ensure!(modules.join("kernel.img").exists(), "grub-efi-arm64-bin {gv} has no arm64-efi/kernel.img");
    // grub-mkimage must be the modules' release: the host's own (if any) may not be.
    let common = unpack(&host, "grub-common", &gv)?;
    let mkimage = common.join("usr/bin/grub-mkimage");
    ensure!(mkimage.exists(), "grub-common {gv} ({}) has no grub-mkimage", host.arch());
    let sv = version(&trixie, "grub-efi-arm64-signed", "1+2.12")?;
    let signed = find(&unpack(&trixie, "grub-efi-arm64-signed", &sv)?, "grubaa64.efi.signed")?;
    let grub = Grub { version: gv, modules, mkimage, signed, signed_version: sv };

    let shim_v = version(&bookworm, "shim-signed", "")?;
    let shim = Shim { path: find(&unpack(&bookworm, "shim-signed", &shim_v)?, "shimaa64.efi.signed")?, version: shim_v };
    let uki = build_uki(&systemd, kernel, busybox)?;
    let grub_initrd = payload_dir().join(format!("initramfs-{GRUB_INITRD_ID}.cpio"));
    build_initramfs(busybox, &grub_initrd, GRUB_INITRD_ID, &[("efivarfs.ko", efivarfs_module(kernel)?)])?;
    Ok(Loaders { systemd, uki, grub, shim, grub_initrd })
}

impl Grub {
    /// `grub-mkimage -O arm64-efi` with `modules`, the prefix `prefix` (where `grub.cfg` is
    /// looked for on the device GRUB was loaded from) and, when given, an embedded early config.
    pub fn mkimage(&self, out: &Path, prefix: &str, early_config: Option<&Path>, modules: &[&str]) -> Result<()> {
        let mut cmd = Command::new(&self.mkimage);
        cmd.arg("-O").arg("arm64-efi").arg("-d").arg(&self.modules).arg("-o").arg(out).arg("-p").arg(prefix);
        if let Some(c) = early_config {
            cmd.arg("-c").arg(c);
        }
        cmd.args(modules);
        crate::process::run_checked(&mut cmd).with_context(|| format!("grub-mkimage {} (arm64-efi)", self.version))
    }
}
