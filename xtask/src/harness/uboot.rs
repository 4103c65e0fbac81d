//! U-Boot, as a bench peer: Debian's `u-boot-qemu` build for `virt` loads the kernel (and
//! initrd) from a FAT disk on virtio and starts its EFI stub with `bootefi`.
//!
//! Its environment is given, not typed: a second flash bank holds one with `bootdelay=0` and a
//! `bootcmd` that does only this (no distro scan, no network probing). `bootefi` passes the
//! initrd the way U-Boot 2023.01 can for a bare `bootefi ADDR`: as `/chosen/linux,initrd-*`.

use anyhow::{Context, Result};
use std::path::Path;

/// Debian's build for QEMU `virt` (package `u-boot-qemu`).
pub const U_BOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// `CONFIG_ENV_SIZE` of `qemu_arm64_defconfig`; the environment sits at the start of the
/// second flash bank (`CONFIG_ENV_ADDR` 0x4000000), which QEMU's `virt` makes 64 MiB.
const ENV_SIZE: usize = 0x40000;
const FLASH_BANK: usize = 64 << 20;
/// `kernel_addr_r` and `ramdisk_addr_r` of the built-in environment.
const KERNEL_ADDR: &str = "0x40400000";
const RAMDISK_ADDR: &str = "0x44000000";

/// A flash bank holding the environment `vars`: CRC32 of the data, then `name=value` strings,
/// each ended by a NUL, and an empty one; erased flash (0xff) after it.
pub fn environment_flash(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut data: Vec<u8> = vars.iter().flat_map(|(k, v)| format!("{k}={v}\0").into_bytes()).collect();
    data.push(0);
    assert!(data.len() <= ENV_SIZE - 4, "U-Boot environment too large");
    data.resize(ENV_SIZE - 4, 0);
    let mut flash = efi_emulator::efi::crc32::crc32(&data).to_le_bytes().to_vec();
    flash.extend_from_slice(&data);
    flash.resize(FLASH_BANK, 0xff);
    flash
}

/// The boot command: the initrd first (its size becomes the `/chosen` end), then the kernel,
/// loaded last because `bootefi ADDR` takes the image from the last `load`.
pub fn bootcmd(initrd: bool) -> String {
    let mut steps = vec!["virtio scan".to_string()];
    if initrd {
        steps.extend(
            [
                "load virtio 0 ${ramdisk_addr_r} initrd",
                "setexpr initrd_end ${ramdisk_addr_r} + ${filesize}",
                "load virtio 0 ${kernel_addr_r} kernel.efi",
                "fdt addr ${fdtcontroladdr}",
                "fdt resize",
                "fdt set /chosen linux,initrd-start <${ramdisk_addr_r}>",
                "fdt set /chosen linux,initrd-end <0x${initrd_end}>",
            ]
            .map(String::from),
        );
    } else {
        steps.push("load virtio 0 ${kernel_addr_r} kernel.efi".into());
    }
    steps.push("bootefi ${kernel_addr_r} ${fdtcontroladdr}".into());
    steps.join("; ")
}

/// QEMU's arguments (after the machine's) for booting `kernel` through U-Boot, with the disk
/// and the environment written into `dir`.
pub fn qemu_args(kernel: &Path, initrd: Option<&Path>, append: &str, dir: &Path) -> Result<Vec<String>> {
    let kernel_bytes = std::fs::read(kernel).with_context(|| format!("reading {}", kernel.display()))?;
    let initrd_bytes = initrd.map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).transpose()?;
    let mut files: Vec<(&str, &[u8])> = vec![("kernel.efi", &kernel_bytes)];
    if let Some(i) = &initrd_bytes {
        files.push(("initrd", i));
    }
    let size = files.iter().map(|(_, d)| d.len()).sum::<usize>() + (8 << 20);
    let disk = dir.join("u-boot-disk.img");
    std::fs::write(&disk, esp_image::image_from_files(&files, size.next_multiple_of(1 << 20))?)?;
    let cmd = bootcmd(initrd.is_some());
    // A stored environment replaces the built-in one whole: the load addresses are Debian's
    // defaults for this build, below the 1 GiB of RAM's middle.
    let mut vars = vec![("bootdelay", "0"), ("kernel_addr_r", KERNEL_ADDR), ("ramdisk_addr_r", RAMDISK_ADDR), ("bootcmd", cmd.as_str())];
    if !append.is_empty() {
        vars.push(("bootargs", append));
    }
    let env = dir.join("u-boot-env.img");
    std::fs::write(&env, environment_flash(&vars))?;
    Ok([
        "-bios".to_string(),
        U_BOOT.into(),
        "-drive".into(),
        format!("if=pflash,index=1,format=raw,file={}", env.display()),
        "-drive".into(),
        format!("if=none,format=raw,id=disk,file={}", disk.display()),
        "-device".into(),
        "virtio-blk-device,drive=disk".into(),
    ]
    .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_crc_then_nul_ended_pairs() {
        let flash = environment_flash(&[("bootdelay", "0"), ("bootcmd", "bootefi hello")]);
        assert_eq!(flash.len(), FLASH_BANK);
        let data = &flash[4..ENV_SIZE];
        assert!(data.starts_with(b"bootdelay=0\0bootcmd=bootefi hello\0\0"));
        assert_eq!(u32::from_le_bytes(flash[..4].try_into().unwrap()), efi_emulator::efi::crc32::crc32(data));
        assert_eq!(flash[ENV_SIZE], 0xff, "erased flash after it");
    }

    #[test]
    fn the_kernel_is_loaded_last() {
        let cmd = bootcmd(true);
        let last_load = cmd.rfind("load virtio").unwrap();
        assert!(cmd[last_load..].starts_with("load virtio 0 ${kernel_addr_r} kernel.efi"));
        assert!(cmd.ends_with("bootefi ${kernel_addr_r} ${fdtcontroladdr}"));
        assert!(!bootcmd(false).contains("initrd"));
    }
}
