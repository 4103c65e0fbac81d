//! Where things live: the workspace, its build outputs, and the cache outside the repo.

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// Build products of xtask: the flat blob, its ELF, the trampoline, per-run files.
pub fn out_dir() -> PathBuf {
    target_dir().join("efi-emulator")
}

/// The download and payload cache: `$XDG_CACHE_HOME/efi-emulator` (or `~/.cache/efi-emulator`),
/// overridable with `EFI_EMULATOR_CACHE`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EFI_EMULATOR_CACHE") {
        return PathBuf::from(dir);
    }
    let base =
        std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"))).unwrap_or_else(std::env::temp_dir);
    base.join("efi-emulator")
}
