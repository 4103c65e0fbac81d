//! `cargo xtask setup`: the host tools the runs and tests need, installed when missing.
//!
//! - QEMU >= 8 (`qemu-system-aarch64`), from bookworm-backports when the distribution's is older;
//! - the `aarch64-unknown-none` Rust target (the blob), `aarch64-unknown-uefi` (test payloads) and
//!   `aarch64-unknown-linux-musl` (`efi-kexec`);
//! - `dpkg-deb`, the Debian archive keyring and a C compiler (the C header check);
//! - `gcc-aarch64-linux-gnu`, make, bison, flex, bc and xz (the zboot kernel builds), openssl and
//!   libssl-dev (the kexec_file_load first kernel, which signs);
//! - the shared libraries of `grub-mkimage` (GRUB's image builder, unpacked from Debian's amd64
//!   `grub-common`): libdevmapper and liblzma;
//! - `qemu-efi-aarch64` (EDK2, the firmware of the UEFI-booted first kernel in the kexec tests, and
//!   its Secure Boot test key) and `sbsigntool` (signs for it);
//! - `swtpm` and `swtpm-tools` (the TPM 2.0 of the measured-boot tests and bench, and its
//!   manufacturing with chosen PCR banks);
//! - `virt-fw-vars` from PyPI's `virt-firmware` (edits EDK2 variable stores: the Secure Boot
//!   tests' db and dbx), pinned.

use crate::harness::qemu;
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use std::process::Command;

const MIN_QEMU: (u32, u32) = (8, 0);

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release").unwrap_or_default()
}

fn os_field(name: &str) -> Option<String> {
    os_release().lines().find_map(|l| l.strip_prefix(&format!("{name}=")).map(|v| v.trim_matches('"').to_string()))
}

/// The version of PyPI's virt-firmware the Secure Boot tests were written against.
const VIRT_FIRMWARE: &str = "virt-firmware==26.10";

fn install_virt_firmware() -> Result<()> {
    eprintln!("setup: installing {VIRT_FIRMWARE} (virt-fw-vars) with pip");
    let pip = |extra: &[&str]| Command::new("python3").args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(extra).arg(VIRT_FIRMWARE).output();
    let first = pip(&[]).context("running python3 -m pip (install python3-pip)")?;
    if first.status.success() {
        return Ok(());
    }
    // Debian's own Python refuses a system-wide pip install (PEP 668) unless told.
    let stderr = String::from_utf8_lossy(&first.stderr);
    ensure!(stderr.contains("externally-managed-environment"), "pip install {VIRT_FIRMWARE} failed: {stderr}");
    let second = pip(&["--break-system-packages"])?;
    ensure!(second.status.success(), "pip install {VIRT_FIRMWARE} failed: {}", String::from_utf8_lossy(&second.stderr));
    Ok(())
}

fn is_root() -> bool {
    crate::process::output_checked(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0")
}

fn apt_get(args: &[&str]) -> Result<()> {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
    crate::process::run_checked(&mut cmd)
}

fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success())
}

pub fn setup() -> Result<()> {
    rust_target()?;
    let debian = os_field("ID").as_deref() == Some("debian") || os_field("ID_LIKE").is_some_and(|l| l.contains("debian"));
    if !debian {
        let qemu_ok = qemu::version().is_ok_and(|v| v >= MIN_QEMU);
        ensure!(
            qemu_ok && have("dpkg-deb") && have("apt-get"),
            "this host is not Debian-like ({}): install qemu-system-aarch64 >= 8 yourself; the payloads are Debian packages and need apt-get and dpkg-deb",
            os_field("PRETTY_NAME").unwrap_or_else(|| "unknown OS".into())
        );
        return Ok(());
    }
    let mut packages: Vec<&str> = Vec::new();
    if !have("dpkg-deb") {
        packages.push("dpkg");
    }
    if !Path::new(crate::payloads::apt::KEYRING).exists() {
        packages.push("debian-archive-keyring");
    }
    if !have("cc") {
        packages.push("gcc");
    }
    // The zboot kernels and the kexec_file_load first kernel are cross-built from Debian's
    // kernel sources; the latter signs (MODULE_SIG) and so generates a key with openssl and
    // builds the host tools extract-cert and sign-file against libcrypto.
    for (tool, package) in
        [("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"), ("make", "make"), ("bison", "bison"), ("flex", "flex"), ("bc", "bc"), ("xz", "xz-utils"), ("openssl", "openssl")]
    {
        if !have(tool) {
            packages.push(package);
        }
    }
    if !Path::new("/usr/include/openssl/evp.h").exists() {
        packages.push("libssl-dev");
    }
    // The shared libraries of GRUB's grub-mkimage (amd64, unpacked from grub-common).
    for (lib, package) in [("libdevmapper.so.1.02.1", "libdevmapper1.02.1"), ("liblzma.so.5", "liblzma5")] {
        if !Path::new("/lib/x86_64-linux-gnu").join(lib).exists() && !Path::new("/usr/lib/x86_64-linux-gnu").join(lib).exists() {
            packages.push(package);
        }
    }
    // EDK2 boots the first kernel of the UEFI kexec tests; sbsign signs for its Secure Boot.
    if !Path::new(crate::harness::kexec::AAVMF_CODE).exists() || !Path::new(crate::harness::secure_boot::SNAKEOIL_KEY).exists() {
        packages.push("qemu-efi-aarch64");
    }
    if !have("sbsign") {
        packages.push("sbsigntool");
    }
    // The measured-boot tests' TPM (QEMU's tpm-tis-device talks to it).
    if !have("swtpm") {
        packages.push("swtpm");
    }
    if !have("swtpm_setup") {
        packages.push("swtpm-tools");
    }
    // U-Boot is a peer in `cargo xtask bench`.
    if !Path::new(crate::harness::uboot::U_BOOT).exists() {
        packages.push("u-boot-qemu");
    }
    if !have("virt-fw-vars") {
        install_virt_firmware()?;
    }
    let qemu_ok = qemu::version().is_ok_and(|v| v >= MIN_QEMU);
    if packages.is_empty() && qemu_ok {
        let (major, minor) = qemu::version()?;
        eprintln!("setup: QEMU {major}.{minor}, aarch64-unknown-none, dpkg-deb, cc and the aarch64 cross toolchain are present");
        return Ok(());
    }
    apt_get(&["-q", "update"])?;
    if !packages.is_empty() {
        apt_get(&[&["-y", "-q", "install"][..], &packages].concat())?;
    }
    if !qemu_ok {
        install_qemu()?;
    }
    let (major, minor) = qemu::version()?;
    ensure!((major, minor) >= MIN_QEMU, "QEMU {major}.{minor} is installed, but {}.{} or newer is needed", MIN_QEMU.0, MIN_QEMU.1);
    eprintln!("setup: QEMU {major}.{minor} ready");
    Ok(())
}

/// The distribution's QEMU when it is new enough, otherwise the one from `<codename>-backports`.
fn install_qemu() -> Result<()> {
    let candidate = crate::process::output_checked(Command::new("apt-cache").args(["policy", "qemu-system-arm"]))?;
    let version = candidate.lines().find_map(|l| l.trim().strip_prefix("Candidate:")).map(str::trim).unwrap_or("");
    let major: u32 = version.split(':').next_back().unwrap_or("").split('.').next().unwrap_or("0").parse().unwrap_or(0);
    if major >= MIN_QEMU.0 {
        return apt_get(&["-y", "-q", "install", "qemu-system-arm"]);
    }
    let codename = os_field("VERSION_CODENAME").context("no VERSION_CODENAME in /etc/os-release")?;
    let backports = format!("{codename}-backports");
    let listed =
        std::fs::read_dir("/etc/apt/sources.list.d").map(|d| d.flatten().any(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(&backports))).unwrap_or(false)
            || std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default().contains(&backports);
    if !listed {
        let mirror = crate::payloads::apt::host_mirror()?;
        let source = format!("Types: deb\nURIs: {mirror}\nSuites: {backports}\nComponents: main\nSigned-By: {}\n", crate::payloads::apt::KEYRING);
        let path = "/etc/apt/sources.list.d/efi-emulator-backports.sources";
        eprintln!("setup: adding {backports} to apt ({path}) for a QEMU >= {}", MIN_QEMU.0);
        if is_root() {
            std::fs::write(path, source)?;
        } else {
            bail!("QEMU {version} is too old and {backports} is not configured: as root, write {path} with:\n{source}");
        }
        apt_get(&["-q", "update"])?;
    }
    apt_get(&["-y", "-q", "install", "-t", &backports, "qemu-system-arm"])
}

fn rust_target() -> Result<()> {
    let installed = crate::process::output_checked(Command::new("rustup").args(["target", "list", "--installed"]));
    for target in [crate::build::TARGET, crate::build::UEFI_TARGET, crate::build::MUSL_TARGET] {
        match &installed {
            Ok(list) if list.lines().any(|l| l.trim() == target) => {}
            Ok(_) => crate::process::run_checked(Command::new("rustup").args(["target", "add", target]))?,
            Err(_) => eprintln!("setup: no rustup; make sure the {target} target is installed"),
        }
    }
    Ok(())
}
