//! Embeds the emulator blob. `cargo xtask build` passes the blob it built in
//! `EFI_EMULATOR_BLOB`; a plain `cargo build -p efi-kexec` builds it here, with a nested cargo
//! in a target directory of its own (the outer build holds the lock on the usual one).
//!
//! Also: the long version (the commit, the blob's ABI and size), and the man page and shell
//! completions from the CLI definition, in `OUT_DIR` (`cargo xtask build` copies them out).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/cli.rs"]
#[allow(dead_code)]
mod cli;

const BLOB_TARGET: &str = "aarch64-unknown-none";

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("efi-emulator.bin");
    println!("cargo:rerun-if-env-changed=EFI_EMULATOR_BLOB");
    let blob = match std::env::var_os("EFI_EMULATOR_BLOB") {
        Some(path) => {
            // A relative path is taken from the workspace root, where `cargo` is usually run.
            let path = workspace_root().join(path);
            println!("cargo:rerun-if-changed={}", Path::new(&path).display());
            std::fs::read(&path).unwrap_or_else(|e| panic!("EFI_EMULATOR_BLOB={}: {e}", Path::new(&path).display()))
        }
        None => build_blob(),
    };
    let header = efi_emulator_loader::contract::abi::BlobHeader::parse(&blob).unwrap_or_else(|e| panic!("the emulator blob: {e}"));
    println!("cargo:rustc-env=EFI_KEXEC_LONG_VERSION={} (commit {}; emulator blob ABI {}, {} B)", env!("CARGO_PKG_VERSION"), commit(), header.abi_version, blob.len());
    std::fs::write(&out, blob).unwrap();
    manuals(out.parent().unwrap());
}

/// The commit this tree is at, when it is a git checkout.
fn commit() -> String {
    let root = workspace_root();
    for watched in [".git/HEAD", ".git/refs/heads"] {
        if root.join(watched).exists() {
            println!("cargo:rerun-if-changed={}", root.join(watched).display());
        }
    }
    let out = Command::new("git").arg("-C").arg(&root).args(["describe", "--always", "--dirty", "--abbrev=12"]).output();
    out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_else(|| "unknown".into())
}

/// `efi-kexec.1` and the completions for bash, zsh and fish, made from `src/cli.rs`.
fn manuals(dir: &Path) {
    println!("cargo:rerun-if-changed=src/cli.rs");
    let command = cli::command();
    let mut man = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut man).expect("rendering the man page");
    std::fs::write(dir.join("efi-kexec.1"), man).unwrap();
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), "efi-kexec", dir).expect("writing the shell completions");
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).parent().unwrap().to_path_buf()
}

fn build_blob() -> Vec<u8> {
    let root = &workspace_root();
    for watched in ["emulator/src", "emulator/Cargo.toml", "emulator/build.rs", "linker.ld", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")).join("efi-kexec-blob");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "--release", "-p", "efi-emulator", "--bin", "efi-emulator", "--target", BLOB_TARGET, "--target-dir"])
        .arg(&target_dir)
        // The outer build's flags are for its own target, not the blob's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        // Under `cargo clippy` the blob is built, not linted: the lint gate checks it itself.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR")
        .status()
        .expect("starting cargo for the emulator blob");
    assert!(status.success(), "building the emulator blob failed (is the {BLOB_TARGET} target installed? `rustup target add {BLOB_TARGET}`)");
    let elf = std::fs::read(target_dir.join(BLOB_TARGET).join("release").join("efi-emulator")).unwrap();
    efi_emulator_loader::flat::flatten(&elf).unwrap_or_else(|e| panic!("{e}")).bytes
}
