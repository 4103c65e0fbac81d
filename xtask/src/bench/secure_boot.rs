//! The Secure Boot suite of `cargo xtask bench`: what verifying the signed 46 MB UKI costs the
//! emulator in guest time, with the CPU's SHA-256 instructions and with the portable code.

use crate::bench::stats::{reported_ms, stats};
use crate::build::Blob;
use crate::harness::qemu;
use crate::harness::run::{self, RunOptions};
use crate::harness::secure_boot::Snakeoil;
use crate::payloads::Payloads;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// What verifying a signed image costs the emulator, in guest time (`-icount shift=0`), with
/// the CPU's SHA-256 instructions and with the portable code: the 46 MB UKI, signed with EDK2's
/// test key at bench time, verified in audit mode (no firmware here: the verdict is "unknown
/// signer", after the whole digest and the signer's RSA signature). Returns the Markdown rows.
pub fn secure_boot_suite(blob: &Blob, payloads: &Payloads, runs: usize, dir: &Path) -> Result<(String, Value)> {
    let keys = Snakeoil::new(&dir.join("secure-boot"))?;
    let uki = payloads.uki("254+6.12")?;
    let signed = keys.dir.join("uki.signed.efi");
    keys.sign(&uki.path, &signed)?;
    let mb = std::fs::metadata(&signed)?.len() as f64 / 1e6;
    let mut md = String::new();
    let mut rows = Vec::new();
    for (name, generic) in [("SHA-256 instructions (`-cpu max`)", false), ("portable SHA-256 (`efi-emulator,generic-sha256`)", true)] {
        let options = RunOptions {
            kernel: Some(signed.clone()),
            no_initrd: true,
            append: String::new(),
            icount: true,
            secure_boot_audit: true,
            generic_sha256: generic,
            timeout: Duration::from_secs(300),
            ..RunOptions::default()
        };
        let mut ms = Vec::new();
        for round in 1..=runs {
            let prepared = run::prepare(&options, blob, Some(payloads))?;
            let t = qemu::run_until(&prepared.qemu_args, options.timeout, "(verified in ")?;
            let v = reported_ms(&t, "(verified in ", "(verified in ").with_context(|| format!("{name}: no verdict"))?;
            eprintln!("secure-boot {round}/{runs}: {name:<50} {v:10.3} ms");
            ms.push(v);
        }
        let (m, lo, hi) = stats(&ms).unwrap_or_default();
        md.push_str(&format!("| {name} | {m:.3} ms ({lo:.3}–{hi:.3}) | {:.3} ms |\n", m / mb));
        rows.push(json!({ "path": name, "ms": { "median": m, "min": lo, "max": hi }, "megabytes": mb }));
    }
    Ok((md, Value::Array(rows)))
}
