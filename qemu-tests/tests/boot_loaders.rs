//! Real boot loaders from an EFI system partition the loader hands over, at EL1 and EL2:
//! - systemd-boot (257 from trixie, and bookworm-backports' 254) finds `loader.conf` and the UKIs
//!   in `EFI/Linux` through SimpleFileSystem on the image's DeviceHandle, loads the default entry
//!   (or the one picked with keys on the serial console) with LoadImage of a File() path;
//! - a systemd-stub 257 UKI reads its add-on's `.cmdline` from the ESP;
//! - GRUB 2.12, made here with `grub-mkimage`, reads `grub.cfg`, `linux` and `initrd` from the
//!   ESP and starts the kernel with its own initrd (not the loader's);
//! - Debian's signed shim starts Debian's signed GRUB 2.12 (Secure Boot off), which boots Linux.

use qemu_tests::{boot, options, payloads, report, EntryEl};
use xtask::harness::qemu::Transcript;
use xtask::harness::run::verdict;
use xtask::payloads::loaders::Loaders;
use xtask::payloads::uki::Uki;

fn loaders() -> &'static Loaders {
    payloads().loaders().unwrap()
}

fn images_started(t: &Transcript) -> usize {
    t.lines.iter().filter(|(_, l)| l.contains("] image: ")).count()
}

/// The UKIs of the systemd-boot ESPs: 257+6.12, 254+6.12 and 252+6.1.
fn all_ukis() -> Vec<&'static Uki> {
    let p = payloads();
    vec![&loaders().uki, p.uki("254+6.12").unwrap(), p.uki("252+6.1").unwrap()]
}

/// `EFI/BOOT/BOOTAA64.EFI` = systemd-boot `version`, `loader/loader.conf` with `default`, and
/// the UKIs in `EFI/Linux`: the ESP as a directory.
fn systemd_boot_esp(version: &str, default: &str) -> tempfile_dir::Dir {
    let boot = if version == "257" { loaders().systemd.sibling("systemd-bootaa64.efi") } else { payloads().stub(version).unwrap().sibling("systemd-bootaa64.efi") };
    let dir = tempfile_dir::Dir::new("esp-systemd-boot");
    dir.file("EFI/BOOT/BOOTAA64.EFI", &std::fs::read(boot).unwrap());
    // Named by stub version only: a `+` in the name is systemd's boot counting syntax.
    for u in all_ukis() {
        dir.file(&format!("EFI/Linux/uki-{}.efi", u.name.split('+').next().unwrap()), &std::fs::read(&u.path).unwrap());
    }
    dir.file("loader/loader.conf", format!("timeout 0\ndefault {default}\n").as_bytes());
    dir
}

/// Boots `kernel` (a path in the ESP) with the ESP directory (a GPT disk of it when `gpt`) and an
/// empty command line; with the loader's own initrd (the plain test initramfs) when
/// `loader_initrd`, else none; `input` typed on the console.
fn boot_from_esp(esp: &tempfile_dir::Dir, kernel: &str, el: EntryEl, loader_initrd: bool, input: Option<xtask::harness::qemu::Input>, gpt: bool) -> Transcript {
    let mut o = options(el);
    o.esp_gpt = gpt;
    o.kernel = Some(esp.path().join(kernel));
    o.esp = Some(esp.path().to_path_buf());
    o.no_initrd = !loader_initrd;
    o.append = String::new();
    o.timeout = std::time::Duration::from_secs(150);
    o.input = input;
    let t = boot(o);
    verdict(&t).unwrap();
    assert!(!t.contains("corrupted by EFI") && !t.contains("FIRMWARE BUG"));
    t
}

fn systemd_boot(version: &str, el: EntryEl) {
    let esp = systemd_boot_esp(version, "uki-254*");
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", el, false, None, false);
    assert!(t.contains("the kernel is \\EFI\\BOOT\\BOOTAA64.EFI on the ESP"));
    assert!(t.contains("volume \"ESP\""), "the ESP was served as a FAT volume");
    let efivars = report(&t, "efivars");
    assert!(efivars.contains("LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), "systemd-boot chose an entry: {efivars}");
    let loader_info = if version == "257" { &loaders().systemd.version } else { &payloads().stub(version).unwrap().version };
    assert!(efivars.contains("LoaderInfo-4a67b082"), "systemd-boot {loader_info} said who it is: {efivars}");
    let u = payloads().uki("254+6.12").unwrap();
    assert_eq!(report(&t, "StubInfo"), format!("systemd-stub {}", u.stub_version));
    assert_eq!(report(&t, "initrd"), u.initrd_id, "the default entry, uki-254");
    assert!(report(&t, "uname -r").starts_with("6.12"));
    // Three images: systemd-boot, the UKI (loaded from the ESP by path), the kernel in it.
    assert_eq!(images_started(&t), 3);
}

/// `efi-kexec load --esp DIR --initrd X` into systemd-boot -> a UKI with its own `.initrd`:
/// systemd-stub registers the UKI's and gave up ("Error registering initrd") on finding the
/// loader's; the loader's now steps aside when that UKI starts, and the UKI's initrd wins.
#[test]
fn systemd_boot_with_a_loader_initrd_lets_the_ukis_win() {
    let esp = systemd_boot_esp("257", "uki-254*");
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", EntryEl::El1, true, None, false);
    assert!(t.contains("the image starting is a UKI with its own .initrd: the loader's initrd is withdrawn"));
    assert!(!t.contains("Error registering initrd"));
    assert_eq!(report(&t, "initrd"), payloads().uki("254+6.12").unwrap().initrd_id, "the UKI's initrd");
}

/// `efi-kexec load --esp DIR --initrd X` into systemd-boot -> a UKI without `.initrd` (made
/// here from the 254 stub and Debian's 6.12 kernel): the loader's initrd stays registered, and
/// Linux runs it.
#[test]
fn systemd_boot_with_a_loader_initrd_into_a_uki_without_one() {
    let p = payloads();
    let esp = systemd_boot_esp("257", "uki-bare*");
    let stub = std::fs::read(&p.stub("254").unwrap().path).unwrap();
    let linux = std::fs::read(&p.kernel("6.12").unwrap().image).unwrap();
    let osrel = b"ID=efi-emulator\nVERSION_ID=bare\nPRETTY_NAME=\"a UKI without .initrd\"\n";
    let sections: [(&str, &[u8]); 3] = [(".osrel", osrel), (".cmdline", b"console=ttyAMA0 earlycon panic=-1"), (".linux", &linux)];
    esp.file("EFI/Linux/uki-bare.efi", &xtask::payloads::uki::build(&stub, &sections).unwrap());
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", EntryEl::El1, true, None, false);
    assert!(!t.contains("the loader's initrd is withdrawn") && !t.contains("Error registering initrd"));
    assert_eq!(report(&t, "initrd"), "plain", "the loader's initrd");
}

#[test]
fn systemd_boot_257_from_the_esp_at_el1() {
    systemd_boot("257", EntryEl::El1);
}

#[test]
fn systemd_boot_257_from_the_esp_at_el2() {
    systemd_boot("257", EntryEl::El2);
}

#[test]
fn systemd_boot_254_from_the_esp_at_el1() {
    systemd_boot("254", EntryEl::El1);
}

/// The menu, driven from the serial console: a 30 s timeout shows it, and arrow-down + Enter
/// picks the entry below the default (257 UKI).
#[test]
fn systemd_boot_257_menu_takes_keys_from_the_serial_console() {
    let esp = systemd_boot_esp("257", "uki-257*");
    esp.file("loader/loader.conf", b"timeout 30\ndefault uki-257*\n");
    // Entries sort by version, newest first: 257 (the default, selected), 254, 252.
    let keys = xtask::harness::qemu::Input { after: "handing off to the payload".into(), delay: std::time::Duration::from_secs(3), bytes: b"\x1b[B\r".to_vec() };
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", EntryEl::El1, false, Some(keys), false);
    let u = payloads().uki("254+6.12").unwrap();
    assert_eq!(report(&t, "initrd"), u.initrd_id, "the entry below the default booted");
    assert_eq!(report(&t, "StubInfo"), format!("systemd-stub {}", u.stub_version));
}

/// A UKI add-on beside the 257 UKI (`uki-257.efi.extra.d/debug.addon.efi`, systemd's own
/// add-on stub with a `.cmdline`): systemd-stub reads it through the ESP's file system and the
/// kernel's command line carries it.
fn uki_addon(el: EntryEl) {
    let l = loaders();
    let addon_stub = std::fs::read(l.systemd.sibling("addonaa64.efi.stub")).unwrap();
    let addon = xtask::payloads::uki::build(&addon_stub, &[(".cmdline", b"efi_emulator_addon=1")]).unwrap();
    let esp = systemd_boot_esp("257", "uki-257*");
    esp.file("EFI/Linux/uki-257.efi.extra.d/debug.addon.efi", &addon);
    let t = boot_from_esp(&esp, "EFI/Linux/uki-257.efi", el, false, None, false);
    assert!(t.contains("the kernel is \\EFI\\Linux\\uki-257.efi on the ESP"));
    assert_eq!(report(&t, "StubInfo"), format!("systemd-stub {}", l.systemd.version));
    let cmdline = report(&t, "cmdline");
    assert!(cmdline.ends_with("efi_emulator_addon=1"), "the add-on's .cmdline: {cmdline}");
    assert!(cmdline.starts_with(&l.uki.cmdline), "after the UKI's own: {cmdline}");
}

#[test]
fn uki_257_addon_from_the_esp_at_el1() {
    uki_addon(EntryEl::El1);
}

#[test]
fn uki_257_addon_from_the_esp_at_el2() {
    uki_addon(EntryEl::El2);
}

/// The kernel and the GRUB initrd at the ESP's root, where `grub.cfg` names them.
fn grub_payload(esp: &tempfile_dir::Dir) {
    for (path, data) in qemu_tests::grub_payload() {
        esp.file(path, &data);
    }
}

/// GRUB 2.12 made with `grub-mkimage -O arm64-efi` (prefix `/EFI/BOOT` on the device it was
/// loaded from) as `EFI/BOOT/BOOTAA64.EFI`; the ESP a bare FAT volume, or (`gpt`) the EFI
/// system partition of a GPT disk, where GRUB names its root `(hd0,gpt1)` from the `HD()` node.
fn grub(el: EntryEl, gpt: bool) {
    let l = loaders();
    let esp = tempfile_dir::Dir::new("esp-grub");
    let image = esp.path().join("EFI/BOOT/BOOTAA64.EFI");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    l.grub.mkimage(&image, "/EFI/BOOT", None, &["part_gpt", "part_msdos", "fat", "normal", "linux", "configfile", "echo", "test"]).unwrap();
    esp.file("EFI/BOOT/grub.cfg", qemu_tests::GRUB_CFG.as_bytes());
    grub_payload(&esp);
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", el, true, None, gpt);
    assert!(t.contains("Booting `Linux'"), "GRUB ran its menu entry");
    assert_eq!(t.contains("ESP partition: VirtualDisk("), gpt, "a partition handle only for the GPT disk");
    qemu_tests::assert_grub_booted(&t);
    // GRUB 2.12 starts Linux with LoadImage + StartImage: two images.
    assert_eq!(images_started(&t), 2);
}

#[test]
fn grub_2_12_from_the_esp_at_el1() {
    grub(EntryEl::El1, false);
}

#[test]
fn grub_2_12_from_the_esp_at_el2() {
    grub(EntryEl::El2, false);
}

#[test]
fn grub_2_12_from_a_gpt_disk_at_el1() {
    grub(EntryEl::El1, true);
}

/// Debian's signed shim as `EFI/BOOT/BOOTAA64.EFI`, Debian's signed GRUB beside it as
/// `grubaa64.efi`, and `grub.cfg` in `EFI/debian`, where the signed GRUB's prefix points.
fn shim_esp() -> tempfile_dir::Dir {
    let l = loaders();
    let esp = tempfile_dir::Dir::new("esp-shim");
    esp.file("EFI/BOOT/BOOTAA64.EFI", &std::fs::read(&l.shim.path).unwrap());
    esp.file("EFI/BOOT/grubaa64.efi", &std::fs::read(&l.grub.signed).unwrap());
    esp.file("EFI/debian/grub.cfg", qemu_tests::GRUB_CFG.as_bytes());
    grub_payload(&esp);
    esp
}

fn shim_grub(el: EntryEl) {
    let esp = shim_esp();
    let t = boot_from_esp(&esp, "EFI/BOOT/BOOTAA64.EFI", el, true, None, false);
    qemu_tests::assert_grub_booted(&t);
    // shim loads GRUB, and GRUB (seeing shim) Linux, with loaders of their own: one image.
    assert_eq!(images_started(&t), 1);
    let efivars = report(&t, "efivars");
    assert!(efivars.contains("MokListRT-605dab50-e046-4300-abb6-3dd810dd8b23"), "shim mirrored its MOK list for the OS: {efivars}");
}

#[test]
fn shim_grub_from_the_esp_at_el1() {
    shim_grub(EntryEl::El1);
}

#[test]
fn shim_grub_from_the_esp_at_el2() {
    shim_grub(EntryEl::El2);
}

/// The same chain laid out as kexec_file_load lays it: shim, the ESP and where shim lies in it
/// travel in the bundle (`esp`, `esp-path`), and shim starts from the ESP as from firmware.
#[test]
fn shim_grub_from_a_bundled_esp_through_the_kexec_file_door() {
    let esp = shim_esp();
    let mut o = options(EntryEl::El1);
    o.kexec_file = true;
    o.kernel = Some(esp.path().join("EFI/BOOT/BOOTAA64.EFI"));
    o.esp = Some(esp.path().to_path_buf());
    o.no_initrd = true;
    o.append = String::new();
    o.timeout = std::time::Duration::from_secs(150);
    let t = boot(o);
    verdict(&t).unwrap();
    assert!(t.contains("the bundle's ESP: ") && t.contains("the PE file is its \\EFI\\BOOT\\BOOTAA64.EFI"), "the ESP came in the bundle");
    assert!(t.contains("the kernel is \\EFI\\BOOT\\BOOTAA64.EFI on the ESP"));
    qemu_tests::assert_grub_booted(&t);
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
