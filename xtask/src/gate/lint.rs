//! `cargo xtask lint`: rustfmt, clippy with -D warnings for every target a crate ships for, the
//! emulator's layers, and rustdoc with -D warnings.

use crate::cargo::Cargo;
use crate::paths;
use anyhow::{Context, Result};

/// The lint gate: each check in the configuration it guards.
const LINTS: &[&[&str]] = &[
    &["fmt", "--all", "--check"],
    &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
    &["clippy", "-p", "efi-emulator", "--target", "aarch64-unknown-none", "--", "-D", "warnings"],
    &["clippy", "-p", "efi-emulator", "--target", "aarch64-unknown-none", "--features", "test-hooks", "--", "-D", "warnings"],
    &["clippy", "-p", "misbehave", "--target", "aarch64-unknown-uefi", "--", "-D", "warnings"],
    &["clippy", "-p", "secure-boot-probe", "--target", "aarch64-unknown-uefi", "--", "-D", "warnings"],
    // efi-kexec as it ships: arm64 musl, whose libc bindings differ from the host's.
    &["clippy", "-p", "efi-kexec", "--target", "aarch64-unknown-linux-musl", "--", "-D", "warnings"],
];

/// The rustdoc gate: every crate's documentation builds without a warning (broken links, links
/// to private items), the blob's arch modules included.
const DOCS: &[&[&str]] = &[&["doc", "--no-deps", "--workspace"], &["doc", "--no-deps", "-p", "efi-emulator", "--target", "aarch64-unknown-none"]];

/// `cargo xtask lint`: every check of the gate, stopping at the first that fails.
pub fn run() -> Result<()> {
    note_toolchain();
    for args in LINTS {
        eprintln!("lint: cargo {}", args.join(" "));
        crate::process::run_checked(&mut Cargo::new(args[0]).args(&args[1..]).command()).with_context(|| format!("lint gate: `cargo {}` failed", args.join(" ")))?;
    }
    eprintln!("lint: the emulator's layers (xtask/src/gate/layers.rs): no crate:: path points up, no file circle");
    crate::gate::layers::check(&paths::root().join("emulator/src")).context("lint gate: layers")?;
    eprintln!("lint: no file circle in xtask/src either");
    crate::gate::layers::check_circles(&paths::root().join("xtask/src"), "xtask").context("lint gate: xtask's files")?;
    for args in DOCS {
        eprintln!("lint: RUSTDOCFLAGS=\"-D warnings\" cargo {}", args.join(" "));
        crate::process::run_checked(&mut Cargo::new(args[0]).args(&args[1..]).env("RUSTDOCFLAGS", "-D warnings").command())
            .with_context(|| format!("lint gate: `cargo {}` failed", args.join(" ")))?;
    }
    Ok(())
}

/// The rustc release rust-toolchain.toml says this tree is tested with.
const TESTED_RUSTC: &str = "1.95.";

/// Says which rustc runs the gate, and when it is not the tested one (the stable channel moves).
fn note_toolchain() {
    let version = Cargo::new("--version").command().output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let rustc = std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())).arg("--version").output();
    let rustc = rustc.ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    if rustc.starts_with(&format!("rustc {TESTED_RUSTC}")) {
        eprintln!("lint: {rustc}, {version}");
    } else {
        eprintln!("lint: note: {rustc} ({version}); this tree is tested with rustc {TESTED_RUSTC}x (rust-toolchain.toml)");
    }
}
