//! What a distribution packages: the version names what is inside.

use std::process::Command;

/// `--version` names the commit and the embedded blob's ABI and size, so a bug report says which
/// emulator a machine ran.
#[test]
fn the_long_version_names_the_commit_and_the_blob() {
    let out = Command::new(env!("CARGO_BIN_EXE_efi-kexec")).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.starts_with(&format!("efi-kexec {} (commit ", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains(&format!("; emulator blob ABI {}, ", efi_emulator::abi::ABI_VERSION)) && text.trim_end().ends_with(" B)"), "{text}");
}
