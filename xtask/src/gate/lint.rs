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
    for args in LINTS {
        eprintln!("lint: cargo {}", args.join(" "));
        crate::process::run_checked(&mut Cargo::new(args[0]).args(&args[1..]).command()).with_context(|| format!("lint gate: `cargo {}` failed", args.join(" ")))?;
    }
    eprintln!("lint: the emulator's layers (xtask/src/gate/layers.rs): no crate:: path points up, no file circle");
    crate::gate::layers::check(&paths::root().join("emulator/src")).context("lint gate: layers")?;
    for args in DOCS {
        eprintln!("lint: RUSTDOCFLAGS=\"-D warnings\" cargo {}", args.join(" "));
        crate::process::run_checked(&mut Cargo::new(args[0]).args(&args[1..]).env("RUSTDOCFLAGS", "-D warnings").command())
            .with_context(|| format!("lint gate: `cargo {}` failed", args.join(" ")))?;
    }
    Ok(())
}
