//! `cargo xtask payloads`: real boot payloads from Debian's archive, by package name.
//!
//! - Debian's signed arm64 kernels: 6.1 (bookworm) and 6.12 (bookworm-backports), through the
//!   `linux-image-arm64` metapackage of each suite, so the newest ABI of each series is used;
//! - `busybox-static`, packed into an initramfs whose `/init` reports and powers off;
//! - `systemd-boot-efi` 252 (bookworm) and the bookworm-backports one (254 when offered), and
//!   UKIs made of them;
//! - EFI zboot kernels built from `linux-source-6.1` and `linux-source-6.12`;
//! - the boot loaders of [`crate::payloads::loaders`].

pub mod apt;
pub mod corpus;
pub mod file_kernel;
pub mod kdump;
pub mod kexec_tools;
pub mod loaders;
pub mod uki;
pub mod zboot;

use crate::paths;
use crate::payloads::apt::Apt;
use anyhow::{bail, Context, Result};
use efi_emulator::abi::cpio::Cpio;
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

/// A unified kernel image built from a stub, a kernel and an initramfs.
#[derive(Clone, Debug)]
pub struct Uki {
    /// e.g. "252+6.1".
    pub name: String,
    pub path: PathBuf,
    /// Its embedded `.cmdline`.
    pub cmdline: String,
    pub stub_version: String,
    /// What `/initrd-id` in its initramfs says.
    pub initrd_id: String,
}

/// Everything the runs and tests boot.
#[derive(Clone, Debug)]
pub struct Payloads {
    pub kernels: Vec<Kernel>,
    pub busybox: PathBuf,
    pub initramfs: PathBuf,
    pub stubs: Vec<Stub>,
    pub ukis: Vec<Uki>,
    pub zboot: Vec<crate::payloads::zboot::Zboot>,
    /// systemd-boot 257, GRUB 2.12 and shim: left to [`ensure_all`], like the zboot kernels.
    pub loaders: Option<crate::payloads::loaders::Loaders>,
}

impl Stub {
    /// A file of the same package beside the stub (`systemd-bootaa64.efi`, `addonaa64.efi.stub`).
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.path.with_file_name(name)
    }
}

impl Payloads {
    /// The systemd-boot-efi build whose version starts with `version` ("252", "254").
    pub fn stub(&self, version: &str) -> Result<&Stub> {
        self.stubs.iter().find(|s| s.version.starts_with(version)).with_context(|| format!("no systemd-boot-efi {version} among the payloads"))
    }
    pub fn kernel(&self, series: &str) -> Result<&Kernel> {
        self.kernels.iter().find(|k| k.series == series).with_context(|| format!("no {series} kernel among the payloads"))
    }
    pub fn zboot(&self, series: &str) -> Result<&crate::payloads::zboot::Zboot> {
        self.zboot.iter().find(|z| z.series == series).with_context(|| format!("no {series} zboot kernel among the payloads"))
    }
    pub fn loaders(&self) -> Result<&crate::payloads::loaders::Loaders> {
        self.loaders.as_ref().context("the boot loaders are fetched by `cargo xtask payloads` (payloads::ensure_all)")
    }
    pub fn uki(&self, name: &str) -> Result<&Uki> {
        self.ukis.iter().find(|u| u.name == name).with_context(|| format!("no UKI {name} among the payloads"))
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
echo "{p}initrd: $(/bin/busybox cat /initrd-id)"
if [ -f /efivarfs.ko ]; then
    /bin/busybox insmod /efivarfs.ko
    /bin/busybox mount -t efivarfs efivarfs /sys/firmware/efi/efivars
    echo "{p}efivars: $(/bin/busybox ls /sys/firmware/efi/efivars | /bin/busybox tr '\n' ' ')"
    f=/sys/firmware/efi/efivars/StubInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
    if [ -f $f ]; then echo "{p}StubInfo: $(/bin/busybox tail -c +5 $f | /bin/busybox tr -d '\000')"; fi
fi
echo "{p}memtotal: $(/bin/busybox grep MemTotal /proc/meminfo | /bin/busybox tr -s ' ')"
echo "{p}cpus: $(/bin/busybox grep -c ^processor /proc/cpuinfo)"
echo "{p}kaslr: $(/bin/busybox dmesg | /bin/busybox grep -o 'KASLR [a-z]*' | /bin/busybox head -n1)"
echo "{p}done"
/bin/busybox poweroff -f
"#,
        p = REPORT_PREFIX
    )
}

/// Builds an initramfs: busybox, `/init`, the `/dev/console` the kernel opens for it, an
/// `/initrd-id` naming it, and extra files (a kernel module).
pub fn build_initramfs(busybox: &Path, out: &Path, id: &str, extra: &[(&str, Vec<u8>)]) -> Result<()> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?);
    c.symlink("bin/sh", "busybox");
    c.file("init", 0o755, init_script().as_bytes());
    c.file("initrd-id", 0o644, format!("{id}\n").as_bytes());
    for (name, data) in extra {
        c.file(name, 0o644, data);
    }
    std::fs::write(out, c.finish())?;
    Ok(())
}

/// The kernel's efivarfs module, decompressed (Debian 6.12 ships it xz-compressed, and
/// busybox insmod does not decompress).
pub fn efivarfs_module(kernel: &Kernel) -> Result<Vec<u8>> {
    let root = kernel.image.parent().unwrap().parent().unwrap();
    let modules = root.join("lib/modules");
    let release = std::fs::read_dir(&modules)?.flatten().next().context("no /lib/modules/<release>")?.path();
    let dir = release.join("kernel/fs/efivarfs");
    let plain = dir.join("efivarfs.ko");
    if plain.exists() {
        return Ok(std::fs::read(plain)?);
    }
    let xz = dir.join("efivarfs.ko.xz");
    let out = std::process::Command::new("xz").arg("-dc").arg(&xz).output().with_context(|| format!("xz -dc {} (install xz-utils)", xz.display()))?;
    anyhow::ensure!(out.status.success(), "xz -dc {} failed", xz.display());
    Ok(out.stdout)
}

/// The two test UKIs: stub 252 with the 6.1 kernel, stub 254 (or newer) with 6.12.
fn build_ukis(kernels: &[Kernel], stubs: &[Stub], busybox: &Path) -> Result<Vec<Uki>> {
    let kernel = |series: &str| kernels.iter().find(|k| k.series == series).unwrap();
    Ok(vec![build_uki(&stubs[0], kernel("6.1"), busybox)?, build_uki(&stubs[1], kernel("6.12"), busybox)?])
}

/// A UKI named `<stub major>+<series>`: the stub, `kernel`, an initramfs of its own (with the
/// kernel's efivarfs module) and a command line that names it.
pub fn build_uki(stub: &Stub, kernel: &Kernel, busybox: &Path) -> Result<Uki> {
    let series = kernel.series;
    let major = stub.version.split('.').next().unwrap_or("?").to_string();
    let name = format!("{major}+{series}");
    let id = format!("uki-{name}");
    let initramfs = payload_dir().join(format!("initramfs-{id}.cpio"));
    build_initramfs(busybox, &initramfs, &id, &[("efivarfs.ko", efivarfs_module(kernel)?)])?;
    let cmdline = format!("console=ttyAMA0 earlycon panic=-1 efi_emulator_uki={name}");
    let release = kernel.image.file_name().unwrap().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
    let linux = std::fs::read(&kernel.image)?;
    let initrd = std::fs::read(&initramfs)?;
    let osrel = crate::payloads::uki::os_release(&name);
    let mut sections: Vec<(&str, &[u8])> = vec![(".osrel", osrel.as_bytes()), (".cmdline", cmdline.as_bytes())];
    if major != "252" {
        sections.push((".uname", release.as_bytes()));
    }
    sections.push((".initrd", &initrd));
    sections.push((".linux", &linux));
    let uki = crate::payloads::uki::build(&std::fs::read(&stub.path)?, &sections)?;
    crate::payloads::uki::verify(&uki, &sections)?;
    let path = payload_dir().join(format!("uki-{name}.efi"));
    std::fs::write(&path, uki)?;
    Ok(Uki { name, path, cmdline, stub_version: stub.version.clone(), initrd_id: id })
}

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
pub(crate) fn versions(apt: &Apt, name: &str) -> Result<Vec<String>> {
    Ok(apt.show(name)?.iter().filter_map(|s| apt::field(s, "Version").map(str::to_string)).collect())
}

/// Makes sure the Debian payloads (and the UKIs made of them) are in the cache, downloading
/// what is missing; the zboot kernels are left to [`ensure_all`].
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
    Ok(Payloads { kernels, busybox, initramfs, stubs, ukis, zboot: Vec::new(), loaders: None })
}

/// Everything, the zboot kernels too (they are built from source: minutes, the first time).
pub fn ensure_all() -> Result<Payloads> {
    let mut p = ensure()?;
    let apt = Apt::open(&paths::cache_dir())?;
    p.zboot = ["6.1", "6.12"].into_iter().map(|s| crate::payloads::zboot::ensure(&apt, s)).collect::<Result<Vec<_>>>()?;
    p.loaders = Some(crate::payloads::loaders::ensure(&paths::cache_dir(), p.kernel("6.12")?, &p.busybox)?);
    Ok(p)
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
        build_initramfs(&bb, &out, "plain", &[("efivarfs.ko", b"module".to_vec())]).unwrap();
        let data = std::fs::read(&out).unwrap();
        for needle in [&b"dev/console\0"[..], b"bin/busybox\0", b"init\0", MARKER.as_bytes(), b"poweroff -f", b"efivarfs.ko\0", b"initrd-id\0"] {
            assert!(data.windows(needle.len()).any(|w| w == needle), "{}", String::from_utf8_lossy(needle));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
