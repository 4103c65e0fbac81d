//! `cargo xtask build`: the bare-metal ELF, converted to the flat blob a loader copies.

use crate::cargo::Cargo;
use crate::paths;
use anyhow::{Context, Result};
use efi_emulator::abi::BlobHeader;
use efi_emulator_loader::flat::{flatten, FlatBlob};
use std::path::PathBuf;

pub const TARGET: &str = "aarch64-unknown-none";

/// The built blob.
pub struct Blob {
    pub bin: PathBuf,
    /// The same blob as an arm64 Image with a PE header (`efi-emulator.efi`), for
    /// `kexec_file_load` (`kexec -s`, `efi-kexec load -s`); sign it with `sbsign`.
    pub efi: PathBuf,
    pub elf: PathBuf,
    pub bytes: Vec<u8>,
    pub header: BlobHeader,
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub relocations: usize,
}

/// Builds the emulator for the bare-metal target and writes `efi-emulator.bin` beside its ELF.
/// What the shipped blob may weigh (320 KiB): what kexec copies, and what an embedder carries.
pub const MAX_BLOB_BYTES: u64 = 320 * 1024;

pub fn build_blob(verbose: bool) -> Result<Blob> {
    build_blob_flavour(verbose, Flavour::Shipped)
}

/// The blob users ship, or the one the QEMU tests boot: the same code plus the test hooks
/// (`/chosen/efi-emulator,debug-fault`, `debug-stale-map-key`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Shipped,
    TestHooks,
}

pub fn build_blob_flavour(verbose: bool, flavour: Flavour) -> Result<Blob> {
    let mut cargo = Cargo::new("build");
    cargo.release().package("efi-emulator").args(["--bin", "efi-emulator"]).target(TARGET);
    if flavour == Flavour::TestHooks {
        cargo.features("test-hooks");
    }
    if !verbose {
        cargo.quiet();
    }
    crate::process::run_checked(&mut cargo.command()).context("building the emulator blob (is the aarch64-unknown-none target installed? `cargo xtask setup`)")?;

    let elf_path = paths::target_dir().join(TARGET).join("release").join("efi-emulator");
    let data = std::fs::read(&elf_path).with_context(|| format!("reading {}", elf_path.display()))?;
    let FlatBlob { bytes: flat, header, text, rodata, data, relocations } = flatten(&data).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        flavour == Flavour::TestHooks || flat.len() as u64 <= MAX_BLOB_BYTES,
        "the blob is {} bytes (code {text} + read-only {rodata} + data {data}): over its {MAX_BLOB_BYTES}-byte limit (320 KiB, docs/figures.md)",
        flat.len()
    );

    let out = paths::out_dir();
    std::fs::create_dir_all(&out)?;
    let name = if flavour == Flavour::TestHooks { "efi-emulator-test-hooks" } else { "efi-emulator" };
    let bin = out.join(format!("{name}.bin"));
    std::fs::write(&bin, &flat)?;
    let efi = out.join(format!("{name}.efi"));
    std::fs::write(&efi, efi_emulator::abi::image::wrap(&flat).map_err(anyhow::Error::msg)?)?;
    let elf_copy = out.join(format!("{name}.elf"));
    std::fs::copy(&elf_path, &elf_copy)?;

    let h = paths::root().join("emulator/include/efi_emulator.h");
    let rendered = efi_emulator_loader::c_header::render();
    if std::fs::read_to_string(&h).ok().as_deref() != Some(rendered.as_str()) {
        std::fs::create_dir_all(h.parent().unwrap())?;
        std::fs::write(&h, rendered)?;
        eprintln!("updated emulator/include/efi_emulator.h");
    }

    Ok(Blob { bin, efi, elf: elf_copy, bytes: flat, header, text, rodata, data, relocations })
}

impl Blob {
    /// The size report `cargo xtask build` prints.
    pub fn report(&self) -> String {
        format!(
            "efi-emulator.bin: {} bytes (code {} + read-only {} + data {}), footprint {} bytes with .bss and boot stack, {} relocations, ABI {}\n  blob:  {}\n  image: {} ({} bytes: the blob as an arm64 Image with a PE header, for kexec_file_load)\n  elf:   {}",
            self.bytes.len(),
            self.text,
            self.rodata,
            self.data,
            self.header.mem_size,
            self.relocations,
            self.header.abi_version,
            self.bin.display(),
            self.efi.display(),
            std::fs::metadata(&self.efi).map_or(0, |m| m.len()),
            self.elf.display()
        )
    }
}

impl Blob {
    /// Loads an already built blob (the QEMU tests get it from `cargo xtask test`).
    pub fn load(bin: &std::path::Path) -> Result<Blob> {
        let bytes = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
        let header = BlobHeader::parse(&bytes).with_context(|| format!("{}", bin.display()))?;
        Ok(Blob { bin: bin.to_path_buf(), efi: bin.with_extension("efi"), elf: bin.with_extension("elf"), bytes, header, text: 0, rodata: 0, data: 0, relocations: 0 })
    }
}

/// The target of the test payloads that run under the emulator.
pub const UEFI_TARGET: &str = "aarch64-unknown-uefi";
/// The target of `efi-kexec` and `kdump-probe`: static arm64 Linux binaries.
pub const MUSL_TARGET: &str = "aarch64-unknown-linux-musl";

/// `cargo build --release -p PACKAGE --target TARGET` with `env` set; returns the artifact
/// `artifact` it leaves in the target directory.
pub fn build_release(package: &str, target: &str, env: &[(&str, &std::path::Path)], artifact: &str) -> Result<PathBuf> {
    let mut cargo = Cargo::new("build");
    cargo.quiet().release().package(package).target(target);
    for (k, v) in env {
        cargo.env(k, v);
    }
    crate::process::run_checked(&mut cargo.command()).with_context(|| format!("building {package} (is the {target} target installed? `cargo xtask setup`)"))?;
    Ok(paths::target_dir().join(target).join("release").join(artifact))
}

/// Builds the Secure Boot probe (`test-payloads/secure-boot-probe`) and returns its `.efi`.
pub fn build_secure_boot_probe() -> Result<PathBuf> {
    build_release("secure-boot-probe", UEFI_TARGET, &[], "secure-boot-probe.efi")
}

/// Builds the misbehaving test payload (`test-payloads/misbehave`) and returns its `.efi`.
pub fn build_misbehave() -> Result<PathBuf> {
    build_release("misbehave", UEFI_TARGET, &[], "misbehave.efi")
}

/// Builds the static arm64 `efi-kexec` with `blob` embedded; returns the binary.
pub fn build_efi_kexec(blob: &Blob) -> Result<PathBuf> {
    let bin = std::fs::canonicalize(&blob.bin)?;
    build_release("efi-kexec", MUSL_TARGET, &[("EFI_EMULATOR_BLOB", &bin)], "efi-kexec")
}

/// The man page and shell completions efi-kexec's build script made (in its newest `OUT_DIR`),
/// copied to `target/efi-emulator/efi-kexec/`; returns their paths.
pub fn efi_kexec_manuals() -> Result<Vec<PathBuf>> {
    let builds = paths::target_dir().join(MUSL_TARGET).join("release").join("build");
    let newest = std::fs::read_dir(&builds)?
        .flatten()
        .map(|e| e.path().join("out"))
        .filter(|out| out.join("efi-kexec.1").exists())
        .max_by_key(|out| out.join("efi-kexec.1").metadata().and_then(|m| m.modified()).ok())
        .with_context(|| format!("no efi-kexec.1 under {}: build efi-kexec first", builds.display()))?;
    let dest = paths::out_dir().join("efi-kexec");
    std::fs::create_dir_all(&dest)?;
    let mut out = Vec::new();
    for name in ["efi-kexec.1", "efi-kexec.bash", "_efi-kexec", "efi-kexec.fish"] {
        std::fs::copy(newest.join(name), dest.join(name)).with_context(|| format!("copying {name}"))?;
        out.push(dest.join(name));
    }
    Ok(out)
}

/// Builds the static arm64 `kdump-probe` (`test-payloads/kdump-probe`); returns the binary.
pub fn build_kdump_probe() -> Result<PathBuf> {
    build_release("kdump-probe", MUSL_TARGET, &[], "kdump-probe")
}
