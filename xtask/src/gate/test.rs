//! `cargo xtask test`: the lint gate, the host tests, Miri, then set-up, build, payloads, the QEMU
//! tests and a short fuzz run, with the test counts added up.

use crate::build;
use crate::cargo::{Cargo, Toolchain};
use crate::harness::setup;
use crate::payloads;
use anyhow::{Context, Result};
use std::process::Command;

/// `cargo xtask test`: everything, in order; prints the passed and failed counts of every
/// `cargo test` it ran (and the fuzz targets) at the end.
pub fn run(host_only: bool) -> Result<()> {
    let mut total = (0, 0);
    let result = test_steps(host_only, &mut total);
    println!("xtask test: {} passed, {} failed", total.0, total.1);
    result
}

/// Runs `cargo test` with `args`, streaming its output, and adds its counts to `total`.
fn cargo_test(args: &[&str], env: &[(&str, &std::path::Path)], total: &mut (u64, u64)) -> Result<()> {
    let mut cargo = Cargo::new("test");
    cargo.args(args);
    for (k, v) in env {
        cargo.env(k, v);
    }
    cargo_test_cmd(cargo.command(), total).with_context(|| format!("cargo test {}", args.join(" ")))
}

/// Runs a test command, echoing its output and adding up its "test result" lines.
fn cargo_test_cmd(mut cmd: Command, total: &mut (u64, u64)) -> Result<()> {
    use std::io::BufRead;
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().context("starting cargo test")?;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            // "ok. 68 passed; 0 failed; 0 ignored; ..."
            let count = |label: &str| {
                rest.split(';')
                    .find_map(|part| {
                        let words: Vec<_> = part.split_whitespace().collect();
                        match words[..] {
                            [.., n, l] if l == label => n.parse::<u64>().ok(),
                            _ => None,
                        }
                    })
                    .unwrap_or(0)
            };
            total.0 += count("passed");
            total.1 += count("failed");
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "failed: {status}");
    Ok(())
}

/// Miri over the host tests of the code that does pointer arithmetic on memory it manages: the
/// pool, the handle database, the page-table builder, and the boot-time cell. Needs the nightly
/// toolchain; its miri and rust-src components are added here.
fn miri(total: &mut (u64, u64)) -> Result<()> {
    let components = nightly() && Command::new("rustup").args(["+nightly", "component", "add", "miri", "rust-src"]).status().is_ok_and(|s| s.success());
    if !components {
        eprintln!("miri: skipped: no nightly toolchain with miri and rust-src (`rustup +nightly component add miri rust-src`)");
        return Ok(());
    }
    for filter in ["efi::pool", "efi::handles", "page_table", "cell"] {
        // The rustup proxy, not $CARGO: `+nightly` picks the toolchain.
        let mut cmd = Cargo::new("miri")
            .toolchain(Toolchain::Nightly)
            .arg("test")
            .package("efi-emulator")
            .args(["--lib", "--", filter])
            // Memory is handed out as physical addresses (u64), as on the machine:
            // integer-to-pointer casts are the design, so Miri checks them with permissive
            // provenance.
            .env("MIRIFLAGS", "-Zmiri-permissive-provenance")
            .command();
        cmd.stdin(std::process::Stdio::null());
        cargo_test_cmd(cmd, total).with_context(|| format!("miri: {filter}"))?;
    }
    Ok(())
}

/// Whether rustup has a nightly toolchain (Miri and cargo-fuzz need one); says which it is.
fn nightly() -> bool {
    let out = Cargo::new("--version").toolchain(Toolchain::Nightly).caller_dir().command().output();
    match out {
        Ok(o) if o.status.success() => {
            eprintln!("nightly: {} (rust-toolchain.toml names the one tested)", String::from_utf8_lossy(&o.stdout).trim());
            true
        }
        _ => false,
    }
}

fn test_steps(host_only: bool, total: &mut (u64, u64)) -> Result<()> {
    eprintln!("== lint gate");
    crate::gate::lint::run()?;
    eprintln!("== host tests");
    cargo_test(&["--workspace", "--exclude", "qemu-tests"], &[], total).context("host tests")?;
    eprintln!("== miri");
    miri(total)?;
    if host_only {
        return Ok(());
    }
    eprintln!("== setup");
    setup::setup()?;
    eprintln!("== build");
    let shipped = build::build_blob(false)?;
    eprintln!("{}", shipped.report());
    let blob = build::build_blob_flavour(false, build::Flavour::TestHooks)?;
    eprintln!("test blob (with the test hooks): {} bytes, {} more than the shipped one", blob.bytes.len(), blob.bytes.len() as i64 - shipped.bytes.len() as i64);
    let efi_kexec = build::build_efi_kexec(&blob)?;
    eprintln!("efi-kexec: {}", efi_kexec.display());
    eprintln!("== payloads");
    payloads::ensure_all()?;
    eprintln!("== QEMU tests");
    cargo_test(&["-p", "qemu-tests"], &[("EFI_EMULATOR_BLOB", &blob.bin), ("EFI_KEXEC", &efi_kexec)], total).context("QEMU tests")?;
    eprintln!("== fuzz (a short bound per target; `cargo xtask fuzz --seconds N` for longer)");
    if nightly() {
        let payloads = payloads::ensure()?;
        for (target, execs) in crate::gate::fuzz::fuzz(&payloads, 10, None)? {
            println!("fuzz {target}: {execs} executions, no crash");
            total.0 += 1;
        }
    } else {
        eprintln!("fuzz: skipped: no nightly toolchain (cargo-fuzz needs one)");
    }
    Ok(())
}
