//! The test initramfs: busybox and an `/init` that reports what the kernel got (command line,
//! EFI, initrd, efivars, memory, CPUs, KASLR) on lines the tests read, then powers off.

use anyhow::{Context, Result};
use efi_emulator_loader::cpio::Cpio;
use std::path::Path;

/// First line `/init` prints: the boot reached userspace.
pub const MARKER: &str = "efi-emulator-test: userspace reached";
/// Prefix of every line `/init` prints.
pub const REPORT_PREFIX: &str = "efi-emulator-test: ";

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
if [ -f /virtio_blk.ko ]; then
    /bin/busybox insmod /virtio_blk.ko
    /bin/busybox mount -t devtmpfs devtmpfs /dev
    echo "{p}disk: $(/bin/busybox head -c 22 /dev/vda)"
    echo "{p}disk interrupts: $(/bin/busybox grep virtio /proc/interrupts | /bin/busybox grep -c MSI)"
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
