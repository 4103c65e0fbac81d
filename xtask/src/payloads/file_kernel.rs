//! A first kernel with the `kexec_file_load` door: Debian's arm64 kernels are built without
//! `CONFIG_KEXEC_FILE`, so the tests that run `kexec -s` (kexec-tools through
//! `kexec_file_load`), check its PE signature verification against the platform keyring
//! (firmware `db`), carry IMA's measurement list across a kexec or use the kernel as a kdump
//! crash kernel build this one from Debian's `linux-source-6.12`: tinyconfig plus `fragment()`,
//! a plain `Image` with the EFI stub (EDK2 boots it too), cross-compiled with
//! `gcc-aarch64-linux-gnu`.
//!
//! Booted by EDK2 on QEMU `virt` it runs on ACPI, and arm64 then never unflattens the device
//! tree: the IMA measurement list that `kexec_file_load` hands over in `/chosen`
//! (`linux,ima-kexec-buffer`) is not picked up by the next kernel. Booted directly (device
//! tree) it is.
//!
//! Shares the unpacked source tree with [`crate::payloads::zboot`]; the build is cached under the
//! cache's `file-kernel/build-<series>-<key>`, the key hashing the source version, the fragment
//! and the compiler's version.
//!
//! Like Debian's 6.12, it oopses in `kexec_load` on a CPU with FEAT_LPA2: run it on
//! `harness::kexec::FIRST_CPU`.

use crate::paths;
use crate::payloads::apt::Apt;
use crate::payloads::zboot::{build_key, configure, make, source_tree};
use anyhow::{ensure, Result};
use std::path::PathBuf;

/// The `linux-source` series the kernel is built from.
pub const SERIES: &str = "6.12";

/// Options added to `tinyconfig`; each must survive `olddefconfig`.
fn fragment() -> Vec<&'static str> {
    vec![
        // kexec_load and kexec_file_load. arm64's KEXEC depends on PM_SLEEP_SMP: SUSPEND gives
        // PM_SLEEP, SMP and HOTPLUG_CPU the rest (without CPU hotplug kexec-tools says "CPUs
        // are stuck in the kernel").
        "CONFIG_SMP=y",
        "CONFIG_HOTPLUG_CPU=y",
        "CONFIG_SUSPEND=y",
        "CONFIG_PM_SLEEP=y",
        "CONFIG_KEXEC=y",
        "CONFIG_KEXEC_FILE=y",
        // kdump: reserve a crash kernel region, be one (/proc/vmcore).
        "CONFIG_CRASH_DUMP=y",
        "CONFIG_PROC_VMCORE=y",
        "CONFIG_PROC_KCORE=y",
        "CONFIG_MAGIC_SYSRQ=y",
        // PE/Authenticode signatures of kexec'd Images, checked against the built-in, secondary
        // and platform (UEFI db) keyrings. MODULE_SIG is the practical way to select
        // SYSTEM_DATA_VERIFICATION, which SIGNED_PE_FILE_VERIFICATION depends on.
        "CONFIG_MODULES=y",
        "CONFIG_MODULE_SIG=y",
        "CONFIG_SIGNED_PE_FILE_VERIFICATION=y",
        "CONFIG_KEXEC_SIG=y",
        "CONFIG_KEXEC_IMAGE_VERIFY_SIG=y",
        // Lockdown under Secure Boot (LOCK_DOWN_IN_EFI_SECURE_BOOT is Debian's patch; it selects
        // SECURITY_LOCKDOWN_LSM_EARLY). SECURITY depends on MULTIUSER, which tinyconfig drops.
        "CONFIG_MULTIUSER=y",
        "CONFIG_SECURITY=y",
        "CONFIG_SECURITYFS=y",
        "CONFIG_SECURITY_LOCKDOWN_LSM=y",
        "CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT=y",
        // The platform keyring, filled from the firmware's db.
        "CONFIG_INTEGRITY=y",
        "CONFIG_INTEGRITY_SIGNATURE=y",
        "CONFIG_INTEGRITY_ASYMMETRIC_KEYS=y",
        "CONFIG_SYSTEM_BLACKLIST_KEYRING=y",
        "CONFIG_INTEGRITY_PLATFORM_KEYRING=y",
        "CONFIG_LOAD_UEFI_KEYS=y",
        // IMA's measurement list (securityfs: /sys/kernel/security/ima/), handed over to the
        // next kernel by kexec_file_load.
        "CONFIG_IMA=y",
        "CONFIG_IMA_KEXEC=y",
        // IMA selects the TPM core; TIS drives QEMU's tpm-tis-device (Debian's arm64 kernels
        // have no TCG_TIS).
        "CONFIG_TCG_TIS=y",
        // UEFI: the EFI stub (EDK2 boots the Image), runtime services, efivarfs.
        "CONFIG_EFI=y",
        "CONFIG_EFI_STUB=y",
        "CONFIG_EFIVAR_FS=y",
        // EDK2 on QEMU virt hands over ACPI and no device tree (the stub then makes an empty
        // one): without ACPI the kernel would find no devices, not even its console. ACPICA
        // cannot load QEMU's DSDT without PCI ("AE_BAD_PARAMETER, During Region
        // initialization": no PCI_Config handler), and then no CPU or console device appears.
        "CONFIG_ACPI=y",
        "CONFIG_PCI=y",
        // KASLR, as Debian's kernels have it.
        "CONFIG_RANDOMIZE_BASE=y",
        // QEMU virt: GIC, PSCI, PL011 console, PL031 RTC.
        "CONFIG_ARM_GIC=y",
        "CONFIG_ARM_GIC_V3=y",
        "CONFIG_ARM_PSCI_FW=y",
        "CONFIG_TTY=y",
        "CONFIG_PRINTK=y",
        "CONFIG_SERIAL_AMBA_PL011=y",
        "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y",
        "CONFIG_RTC_CLASS=y",
        "CONFIG_RTC_DRV_PL031=y",
        // A busybox initramfs, and kexec-tools in it (`-s` needs memfd_create: SHMEM, TMPFS).
        "CONFIG_BLK_DEV_INITRD=y",
        "CONFIG_DEVTMPFS=y",
        "CONFIG_DEVTMPFS_MOUNT=y",
        "CONFIG_PROC_FS=y",
        "CONFIG_SYSFS=y",
        "CONFIG_SHMEM=y",
        "CONFIG_TMPFS=y",
        "CONFIG_BINFMT_ELF=y",
        "CONFIG_BINFMT_SCRIPT=y",
    ]
}

/// The built kernel.
#[derive(Clone, Debug)]
pub struct FileKernel {
    /// The `linux-source-6.12` package version.
    pub source_version: String,
    /// `arch/arm64/boot/Image`: a raw arm64 Image that is also a PE file (the EFI stub).
    pub image: PathBuf,
}

/// Builds (once per source version, fragment and compiler) the kernel; minutes the first time.
pub fn ensure(apt: &Apt) -> Result<FileKernel> {
    build(apt, "", &[])
}

/// The same kernel with 64 KiB pages (RHEL's `kernel-64k`, Ubuntu's `-64k`): a first kernel
/// whose pages are not the emulator's, and a payload that maps its runtime services with them
/// (and reads the time through them: rtc-efi).
pub fn ensure_64k(apt: &Apt) -> Result<FileKernel> {
    build(apt, "-64k", &["CONFIG_ARM64_64K_PAGES=y", "CONFIG_RTC_DRV_EFI=y"])
}

fn build(apt: &Apt, flavour: &str, extra: &[&'static str]) -> Result<FileKernel> {
    let (src, version) = source_tree(apt, SERIES)?;
    let fragment = [fragment(), extra.to_vec()].concat();
    let key = build_key(&version, &fragment)?;
    let out = paths::cache_dir().join("file-kernel").join(format!("build-{SERIES}{flavour}-{key}"));
    let image = out.join("arch/arm64/boot/Image");
    if image.exists() {
        return Ok(FileKernel { source_version: version, image });
    }
    std::fs::create_dir_all(&out)?;
    let label = format!("file-kernel {SERIES}{flavour}");
    eprintln!("{label}: building a kexec_file_load kernel from linux-source-{SERIES} {version} (minutes, once)");
    configure(&src, &out, &fragment, &label)?;
    make(&src, &out, &["Image"], &label)?;
    ensure!(image.exists(), "{label}: no arch/arm64/boot/Image after the build");
    Ok(FileKernel { source_version: version, image })
}

#[cfg(test)]
mod tests {
    use super::fragment;

    #[test]
    fn fragment_opens_the_kexec_file_door() {
        let f = fragment();
        for line in [
            "CONFIG_KEXEC_FILE=y",
            "CONFIG_KEXEC_SIG=y",
            "CONFIG_KEXEC_IMAGE_VERIFY_SIG=y",
            "CONFIG_SIGNED_PE_FILE_VERIFICATION=y",
            "CONFIG_INTEGRITY_PLATFORM_KEYRING=y",
            "CONFIG_LOAD_UEFI_KEYS=y",
            "CONFIG_IMA_KEXEC=y",
            // IMA selects the TPM core; TIS drives QEMU's tpm-tis-device (Debian's arm64 kernels
            // have no TCG_TIS).
            "CONFIG_TCG_TIS=y",
            "CONFIG_EFI_STUB=y",
            "CONFIG_HOTPLUG_CPU=y",
            "CONFIG_TMPFS=y",
            "CONFIG_CRASH_DUMP=y",
            "CONFIG_PROC_VMCORE=y",
        ] {
            assert!(f.contains(&line), "{line}");
        }
        // A plain Image: zboot would hide the arm64 Image header kexec_file_load wants.
        assert!(!f.iter().any(|l| l.starts_with("CONFIG_EFI_ZBOOT")));
        let mut names: Vec<_> = f.iter().map(|l| l.split('=').next().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), f.len(), "an option is listed twice");
        assert!(f.iter().all(|l| l.starts_with("CONFIG_") && l.ends_with("=y")));
    }
}
