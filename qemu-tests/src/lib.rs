//! Shared set-up of the QEMU tests: the blob and the payloads, prepared once per test binary.
//!
//! `cargo xtask test` builds the blob and passes it in `EFI_EMULATOR_BLOB`; run directly
//! (`cargo test --workspace`), the tests build the same one themselves: the test-hooks flavour,
//! which the fault-dump and stale-map-key tests need. Payloads come from the cache (downloaded
//! when missing).

use std::sync::OnceLock;
use std::time::Duration;
use xtask::build::Blob;
use xtask::harness::qemu::Transcript;
use xtask::harness::run::{self, RunOptions};
use xtask::payloads::Payloads;

pub use xtask::harness::trampoline::EntryEl;

pub fn blob() -> &'static Blob {
    static BLOB: OnceLock<Blob> = OnceLock::new();
    BLOB.get_or_init(|| match std::env::var_os("EFI_EMULATOR_BLOB") {
        Some(path) => Blob::load(path.as_ref()).expect("EFI_EMULATOR_BLOB"),
        None => xtask::build::build_blob_flavour(false, xtask::build::Flavour::TestHooks).expect("building the blob with its test hooks"),
    })
}

pub fn payloads() -> &'static Payloads {
    static PAYLOADS: OnceLock<Payloads> = OnceLock::new();
    PAYLOADS.get_or_init(|| xtask::payloads::ensure_all().expect("payloads (run `cargo xtask payloads`)"))
}

/// The misbehaving test payload, built once.
pub fn misbehave() -> &'static std::path::PathBuf {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| xtask::build::build_misbehave().expect("building test-payloads/misbehave"))
}

/// Boots with `opts`, and prints the console when the caller's assertions fail later.
pub fn boot(opts: RunOptions) -> Transcript {
    let t = run::boot(&opts, blob(), Some(payloads())).expect("starting QEMU");
    eprintln!("$ {}\n{}\n(ended after {:.3} s, exit {:?}, timed out: {})", t.command, t.text(), t.elapsed.as_secs_f64(), t.exit, t.timed_out);
    t
}

/// What the test initramfs's `/init` printed as `efi-emulator-test: KEY: value` (empty if not).
pub fn report(t: &Transcript, key: &str) -> String {
    let prefix = format!("{}{key}: ", xtask::payloads::initramfs::REPORT_PREFIX);
    t.lines.iter().find_map(|(_, l)| l.strip_prefix(&prefix).map(str::to_string)).unwrap_or_default()
}

/// Default options with a short timeout: nothing here should take long.
pub fn options(el: EntryEl) -> RunOptions {
    RunOptions { el, timeout: Duration::from_secs(60), ..RunOptions::default() }
}

/// The static arm64 `efi-kexec` with this blob embedded: `EFI_KEXEC` from `cargo xtask test`,
/// else built here.
pub fn efi_kexec() -> &'static std::path::PathBuf {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("EFI_KEXEC") {
        Some(path) => path.into(),
        None => xtask::build::build_efi_kexec(blob()).expect("building efi-kexec"),
    })
}

/// The first kernel with the `kexec_file_load` door (`xtask::payloads::file_kernel`), built once.
pub fn file_kernel() -> &'static std::path::PathBuf {
    static IMAGE: OnceLock<std::path::PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let apt = xtask::payloads::apt::Apt::open(&xtask::paths::cache_dir()).expect("apt state");
        xtask::payloads::file_kernel::ensure(&apt).expect("building the kexec_file first kernel").image
    })
}

/// The same kernel with 64 KiB pages (`xtask::payloads::file_kernel::ensure_64k`), built once.
pub fn file_kernel_64k() -> &'static std::path::PathBuf {
    static IMAGE: OnceLock<std::path::PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let apt = xtask::payloads::apt::Apt::open(&xtask::paths::cache_dir()).expect("apt state");
        xtask::payloads::file_kernel::ensure_64k(&apt).expect("building the 64K first kernel").image
    })
}

/// Debian's arm64 kexec-tools with its libraries, unpacked once.
pub fn kexec_tools() -> &'static xtask::payloads::kexec_tools::KexecTools {
    static TOOLS: OnceLock<xtask::payloads::kexec_tools::KexecTools> = OnceLock::new();
    TOOLS.get_or_init(|| xtask::payloads::kexec_tools::ensure_kexec_tools().expect("Debian's kexec-tools"))
}

/// The test blob as the arm64 Image `kexec_file_load` takes (`efi-emulator.efi`).
pub fn emulator_image() -> Vec<u8> {
    efi_emulator::abi::image::wrap(&blob().bytes).expect("wrapping the blob")
}

/// EDK2's test key in a fresh temporary directory named for `name`, and the emulator Image
/// written there unsigned (`efi-emulator.efi`) and signed with that key
/// (`efi-emulator.signed.efi`): (keys, unsigned, signed).
pub fn snakeoil_and_emulator(name: &str) -> (xtask::harness::secure_boot::Snakeoil, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("efi-emulator-{name}-{}", std::process::id()));
    let keys = xtask::harness::secure_boot::Snakeoil::new(&dir).expect("the Secure Boot test key");
    let (unsigned, signed) = (dir.join("efi-emulator.efi"), dir.join("efi-emulator.signed.efi"));
    std::fs::write(&unsigned, emulator_image()).expect("writing the emulator Image");
    keys.sign(&unsigned, &signed).expect("signing the emulator Image");
    (keys, unsigned, signed)
}

/// `grub.cfg` of the GRUB chains: one entry, Linux 6.12 and the GRUB initrd from the ESP.
pub const GRUB_CFG: &str = "set timeout=0\nmenuentry 'Linux' {\n  echo 'grub: loading linux'\n  linux /vmlinuz console=ttyAMA0 earlycon panic=-1 efi_emulator_grub=1\n  echo 'grub: loading initrd'\n  initrd /initrd\n}\n";

/// The kernel (Debian's signed 6.12) and the GRUB initrd, as ESP paths where `grub.cfg` names
/// them.
pub fn grub_payload() -> [(&'static str, Vec<u8>); 2] {
    let p = payloads();
    [("vmlinuz", std::fs::read(&p.kernel("6.12").unwrap().image).unwrap()), ("initrd", std::fs::read(&p.loaders().unwrap().grub_initrd).unwrap())]
}

/// What every GRUB chain shows: GRUB read its config, the kernel and the initrd from the ESP, and
/// the initrd that booted is GRUB's although the loader passed one too.
pub fn assert_grub_booted(t: &Transcript) {
    assert!(t.contains("grub: loading initrd"), "GRUB read grub.cfg from the ESP");
    assert_eq!(report(t, "initrd"), xtask::payloads::loaders::GRUB_INITRD_ID, "GRUB's initrd, not the loader's");
    assert_eq!(report(t, "cmdline"), "BOOT_IMAGE=/vmlinuz console=ttyAMA0 earlycon panic=-1 efi_emulator_grub=1");
    assert!(report(t, "uname -r").starts_with("6.12"));
}
