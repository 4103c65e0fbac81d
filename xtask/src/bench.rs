//! `cargo xtask bench`: boot times through the emulator beside QEMU's direct `-kernel` boot,
//! interleaved in one run, medians of N.

use crate::build::Blob;
use crate::payloads::{Payloads, MARKER};
use crate::qemu::{self, Transcript};
use crate::run::{self, RunOptions};
use crate::trampoline::EntryEl;
use anyhow::{bail, Result};
use std::time::Duration;

/// One way of booting a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// QEMU loads the Image itself and enters it without EFI.
    Direct,
    /// The kexec-style hand-off into efi-emulator.
    Emulator,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct -kernel (no EFI)",
            Mode::Emulator => "efi-emulator (kexec hand-off)",
        }
    }
}

/// What one boot measured, in seconds from QEMU's start (and the emulator's own time).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub stub: Option<f64>,
    pub marker: f64,
    /// Emulator entry to payload entry, from its own CNTPCT reading.
    pub handoff_ms: Option<f64>,
}

fn sample(t: &Transcript) -> Result<Sample> {
    let marker = t.find(MARKER).map(|(d, _)| d.as_secs_f64());
    let Some(marker) = marker else {
        bail!("no userspace marker:\n{}", t.text());
    };
    let stub = t.find("EFI stub: ").map(|(d, _)| d.as_secs_f64());
    let handoff_ms = t.find("handing off to the payload").and_then(|(_, l)| {
        let ms = l.split(": ").nth(1)?.split(" ms").next()?;
        ms.trim().parse::<f64>().ok()
    });
    Ok(Sample { stub, marker, handoff_ms })
}

fn direct(kernel: &std::path::Path, initrd: &std::path::Path, timeout: Duration) -> Result<Transcript> {
    let args: Vec<String> = [
        "-M",
        "virt",
        "-cpu",
        "max",
        "-m",
        "1G",
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-kernel",
        &kernel.display().to_string(),
        "-initrd",
        &initrd.display().to_string(),
        "-append",
        run::DEFAULT_APPEND,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    qemu::run(&args, timeout, false)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One configuration of the benchmark.
struct Config {
    kernel: String,
    mode: Mode,
    direct: Option<(std::path::PathBuf, std::path::PathBuf)>,
    emulator: Option<RunOptions>,
}

fn configs(payloads: &Payloads, timeout: Duration) -> Result<Vec<Config>> {
    let emu = |kernel: std::path::PathBuf, no_initrd: bool, append: &str| RunOptions {
        kernel: Some(kernel),
        no_initrd,
        append: append.to_string(),
        el: EntryEl::El1,
        timeout,
        ..RunOptions::default()
    };
    let mut v = Vec::new();
    for series in ["6.1", "6.12"] {
        let k = payloads.kernel(series)?.image.clone();
        v.push(Config { kernel: format!("Debian {series} Image"), mode: Mode::Direct, direct: Some((k.clone(), payloads.initramfs.clone())), emulator: None });
        v.push(Config { kernel: format!("Debian {series} Image"), mode: Mode::Emulator, direct: None, emulator: Some(emu(k, false, run::DEFAULT_APPEND)) });
    }
    for u in &payloads.ukis {
        v.push(Config { kernel: format!("UKI {}", u.name), mode: Mode::Emulator, direct: None, emulator: Some(emu(u.path.clone(), true, "")) });
    }
    for z in &payloads.zboot {
        // Beside it, the same build's plain Image booted directly.
        let image = z.image.with_file_name("Image");
        v.push(Config { kernel: format!("zboot {} (its Image)", z.series), mode: Mode::Direct, direct: Some((image, payloads.initramfs.clone())), emulator: None });
        v.push(Config {
            kernel: format!("zboot {} ({})", z.series, z.compression),
            mode: Mode::Emulator,
            direct: None,
            emulator: Some(emu(z.image.clone(), false, run::DEFAULT_APPEND)),
        });
    }
    Ok(v)
}

/// Runs the benchmark and returns the report (a Markdown table).
pub fn bench(blob: &Blob, payloads: &Payloads, runs: usize) -> Result<String> {
    let timeout = Duration::from_secs(180);
    let configs = configs(payloads, timeout)?;
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        // Interleaved: every configuration once per round, so drift hits all alike.
        for (c, out) in configs.iter().zip(samples.iter_mut()) {
            let t = match (&c.direct, &c.emulator) {
                (Some((kernel, initrd)), _) => direct(kernel, initrd, timeout)?,
                (None, Some(o)) => run::boot(o, blob, Some(payloads))?,
                (None, None) => unreachable!(),
            };
            let s = sample(&t)?;
            eprintln!("round {round}/{runs}: {:<22} {:<30} stub {:>6} marker {:6.3} s", c.kernel, c.mode.name(), s.stub.map_or("-".into(), |v| format!("{v:.3}")), s.marker);
            out.push(s);
        }
    }
    let (major, minor) = qemu::version()?;
    let mut report = format!("QEMU {major}.{minor} virt, TCG, -cpu max, -m 1G, -smp 1, EL1; medians of {runs}, interleaved; seconds from QEMU start.\n\n");
    report.push_str("| kernel | boot | EFI stub entered | userspace marker | emulator entry to handoff |\n|---|---|---:|---:|---:|\n");
    for (c, s) in configs.iter().zip(&samples) {
        let stub: Vec<f64> = s.iter().filter_map(|x| x.stub).collect();
        let handoff: Vec<f64> = s.iter().filter_map(|x| x.handoff_ms).collect();
        report.push_str(&format!(
            "| {} | {} | {} | {:.3} s | {} |\n",
            c.kernel,
            c.mode.name(),
            if stub.is_empty() { "-".into() } else { format!("{:.3} s", median(stub)) },
            median(s.iter().map(|x| x.marker).collect()),
            if handoff.is_empty() { "-".into() } else { format!("{:.1} ms", median(handoff)) },
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn medians() {
        assert_eq!(super::median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(super::median(vec![]).is_nan());
    }
}
