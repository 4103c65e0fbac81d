//! Secure Boot through the emulator, with EDK2 itself as the oracle.
//!
//! The machine: Debian's AAVMF with its Microsoft-keys store, Secure Boot on, and EDK2's test
//! certificate added to db (virt-fw-vars), so a first kernel signed with the test key boots,
//! locks itself down and kexecs (`efi-kexec load -s`) the signed emulator Image. The same
//! store then holds the firmware variables the emulator enforces.
//!
//! The differential corpus: `secure-boot-probe` (signed with the test key) asks LoadImage about
//! each file of a cpio, under EDK2 (started from an ESP) and under the emulator (the probe and
//! the cpio as a bundle); the verdicts must be equal, file by file, and what the issue expects.

use efi_emulator::efi::pe::PeImage;
use efi_emulator::efi::secure_boot::authenticode::digest_with;
use efi_emulator::efi::secure_boot::hash::HashAlg;
use efi_emulator_loader::cpio::Cpio;
use qemu_tests::{efi_kexec, payloads, EntryEl};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xtask::harness::kexec::{self, FirstBoot};
use xtask::harness::qemu::Transcript;
use xtask::harness::secure_boot::{edk2_verdicts, probe_verdicts, Snakeoil, SNAKEOIL_CERT};
use xtask::payloads::kexec_stage::{stage_initramfs, NextBoot};

const ACCEPTED: &str = "0x0";
/// EFI_ACCESS_DENIED: what Debian's EDK2 (2022.11) LoadImage returns for every image Secure
/// Boot refuses (not EFI_SECURITY_VIOLATION, which would load it unstartable).
const REFUSED: &str = "0x800000000000000f";
const TIMEOUT: Duration = Duration::from_secs(400);

struct Setup {
    keys: Snakeoil,
    first: PathBuf,
    emulator: Vec<u8>,
}

fn setup(name: &str) -> Setup {
    let (keys, _, signed) = qemu_tests::snakeoil_and_emulator(name);
    let first = keys.dir.join("Image.signed");
    keys.sign(qemu_tests::file_kernel(), &first).unwrap();
    Setup { emulator: std::fs::read(signed).unwrap(), keys, first }
}

/// `efi-kexec load` of `image` (and `initrd` as the bundle's initrd) with the signed emulator.
fn next_boot(s: &Setup, image: &Path, initrd: Option<Vec<u8>>) -> NextBoot {
    NextBoot {
        image: image.to_path_buf(),
        initrd,
        append: Some(String::new()),
        extra: vec!["--emulator".into(), "/emulator.efi".into()],
        before_load: None,
        before_exec: None,
        files: vec![("emulator.efi".into(), s.emulator.clone())],
    }
}

/// The signed first kernel under EDK2 with `store`, kexec'ing the signed emulator through
/// kexec_file_load with `image` (and `initrd` as the bundle's initrd).
fn through_the_emulator(s: &Setup, store: &Path, image: &Path, initrd: Option<Vec<u8>>) -> Transcript {
    run_chain(s, store, &next_boot(s, image, initrd))
}

fn run_chain(s: &Setup, store: &Path, next: &NextBoot) -> Transcript {
    let initramfs = stage_initramfs(&payloads().busybox, efi_kexec(), "first", next).unwrap();
    let t = kexec::boot_first_kernel(&s.first, EntryEl::El1, FirstBoot::Edk2, &initramfs, Some(store), TIMEOUT, false).expect("starting QEMU");
    eprintln!("$ {}\n{}", t.command, t.text());
    assert!(t.contains("Kernel is locked down from EFI Secure Boot"), "the first kernel locked itself down");
    assert!(t.contains("Secure Boot: enforced (the firmware's SecureBoot is 1)"), "the emulator enforces");
    t
}

fn sha256(path: &Path) -> String {
    let file = std::fs::read(path).unwrap();
    digest_with(HashAlg::Sha256, &PeImage::parse(&file).unwrap()).unwrap().as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn verdicts_agree_with_edk2_file_by_file() {
    let s = setup("sb-corpus");
    let dir = &s.keys.dir;
    let p = payloads();
    let loaders = p.loaders().unwrap();
    let probe = xtask::build::build_secure_boot_probe().unwrap();
    let signed_probe = dir.join("probe.signed.efi");
    s.keys.sign(&probe, &signed_probe).unwrap();
    let (unknown_key, unknown_cert) = s.keys.unknown_signer().unwrap();
    let by_unknown = dir.join("probe.unknown.efi");
    Snakeoil::add_signature(&unknown_key, &unknown_cert, &probe, &by_unknown).unwrap();
    let twice = dir.join("probe.twice.efi");
    Snakeoil::add_signature(&s.keys.key, Path::new(SNAKEOIL_CERT), &by_unknown, &twice).unwrap();
    let mut tampered = std::fs::read(&loaders.shim.path).unwrap();
    let text = PeImage::parse(&tampered).unwrap().sections().find(|s| s.name() == ".text").unwrap().raw_offset as usize;
    tampered[text + 0x100] ^= 0x01;

    let read = |p: &Path| std::fs::read(p).unwrap();
    let corpus: Vec<(&str, Vec<u8>, &str)> = vec![
        ("shim-signed-by-microsoft", read(&loaders.shim.path), ACCEPTED),
        ("grub-signed-by-debian", read(&loaders.grub.signed), REFUSED),
        ("linux-6.1-signed-by-debian", read(&p.kernel("6.1").unwrap().image), REFUSED),
        ("uki-252-unsigned", read(&p.uki("252+6.1").unwrap().path), REFUSED),
        ("shim-text-changed", tampered, REFUSED),
        ("signed-by-an-unknown-key", read(&by_unknown), REFUSED),
        ("signed-by-unknown-and-db-keys", read(&twice), ACCEPTED),
    ];
    let mut cpio = Cpio::default();
    for (name, data, _) in &corpus {
        cpio.file(name, 0o644, data);
    }
    let cpio = cpio.finish();

    // Twice: with the store as made, and with shim's hash added to dbx.
    let shim_hash = sha256(&loaders.shim.path);
    for (label, dbx) in [("db", vec![]), ("shim-in-dbx", vec![shim_hash])] {
        let mut expected: BTreeMap<String, String> = corpus.iter().map(|(n, _, v)| (n.to_string(), v.to_string())).collect();
        if !dbx.is_empty() {
            expected.insert("shim-signed-by-microsoft".into(), REFUSED.into());
        }
        let oracle_store = s.keys.microsoft_store_with_test_key(&format!("{label}-edk2.fd"), &dbx).unwrap();
        let oracle = edk2_verdicts(&oracle_store, &read(&signed_probe), &cpio, TIMEOUT).expect("starting QEMU");
        eprintln!("$ {}\n{}", oracle.command, oracle.text());
        assert!(oracle.contains("secure-boot-probe: done"), "{label}: EDK2 ran the probe");
        assert_eq!(probe_verdicts(&oracle), expected, "{label}: EDK2's verdicts");

        let store = s.keys.microsoft_store_with_test_key(&format!("{label}.fd"), &dbx).unwrap();
        let t = through_the_emulator(&s, &store, &signed_probe, Some(cpio.clone()));
        assert!(t.contains("secure-boot-probe: done"), "{label}: the emulator ran the probe");
        assert_eq!(probe_verdicts(&t), probe_verdicts(&oracle), "{label}: the emulator's verdicts are EDK2's");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The UKI unsigned, or signed and then changed: the emulator prints the image, the signer and
/// the reason, never enters it, and resets (QEMU, with -no-reboot, exits).
#[test]
fn a_refused_kernel_image_never_runs() {
    let s = setup("sb-refused");
    let uki = &payloads().uki("254+6.12").unwrap().path;
    let signed = s.keys.dir.join("uki.signed.efi");
    s.keys.sign(uki, &signed).unwrap();
    let mut bytes = std::fs::read(&signed).unwrap();
    let linux = PeImage::parse(&bytes).unwrap().sections().find(|s| s.name() == ".linux").unwrap().raw_offset as usize;
    bytes[linux + 0x1000] ^= 0x40;
    let tampered = s.keys.dir.join("uki.tampered.efi");
    std::fs::write(&tampered, bytes).unwrap();
    let store = s.keys.microsoft_store_with_test_key("refused.fd", &[]).unwrap();
    for (image, reason) in [
        (uki.clone(), "not signed, and its hash is not in db".to_string()),
        (tampered, "digest mismatch: the image is not what was signed; certificate \"O=SnakeOil\" issued by \"O=SnakeOil\"".to_string()),
    ] {
        let t = through_the_emulator(&s, &store, &image, None);
        let refusal = t.find("Secure Boot: refused MemoryMapped(").unwrap_or_else(|| panic!("{}: no refusal", image.display()));
        assert!(refusal.1.contains(&format!(": {reason} (verified in ")), "{}: {}", image.display(), refusal.1);
        assert!(t.contains("Secure Boot: the kernel image is not started; resetting"));
        let at = t.lines.iter().position(|(_, l)| l.contains("Secure Boot: refused")).unwrap();
        assert!(!t.lines[at..].iter().any(|(_, l)| l.contains("EFI stub") || l.contains("StartImage") || l.contains("Linux version")), "none of it ran");
        assert!(!t.timed_out, "the machine reset and QEMU exited");
    }
    let _ = std::fs::remove_dir_all(&s.keys.dir);
}

/// shim -> GRUB -> Linux with Secure Boot on, through the emulator: the bundle carries an ESP
/// with Debian's signed shim, GRUB and kernel. The emulator accepts shim (Microsoft's UEFI CA
/// is in db); shim verifies GRUB with Debian's certificate, GRUB the kernel through shim; the
/// kernel sees Secure Boot and locks itself down.
#[test]
fn shim_grub_linux_under_secure_boot() {
    let s = setup("sb-shim");
    let l = payloads().loaders().unwrap();
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("EFI/BOOT/BOOTAA64.EFI", std::fs::read(&l.shim.path).unwrap()),
        ("EFI/BOOT/grubaa64.efi", std::fs::read(&l.grub.signed).unwrap()),
        ("EFI/debian/grub.cfg", qemu_tests::GRUB_CFG.as_bytes().to_vec()),
    ];
    files.extend(qemu_tests::grub_payload());
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    let size = (files.iter().map(|(_, d)| d.len()).sum::<usize>() + (8 << 20)).next_multiple_of(1 << 20);
    let esp = esp_image::image_from_files(&refs, size).unwrap();
    let mut next = next_boot(&s, &l.shim.path, None);
    next.extra.extend(["--esp", "/esp.img", "--esp-path", "EFI/BOOT/BOOTAA64.EFI"].map(String::from));
    next.files.push(("esp.img".into(), esp));
    let store = s.keys.microsoft_store_with_test_key("shim.fd", &[]).unwrap();
    let t = run_chain(&s, &store, &next);
    assert!(t.contains("accepted: signed by \"CN=Microsoft Windows UEFI Driver Publisher"), "the emulator verified shim");
    qemu_tests::assert_grub_booted(&t);
    let accepted = t.lines.iter().position(|(_, l)| l.contains("Secure Boot: ") && l.contains(" accepted: ")).unwrap();
    let after = &t.lines[accepted..];
    assert!(
        after.iter().any(|(_, l)| l.contains("Secure boot enabled")) && after.iter().any(|(_, l)| l.contains("Kernel is locked down from EFI Secure Boot")),
        "Debian's kernel sees Secure Boot"
    );
    let _ = std::fs::remove_dir_all(&s.keys.dir);
}

/// UKI add-ons under Secure Boot: systemd-stub 257 asks LoadImage (so the emulator) about each
/// add-on beside the UKI on the ESP; the one signed with the test key is applied, the one signed
/// by an unknown key refused.
#[test]
fn uki_addons_are_verified_through_the_emulator() {
    let s = setup("sb-addons");
    let l = payloads().loaders().unwrap();
    let dir = &s.keys.dir;
    let uki = dir.join("uki-257.signed.efi");
    s.keys.sign(&l.uki.path, &uki).unwrap();
    let addon_stub = std::fs::read(l.systemd.sibling("addonaa64.efi.stub")).unwrap();
    let addon = |name: &str| {
        let path = dir.join(format!("{name}.addon.efi"));
        std::fs::write(&path, xtask::payloads::uki::build(&addon_stub, &[(".cmdline", format!("efi_emulator_addon={name}").as_bytes())]).unwrap()).unwrap();
        path
    };
    let good = dir.join("good.signed.efi");
    s.keys.sign(&addon("good"), &good).unwrap();
    let (unknown_key, unknown_cert) = s.keys.unknown_signer().unwrap();
    let bad = dir.join("bad.signed.efi");
    Snakeoil::add_signature(&unknown_key, &unknown_cert, &addon("bad"), &bad).unwrap();
    let read = |p: &Path| std::fs::read(p).unwrap();
    let files = [("EFI/Linux/uki-257.efi", read(&uki)), ("EFI/Linux/uki-257.efi.extra.d/good.addon.efi", read(&good)), ("EFI/Linux/uki-257.efi.extra.d/bad.addon.efi", read(&bad))];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    let size = (files.iter().map(|(_, d)| d.len()).sum::<usize>() + (8 << 20)).next_multiple_of(1 << 20);
    let mut next = next_boot(&s, &uki, None);
    next.extra.extend(["--esp", "/esp.img", "--esp-path", "EFI/Linux/uki-257.efi"].map(String::from));
    next.files.push(("esp.img".into(), esp_image::image_from_files(&refs, size).unwrap()));
    let store = s.keys.microsoft_store_with_test_key("addons.fd", &[]).unwrap();
    let t = run_chain(&s, &store, &next);
    let cmdline = qemu_tests::report(&t, "cmdline");
    assert!(cmdline.contains("efi_emulator_addon=good"), "the add-on signed with the test key applied: {cmdline}");
    assert!(!cmdline.contains("efi_emulator_addon=bad"), "the unknown signer's add-on refused: {cmdline}");
    assert!(t.contains("unknown signer: no certificate in db vouches for it; certificate \"CN=Unknown Test Signer\""), "the emulator said why");
    let _ = std::fs::remove_dir_all(dir);
}
