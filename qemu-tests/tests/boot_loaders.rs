//! Real boot loaders from an EFI system partition the loader hands over: systemd-boot (the
//! bookworm-backports 254 build) finds its `loader.conf` and the UKIs in `EFI/Linux` through
//! SimpleFileSystem on the image's DeviceHandle, loads the default entry with LoadImage of a
//! File() path, and the UKI boots to the userspace marker, at EL1 and EL2.

use qemu_tests::{boot, options, payloads, EntryEl};
use xtask::qemu::Transcript;
use xtask::run::verdict;

fn report(t: &Transcript, key: &str) -> String {
    let prefix = format!("efi-emulator-test: {key}: ");
    t.lines.iter().find_map(|(_, l)| l.strip_prefix(&prefix).map(str::to_string)).unwrap_or_default()
}

/// `EFI/BOOT/BOOTAA64.EFI` = systemd-boot 254, `loader/loader.conf` with `default`, and both
/// UKIs in `EFI/Linux`: the ESP as a directory.
fn systemd_boot_esp(default: &str) -> tempfile_dir::Dir {
    let p = payloads();
    let boot = p.stub("254").unwrap().sibling("systemd-bootaa64.efi");
    let dir = tempfile_dir::Dir::new("esp-systemd-boot");
    dir.file("EFI/BOOT/BOOTAA64.EFI", &std::fs::read(boot).unwrap());
    // Named by stub version only: a `+` in the name is systemd's boot counting syntax.
    for u in &p.ukis {
        dir.file(&format!("EFI/Linux/uki-{}.efi", u.name.split('+').next().unwrap()), &std::fs::read(&u.path).unwrap());
    }
    dir.file("loader/loader.conf", format!("timeout 0\ndefault {default}\n").as_bytes());
    dir
}

/// Boots `kernel` (a path in the ESP) with the ESP directory, no initrd and an empty command line.
fn boot_from_esp(esp: &tempfile_dir::Dir, kernel: &str, el: EntryEl, input: Option<xtask::qemu::Input>) -> Transcript {
    let mut o = options(el);
    o.kernel = Some(esp.path().join(kernel));
    o.esp = Some(esp.path().to_path_buf());
    o.no_initrd = true;
    o.append = String::new();
    o.timeout = std::time::Duration::from_secs(150);
    o.input = input;
    let t = boot(o);
    verdict(&t).unwrap();
    t
}

fn systemd_boot(el: EntryEl) {
    let esp = systemd_boot_esp("uki-254*");
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", el, None);
    assert!(t.contains("the kernel is \\EFI\\BOOT\\BOOTAA64.EFI on the ESP"));
    assert!(t.contains("volume \"ESP\""), "the ESP was served as a FAT volume");
    let efivars = report(&t, "efivars");
    assert!(efivars.contains("LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), "systemd-boot chose an entry: {efivars}");
    assert_eq!(report(&t, "StubInfo"), format!("systemd-stub {}", payloads().uki("254+6.12").unwrap().stub_version));
    assert_eq!(report(&t, "initrd"), payloads().uki("254+6.12").unwrap().initrd_id, "the default entry, uki-254");
    assert!(report(&t, "uname -r").starts_with("6.12"));
    // Three images: systemd-boot, the UKI (loaded from the ESP by path), the kernel in it.
    assert_eq!(t.lines.iter().filter(|(_, l)| l.contains("] image: ")).count(), 3);
    assert!(!t.contains("corrupted by EFI") && !t.contains("FIRMWARE BUG"));
}

/// A UKI add-on beside the UKI (`uki-254.efi.extra.d/debug.addon.efi`, systemd's own
/// add-on stub with a `.cmdline`): systemd-stub reads it through the ESP's file system and the
/// kernel's command line carries it.
fn uki_addon(el: EntryEl) {
    let p = payloads();
    let addon_stub = std::fs::read(p.stub("254").unwrap().sibling("addonaa64.efi.stub")).unwrap();
    let addon = xtask::uki::build(&addon_stub, &[(".cmdline", b"efi_emulator_addon=1")]).unwrap();
    let esp = systemd_boot_esp("uki-254*");
    esp.file("EFI/Linux/uki-254.efi.extra.d/debug.addon.efi", &addon);
    let t = boot_from_esp(&esp, "EFI/Linux/uki-254.efi", el, None);
    assert!(t.contains("the kernel is \\EFI\\Linux\\uki-254.efi on the ESP"));
    let cmdline = report(&t, "cmdline");
    assert!(cmdline.ends_with("efi_emulator_addon=1"), "the add-on's .cmdline: {cmdline}");
    assert!(cmdline.starts_with(&payloads().uki("254+6.12").unwrap().cmdline), "after the UKI's own: {cmdline}");
}

#[test]
fn uki_addon_from_the_esp_at_el1() {
    uki_addon(EntryEl::El1);
}

/// The menu, driven from the serial console: a 30 s timeout shows it, and arrow-down + Enter
/// picks the second entry (the 252 UKI) over the default.
#[test]
fn systemd_boot_menu_takes_keys_from_the_serial_console() {
    let esp = systemd_boot_esp("uki-254*");
    esp.file("loader/loader.conf", b"timeout 30\ndefault uki-254*\n");
    // Entries sort by version, newest first: 254 (the default, selected), then 252.
    let keys = xtask::qemu::Input { after: "handing off to the payload".into(), delay: std::time::Duration::from_secs(3), bytes: b"\x1b[B\r".to_vec() };
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", EntryEl::El1, Some(keys));
    let u = payloads().uki("252+6.1").unwrap();
    assert_eq!(report(&t, "initrd"), u.initrd_id, "the entry below the default booted");
    assert!(report(&t, "uname -r").starts_with("6.1"));
}

/// A damaged ESP image: refused with the field named, served as a raw disk only, and the kernel
/// boots all the same.
#[test]
fn a_damaged_esp_is_named_and_the_kernel_boots() {
    let dir = tempfile_dir::Dir::new("esp-damaged");
    dir.file("esp.img", &vec![0x5a; 1 << 20]);
    let mut o = options(EntryEl::El1);
    o.kernel = Some(payloads().kernel("6.12").unwrap().image.clone());
    o.esp = Some(dir.path().join("esp.img"));
    o.timeout = std::time::Duration::from_secs(150);
    let t = boot(o);
    verdict(&t).unwrap();
    assert!(t.contains("ESP: FAT image: boot sector signature = 0x5a5a, expected 0xaa55"), "the refusal names the field");
    assert!(report(&t, "uname -r").starts_with("6.12"));
}

#[test]
fn systemd_boot_254_from_the_esp_at_el1() {
    systemd_boot(EntryEl::El1);
}

#[test]
fn systemd_boot_254_from_the_esp_at_el2() {
    systemd_boot(EntryEl::El2);
}

/// A scratch directory under the target directory, removed when dropped.
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let base = std::env::var_os("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
            let path = base.join(format!("{name}-{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        pub fn file(&self, rel: &str, bytes: &[u8]) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
