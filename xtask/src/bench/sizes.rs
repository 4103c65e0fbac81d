//! The sizes `cargo xtask bench` reports: the blob's beside U-Boot's and EDK2's, and what costs
//! size in the blob (its ELF symbols by origin, the largest ones).

use crate::bench::boot::QEMU_EFI;
use crate::build::Blob;
use crate::harness::uboot;
use anyhow::{Context, Result};

/// Sizes beside the peers', and what costs size in the blob.
pub struct Sizes {
    pub blob_file: u64,
    pub blob_footprint: u64,
    pub u_boot: Option<u64>,
    pub edk2: Option<u64>,
    /// The static arm64 `efi-kexec` (stripped, the blob inside).
    pub efi_kexec: Option<u64>,
    /// The largest symbols: (size, name).
    pub top_symbols: Vec<(u64, String)>,
    /// Code bytes per crate (or per top-level module of the emulator).
    pub by_origin: Vec<(u64, String)>,
}

pub fn sizes(blob: &Blob) -> Result<Sizes> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let elf = std::fs::read(&blob.elf).with_context(|| format!("reading {}", blob.elf.display()))?;
    let file = object::File::parse(&*elf).context("parsing the blob's ELF")?;
    let mut symbols: Vec<(u64, String)> = file
        .symbols()
        .filter(|s| s.size() > 0 && matches!(s.kind(), SymbolKind::Text | SymbolKind::Data))
        .filter_map(|s| Some((s.size(), format!("{:#}", rustc_demangle::demangle(s.name().ok()?)))))
        .collect();
    symbols.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    symbols.dedup();
    let mut origins: std::collections::BTreeMap<String, u64> = Default::default();
    for (size, name) in &symbols {
        *origins.entry(origin(name)).or_default() += size;
    }
    let mut by_origin: Vec<(u64, String)> = origins.into_iter().map(|(k, v)| (v, k)).collect();
    by_origin.sort_by_key(|b| std::cmp::Reverse(b.0));
    let len = |p: &str| std::fs::metadata(p).ok().map(|m| m.len());
    Ok(Sizes {
        blob_file: blob.bytes.len() as u64,
        blob_footprint: blob.header.mem_size,
        u_boot: len(uboot::U_BOOT),
        edk2: len(QEMU_EFI),
        efi_kexec: crate::build::build_efi_kexec(blob).ok().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()),
        top_symbols: symbols.into_iter().take(15).collect(),
        by_origin: by_origin.into_iter().take(15).collect(),
    })
}

/// Where a symbol comes from: `efi_emulator::services` (the services as one), `efi_emulator::efi::pe`
/// (two levels into the rest of the emulator),
/// a dependency crate, or the compiler's (`core`, `alloc`, `compiler_builtins`).
pub fn origin(symbol: &str) -> String {
    let s = symbol.trim_start_matches('<');
    let path: Vec<&str> = s.split("::").take_while(|p| !p.contains(' ') && !p.contains('<')).collect();
    match path.as_slice() {
        ["efi_emulator", "services", ..] => "efi_emulator::services".to_string(),
        ["efi_emulator", a, b, ..] => format!("efi_emulator::{a}::{b}"),
        [krate, ..] if !krate.is_empty() && path.len() > 1 => krate.to_string(),
        [entry] if entry.starts_with("efi_emulator_") => "efi_emulator entry points (the boot flow, inlined)".to_string(),
        _ => "(other symbols)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_grouped_by_where_they_come_from() {
        assert_eq!(origin("efi_emulator::services::image::load"), "efi_emulator::services");
        assert_eq!(origin("<core::fmt::Formatter>::pad"), "core");
        assert_eq!(origin("compiler_builtins::mem::memmove"), "compiler_builtins");
        assert_eq!(origin("efi_emulator_main"), "efi_emulator entry points (the boot flow, inlined)");
        assert_eq!(origin("memcpy"), "(other symbols)");
    }
}
