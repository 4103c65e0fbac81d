//! The measured-boot suite of `cargo xtask bench`: what measuring the 46 MB UKI into PCR 4
//! costs the emulator in guest time (its Authenticode digest in every active bank, and the
//! TPM's extend), with swtpm's banks as a machine might have them: SHA-256 alone (most machines
//! now) and all four (swtpm's default).

use crate::bench::stats::{reported_ms, stats};
use crate::build::Blob;
use crate::harness::qemu;
use crate::harness::run::{self, RunOptions};
use crate::harness::tpm::Swtpm;
use crate::payloads::Payloads;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// The line the emulator prints once the UKI is measured.
const MEASURED: &str = "measured into PCR 4";

pub fn measured_boot_suite(blob: &Blob, payloads: &Payloads, runs: usize) -> Result<(String, Value)> {
    let uki = payloads.uki("254+6.12")?;
    let mb = std::fs::metadata(&uki.path)?.len() as f64 / 1e6;
    let mut md = String::new();
    let mut rows = Vec::new();
    for (name, banks) in [("SHA-256", "sha256"), ("SHA-1, SHA-256, SHA-384, SHA-512", "sha1,sha256,sha384,sha512")] {
        let mut ms = Vec::new();
        for round in 1..=runs {
            let tpm = Swtpm::start_with_banks(Some(banks))?;
            let options = RunOptions {
                kernel: Some(uki.path.clone()),
                no_initrd: true,
                append: String::new(),
                icount: true,
                tpm: Some(tpm.socket().to_path_buf()),
                timeout: Duration::from_secs(600),
                ..RunOptions::default()
            };
            let prepared = run::prepare(&options, blob, Some(payloads))?;
            let t = qemu::run_until(&prepared.qemu_args, options.timeout, MEASURED)?;
            let v = reported_ms(&t, MEASURED, "measured in ").with_context(|| format!("{name}: the UKI was not measured"))?;
            eprintln!("measured-boot {round}/{runs}: {name:<36} {v:10.3} ms");
            ms.push(v);
        }
        let (m, lo, hi) = stats(&ms).unwrap_or_default();
        md.push_str(&format!("| {name} | {m:.3} ms ({lo:.3}–{hi:.3}) | {:.3} ms |\n", m / mb));
        rows.push(json!({ "banks": name, "ms": { "median": m, "min": lo, "max": hi }, "megabytes": mb }));
    }
    Ok((md, Value::Array(rows)))
}
