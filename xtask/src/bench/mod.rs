//! `cargo xtask bench`: boot times of the same payloads under the emulator (printing on and
//! off), QEMU's direct `-kernel` boot, U-Boot (`bootefi`) and EDK2 (`-bios QEMU_EFI.fd
//! -kernel`), interleaved in one run, medians of N with min-max per milestone; the emulator's
//! own phases in guest time under `-icount` (and how they scale with the image and the memory
//! map); sizes beside the peers'. Writes `docs/bench.md`, `docs/bench.json` and
//! `docs/bench.svg` (a run of one suite: `docs/bench-<suite>.*`, so it leaves those alone).
//!
//! One file per suite ([`boot`], [`icount`], [`secure_boot`], [`kexec`]) and for the [`sizes`],
//! over the [`stats`](mod@stats) they share; this one runs them and writes the report.

pub mod boot;
pub mod icount;
pub mod kexec;
pub mod measured_boot;
pub mod secure_boot;
pub mod sizes;
pub mod stats;

use crate::bench::boot::{svg, MILESTONES};
use crate::bench::icount::Phases;
use crate::bench::stats::{cell, stats};
use crate::build::Blob;
use crate::harness::qemu;
use crate::paths;
use crate::payloads::Payloads;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Which parts to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suites {
    pub boot: bool,
    pub icount: bool,
    pub kexec: bool,
    pub secure_boot: bool,
    pub measured_boot: bool,
}

/// The host, for the report's header: QEMU version and CPU model.
fn host_line(runs: usize) -> Result<String> {
    let (major, minor) = qemu::version()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(": ").nth(1)).map(str::to_string));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let date = crate::process::output_checked(std::process::Command::new("date").args(["-u", "+%Y-%m-%d"])).map(|d| d.trim().to_string()).unwrap_or_default();
    Ok(format!(
        "{date}, QEMU {major}.{minor} (TCG) on {} ({cores} cores); `virt`, `-cpu max`, 1 GiB, one CPU, EL1; medians of {runs} (min–max), interleaved",
        cpu.unwrap_or_else(|| "an unknown CPU".into())
    ))
}

/// Runs the chosen suites, writes `<stem>.{md,json,svg}` into `out`, and returns the
/// Markdown report.
pub fn bench(blob: &Blob, payloads: &Payloads, runs: usize, suites: Suites, efi_kexec: Option<&Path>, out_dir: &Path, stem: &str) -> Result<String> {
    std::fs::create_dir_all(out_dir)?;
    let out = |ext: &str| out_dir.join(format!("{stem}.{ext}"));
    let dir = tempdir()?;
    let host = host_line(runs)?;
    let mut md = format!("# `cargo xtask bench`\n\n{host}; seconds from QEMU's start.\n\n");
    let mut js = json!({ "host": host, "runs": runs });
    if suites.boot {
        let (configs, samples) = boot::boot_suite(blob, payloads, runs, &dir)?;
        md.push_str("## Boot milestones\n\n| kernel | boot | ");
        md.push_str(&MILESTONES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" | "));
        md.push_str(" |\n|---|---|");
        md.push_str(&"---:|".repeat(MILESTONES.len()));
        md.push('\n');
        let mut rows = Vec::new();
        let mut jrows = Vec::new();
        for (c, s) in configs.iter().zip(&samples) {
            let column = |i: usize| s.iter().filter_map(|x| x.at[i]).collect::<Vec<_>>();
            let cells: Vec<String> = (0..MILESTONES.len()).map(|i| cell(&column(i), runs)).collect();
            md.push_str(&format!("| {} | {} | {} |\n", c.kernel, c.mode.name(), cells.join(" | ")));
            let medians: [Option<f64>; 6] = std::array::from_fn(|i| stats(&column(i)).map(|s| s.0));
            rows.push((format!("{} — {}", c.kernel, c.mode.name()), medians));
            let milestones: serde_json::Map<String, Value> = MILESTONES
                .iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    ((*name).to_string(), stats(&column(i)).map_or(Value::Null, |(m, lo, hi)| json!({ "median": m, "min": lo, "max": hi, "runs": column(i).len() })))
                })
                .collect();
            jrows.push(json!({ "kernel": c.kernel, "boot": c.mode.name(), "seconds": milestones }));
        }
        js["boot"] = Value::Array(jrows);
        std::fs::write(out("svg"), svg(&format!("Boot phases, medians of {runs} (cargo xtask bench)"), &rows))?;
        md.push_str(&format!("\n![boot phases]({stem}.svg)\n\n"));
    }
    if suites.icount {
        let (configs, phases) = icount::icount_suite(blob, payloads, runs.min(3))?;
        md.push_str("## The emulator's phases in guest time (`-icount shift=0`, printing off)\n\n");
        md.push_str("Milliseconds since the emulator's first instruction, 1 ns per instruction; each run repeats them exactly (the spread shows if not). Mempool: what the emulator took for itself before the handoff.\n\n");
        md.push_str("| configuration | MMU on | boot services ready | payload entered | ExitBootServices | mempool used |\n|---|---:|---:|---:|---:|---:|\n");
        let mut jrows = Vec::new();
        for (c, p) in configs.iter().zip(&phases) {
            let col = |f: fn(&Phases) -> f64| {
                let v: Vec<f64> = p.iter().map(f).collect();
                let (m, lo, hi) = stats(&v).unwrap_or_default();
                (if hi - lo < 0.0005 { format!("{m:.3} ms") } else { format!("{m:.3} ms ({lo:.3}–{hi:.3})") }, m)
            };
            let cols = [col(|x| x.mmu_on), col(|x| x.services_ready), col(|x| x.payload_entered), col(|x| x.exit_boot_services)];
            let kib = p.iter().map(|x| x.mempool_kib).max().unwrap_or(0);
            md.push_str(&format!("| {} | {} | {} | {} | {} | {kib} KiB |\n", c.name, cols[0].0, cols[1].0, cols[2].0, cols[3].0));
            jrows.push(json!({ "configuration": c.name, "ms": { "mmu_on": cols[0].1, "services_ready": cols[1].1, "payload_entered": cols[2].1, "exit_boot_services": cols[3].1 }, "mempool_kib": kib }));
        }
        js["icount"] = Value::Array(jrows);
        md.push('\n');
    }
    let sz = sizes::sizes(blob)?;
    md.push_str("## Sizes\n\n| firmware | file | in memory |\n|---|---:|---:|\n");
    md.push_str(&format!("| efi-emulator.bin | {} B ({} KiB) | {} KiB |\n", sz.blob_file, sz.blob_file.div_ceil(1024), sz.blob_footprint / 1024));
    let peer = |n: &str, v: Option<u64>| v.map(|b| format!("| {n} | {b} B ({} KiB) | |\n", b.div_ceil(1024))).unwrap_or_default();
    md.push_str(&peer("U-Boot 2023.01 u-boot.bin", sz.u_boot));
    md.push_str(&peer("EDK2 2022.11 QEMU_EFI.fd", sz.edk2));
    md.push_str(&peer("efi-kexec (static arm64, stripped, the blob inside)", sz.efi_kexec));
    md.push_str("\nWhat costs size in the blob (symbol bytes by origin, then the largest symbols):\n\n| bytes | origin |\n|---:|---|\n");
    for (b, o) in &sz.by_origin {
        md.push_str(&format!("| {b} | `{o}` |\n"));
    }
    md.push_str("\n| bytes | symbol |\n|---:|---|\n");
    for (b, n) in &sz.top_symbols {
        md.push_str(&format!("| {b} | `{}` |\n", n.replace('|', "\\|")));
    }
    js["sizes"] = json!({
        "blob_file": sz.blob_file, "blob_footprint": sz.blob_footprint, "u_boot": sz.u_boot, "edk2": sz.edk2, "efi_kexec": sz.efi_kexec,
        "by_origin": sz.by_origin.iter().map(|(b, o)| json!({ "bytes": b, "origin": o })).collect::<Vec<_>>(),
    });
    if suites.secure_boot {
        let (rows, j) = secure_boot::secure_boot_suite(blob, payloads, runs, &dir)?;
        md.push_str("\n## Secure Boot: verifying the 46 MB UKI (`-icount shift=0`, guest time)\n\n");
        md.push_str("Authenticode digest of the whole file, PKCS#7 parse, the signer's RSA-2048 signature; medians of the runs (min–max).\n\n| SHA-256 | verified in | per MB |\n|---|---:|---:|\n");
        md.push_str(&rows);
        js["secure_boot"] = j;
    }
    if suites.measured_boot {
        let (rows, j) = measured_boot::measured_boot_suite(blob, payloads, runs)?;
        md.push_str("\n## Measured boot: measuring the 46 MB UKI into PCR 4 (`-icount shift=0`, guest time)\n\n");
        md.push_str("Its Authenticode digest in every active bank of swtpm (behind QEMU's tpm-tis-device) and the TPM's PCR_Extend; medians of the runs (min–max).\n\n| active banks | measured in | per MB |\n|---|---:|---:|\n");
        md.push_str(&rows);
        js["measured_boot"] = j;
    }
    if let (true, Some(k)) = (suites.kexec, efi_kexec) {
        md.push_str("\n## Real kexec (`kexec -e` to the marker)\n\n");
        md.push_str(&kexec::bench_kexec(k, &blob.bin, payloads, runs)?);
    }
    std::fs::write(out("md"), &md)?;
    std::fs::write(out("json"), serde_json::to_string_pretty(&js)? + "\n")?;
    Ok(md)
}

fn tempdir() -> Result<PathBuf> {
    let dir = paths::out_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
