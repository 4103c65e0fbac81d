//! `cargo xtask bench`: boot times of the same payloads under the emulator (printing on and
//! off), QEMU's direct `-kernel` boot, U-Boot (`bootefi`) and EDK2 (`-bios QEMU_EFI.fd
//! -kernel`), interleaved in one run, medians of N with min-max per milestone; the emulator's
//! own phases in guest time under `-icount` (and how they scale with the image and the memory
//! map); sizes beside the peers'. Writes `docs/bench.md`, `docs/bench.json` and
//! `docs/bench.svg` (a run of one suite: `docs/bench-<suite>.*`, so it leaves those alone).

use crate::build::Blob;
use crate::harness::qemu::{self, Transcript};
use crate::harness::run::{self, RunOptions};
use crate::harness::trampoline::EntryEl;
use crate::payloads::{Payloads, MARKER};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One way of booting a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// QEMU loads the Image itself and enters it without EFI.
    Direct,
    /// The kexec-style hand-off into efi-emulator.
    Emulator,
    /// The same with `print_enabled = 0`.
    EmulatorQuiet,
    /// Debian's U-Boot for QEMU loads the kernel from a virtio disk and runs `bootefi`.
    UBoot,
    /// Debian's EDK2 for QEMU loads the kernel itself and starts its EFI stub.
    Edk2,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct -kernel (no EFI)",
            Mode::Emulator => "efi-emulator",
            Mode::EmulatorQuiet => "efi-emulator, printing off",
            Mode::UBoot => "U-Boot 2023.01 bootefi",
            Mode::Edk2 => "EDK2 2022.11",
        }
    }
}

/// Where a milestone's time comes from.
#[derive(Clone, Copy, Debug)]
pub enum Mark {
    /// The console's first byte.
    FirstByte,
    /// The first console line containing this text.
    Line(&'static str),
    /// QEMU's exit.
    Exit,
}

/// The milestones of a boot.
pub const MILESTONES: [(&str, Mark); 6] = [
    ("first console byte", Mark::FirstByte),
    ("EFI stub entered", Mark::Line("EFI stub: ")),
    ("ExitBootServices", Mark::Line("EFI stub: Exiting boot services")),
    ("first kernel message", Mark::Line("Booting Linux on physical CPU")),
    ("userspace marker", Mark::Line(MARKER)),
    ("QEMU exit", Mark::Exit),
];

/// What one boot measured: seconds from QEMU's start per milestone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub at: [Option<f64>; 6],
}

fn sample(t: &Transcript) -> Result<Sample> {
    if !t.contains(MARKER) {
        bail!("no userspace marker:\n{}", t.text());
    }
    let at = MILESTONES.map(|(_, mark)| match mark {
        Mark::FirstByte => t.first_byte.map(|d| d.as_secs_f64()),
        Mark::Line(text) => t.find(text).map(|(d, _)| d.as_secs_f64()),
        Mark::Exit => Some(t.elapsed.as_secs_f64()),
    });
    Ok(Sample { at })
}

/// Debian's EDK2 build for QEMU (package `qemu-efi-aarch64`).
pub const QEMU_EFI: &str = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";

/// QEMU's arguments for booting `kernel` directly, through EDK2 or through U-Boot.
fn peer_args(mode: Mode, kernel: &Path, initrd: Option<&Path>, append: &str, dir: &Path) -> Result<Vec<String>> {
    // The machine the emulator's boots get (`virt`, `-cpu max`, 1 GiB, one CPU).
    let mut args = run::machine_args(&RunOptions::default());
    match mode {
        Mode::UBoot => args.extend(crate::harness::uboot::qemu_args(kernel, initrd, append, dir)?),
        Mode::Direct | Mode::Edk2 => {
            if mode == Mode::Edk2 {
                args.extend(["-bios".into(), QEMU_EFI.into()]);
            }
            args.extend(["-kernel".into(), kernel.display().to_string(), "-append".into(), append.into()]);
            if let Some(i) = initrd {
                args.extend(["-initrd".into(), i.display().to_string()]);
            }
        }
        Mode::Emulator | Mode::EmulatorQuiet => unreachable!("the emulator boots through run::boot"),
    }
    Ok(args)
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

/// Median, min and max; `None` for no values.
pub fn stats(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((median(values.to_vec()), min, max))
}

/// A table cell: "median s (min–max)", and how many runs had it when not all did.
pub fn cell(values: &[f64], runs: usize) -> String {
    let Some((m, min, max)) = stats(values) else {
        return "-".into();
    };
    let mut s = format!("{m:.3} s ({min:.3}–{max:.3})");
    if values.len() < runs {
        s.push_str(&format!(" in {} of {runs} runs", values.len()));
    }
    s
}

/// One configuration of the boot suite.
struct Config {
    kernel: String,
    mode: Mode,
    how: How,
}

/// What a boot is given.
enum How {
    /// The emulator's run, through the kexec hand-off.
    Emulator(Box<RunOptions>),
    /// A peer's: the kernel, initrd and command line.
    Peer { kernel: PathBuf, initrd: Option<PathBuf>, append: String },
}

fn boot_configs(payloads: &Payloads, timeout: Duration) -> Result<Vec<Config>> {
    let emu = |kernel: &Path, no_initrd: bool, append: &str, print: bool| RunOptions {
        kernel: Some(kernel.to_path_buf()),
        no_initrd,
        append: append.to_string(),
        el: EntryEl::El1,
        timeout,
        print,
        ..RunOptions::default()
    };
    let mut v = Vec::new();
    let mut add = |kernel: &str, modes: &[Mode], file: &Path, initrd: Option<&Path>, append: &str| {
        for &mode in modes {
            let how = match mode {
                Mode::Emulator | Mode::EmulatorQuiet => How::Emulator(Box::new(emu(file, initrd.is_none(), append, mode == Mode::Emulator))),
                _ => How::Peer { kernel: file.to_path_buf(), initrd: initrd.map(Path::to_path_buf), append: append.to_string() },
            };
            v.push(Config { kernel: kernel.to_string(), mode, how });
        }
    };
    let all = [Mode::Direct, Mode::Emulator, Mode::EmulatorQuiet, Mode::UBoot, Mode::Edk2];
    let initramfs = payloads.initramfs.as_path();
    for series in ["6.1", "6.12"] {
        add(&format!("Debian {series} Image"), &all, &payloads.kernel(series)?.image, Some(initramfs), run::DEFAULT_APPEND);
    }
    // An empty command line: the UKI uses its own `.cmdline` and `.initrd`.
    let uki = payloads.uki("254+6.12")?;
    add(&format!("UKI {}", uki.name), &all[1..], &uki.path, None, "");
    if let Some(z) = payloads.zboot.iter().find(|z| z.series == "6.12") {
        // Not EDK2: with `-kernel` it boots ACPI, which this small build leaves out.
        add(&format!("zboot {} ({})", z.series, z.compression), &all[1..4], &z.image, Some(initramfs), run::DEFAULT_APPEND);
    }
    // The copy a loader that reserves only the file's bytes makes the emulator do.
    let copied = RunOptions { kernel_file_size_only: true, ..emu(&payloads.kernel("6.12")?.image, false, run::DEFAULT_APPEND, false) };
    let at = v.iter().rposition(|c| c.kernel == "Debian 6.12 Image").map_or(v.len(), |i| i + 1);
    v.insert(at, Config { kernel: "Debian 6.12 Image, file size reserved: copied".into(), mode: Mode::EmulatorQuiet, how: How::Emulator(Box::new(copied)) });
    Ok(v)
}

/// The boot suite: every configuration once per round, `runs` rounds.
fn boot_suite(blob: &Blob, payloads: &Payloads, runs: usize, dir: &Path) -> Result<(Vec<Config>, Vec<Vec<Sample>>)> {
    let timeout = Duration::from_secs(180);
    let configs = boot_configs(payloads, timeout)?;
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        // Interleaved, so drift hits all alike.
        for (c, out) in configs.iter().zip(samples.iter_mut()) {
            let t = match &c.how {
                How::Emulator(o) => run::boot(o, blob, Some(payloads))?,
                How::Peer { kernel, initrd, append } => qemu::run(&peer_args(c.mode, kernel, initrd.as_deref(), append, dir)?, timeout, false)?,
            };
            let s = sample(&t).with_context(|| format!("{} {}", c.kernel, c.mode.name()))?;
            let f = |i: usize| s.at[i].map_or("-".into(), |v| format!("{v:.3}"));
            eprintln!("round {round}/{runs}: {:<24} {:<28} stub {:>6} EBS {:>6} marker {:>6} s", c.kernel, c.mode.name(), f(1), f(2), f(4));
            out.push(s);
        }
    }
    Ok((configs, samples))
}

/// The emulator's phases from its timeline line (ms since entry) and its mempool use (KiB).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phases {
    pub mmu_on: f64,
    pub services_ready: f64,
    pub payload_entered: f64,
    pub exit_boot_services: f64,
    pub mempool_kib: u64,
}

pub fn phases(line: &str) -> Option<Phases> {
    let ms = |name: &str| -> Option<f64> { line.split(&format!("{name} ")).nth(1)?.split(" ms").next()?.parse().ok() };
    let mempool_kib = line.split("mempool used by the emulator: ").nth(1)?.split(" KiB").next()?.parse().ok()?;
    Some(Phases {
        mmu_on: ms("MMU on")?,
        services_ready: ms("boot services ready")?,
        payload_entered: ms("payload entered")?,
        exit_boot_services: ms("ExitBootServices")?,
        mempool_kib,
    })
}

/// One configuration of the icount suite.
struct IcountConfig {
    name: String,
    options: RunOptions,
}

fn icount_configs(payloads: &Payloads) -> Result<Vec<IcountConfig>> {
    let base =
        |kernel: &Path| RunOptions { kernel: Some(kernel.to_path_buf()), print: false, timeline: true, icount: true, timeout: Duration::from_secs(120), ..RunOptions::default() };
    let image = |series| payloads.kernel(series).map(|k| k.image.clone());
    let uki = payloads.uki("254+6.12")?;
    let uki_opts = |cpu: &str| RunOptions { no_initrd: true, append: String::new(), cpu: cpu.into(), ..base(&uki.path) };
    let mut v = vec![
        IcountConfig { name: "6.1 Image (32 MB), runs in place".into(), options: base(&image("6.1")?) },
        IcountConfig { name: "6.12 Image (43 MB), runs in place".into(), options: base(&image("6.12")?) },
        IcountConfig { name: "6.12 Image, printing on".into(), options: RunOptions { print: true, ..base(&image("6.12")?) } },
        IcountConfig { name: "6.12 Image, the loader reserved only its file size: copied".into(), options: RunOptions { kernel_file_size_only: true, ..base(&image("6.12")?) } },
        IcountConfig { name: format!("UKI {} (46 MB, copied: it is no Linux Image), FEAT_MOPS", uki.name), options: uki_opts("max") },
        IcountConfig { name: format!("UKI {}, the same on -cpu cortex-a72 (no FEAT_MOPS)", uki.name), options: uki_opts("cortex-a72") },
        IcountConfig { name: "6.12 Image, 8 GiB of RAM".into(), options: RunOptions { mem: "8G".into(), ..base(&image("6.12")?) } },
        IcountConfig { name: "6.12 Image, 300 reserved ranges (603 descriptors)".into(), options: RunOptions { reserved_ranges: 300, ..base(&image("6.12")?) } },
    ];
    if let Some(z) = payloads.zboot.iter().find(|z| z.series == "6.12") {
        v.push(IcountConfig { name: format!("zboot 6.12 ({}): the stub decompresses, LoadImage copies", z.compression), options: base(&z.image) });
    }
    Ok(v)
}

/// The icount suite: each configuration `runs` times, stopped at the timeline line.
fn icount_suite(blob: &Blob, payloads: &Payloads, runs: usize) -> Result<(Vec<IcountConfig>, Vec<Vec<Phases>>)> {
    let configs = icount_configs(payloads)?;
    let mut out: Vec<Vec<Phases>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        for (c, o) in configs.iter().zip(out.iter_mut()) {
            let prepared = run::prepare(&c.options, blob, Some(payloads))?;
            let t = qemu::run_until(&prepared.qemu_args, c.options.timeout, "timeline: ")?;
            let line = t.find("timeline: ").map(|(_, l)| l.clone()).with_context(|| format!("{}: no timeline line:\n{}", c.name, t.text()))?;
            let p = phases(&line).with_context(|| format!("{}: unreadable timeline {line:?}", c.name))?;
            eprintln!("icount {round}/{runs}: {:<58} payload entered {:8.3} ms, EBS {:8.3} ms", c.name, p.payload_entered, p.exit_boot_services);
            o.push(p);
        }
    }
    Ok((configs, out))
}

/// Sizes beside the peers', and what costs size in the blob.
pub struct Sizes {
    pub blob_file: u64,
    pub blob_footprint: u64,
    pub u_boot: Option<u64>,
    pub edk2: Option<u64>,
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
        u_boot: len(crate::harness::uboot::U_BOOT),
        edk2: len(QEMU_EFI),
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

/// The chart: one bar per boot, its phases stacked (medians), seconds on the x axis.
pub fn svg(title: &str, rows: &[(String, [Option<f64>; 6])]) -> String {
    const COLORS: [&str; 6] = ["#bbbbbb", "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1"];
    let phase_names = ["QEMU start → first console byte", "→ EFI stub", "→ ExitBootServices", "→ first kernel message", "→ userspace marker", "→ QEMU exit"];
    let (label_w, bar_w, row_h, top) = (330.0, 560.0, 22.0, 50.0);
    let max_t = rows.iter().filter_map(|(_, at)| at.iter().flatten().copied().reduce(f64::max)).fold(1.0, f64::max).ceil();
    let x = |t: f64| label_w + t / max_t * bar_w;
    let height = top + rows.len() as f64 * row_h + 70.0;
    let width = label_w + bar_w + 30.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        xml(title)
    );
    for sec in 0..=max_t as u32 {
        let gx = x(sec as f64);
        s.push_str(&format!(
            "<line x1=\"{gx:.1}\" y1=\"{:.1}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/><text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666666\">{sec} s</text>\n",
            top - 8.0,
            top + rows.len() as f64 * row_h,
            top - 12.0
        ));
    }
    for (i, (label, at)) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        s.push_str(&format!("<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n", label_w - 8.0, y + 15.0, xml(label)));
        let mut from = 0.0;
        for (k, t) in at.iter().enumerate() {
            let Some(t) = *t else { continue };
            if t > from {
                s.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {t:.3} s</title></rect>\n",
                    x(from),
                    y + 3.0,
                    x(t) - x(from),
                    row_h - 6.0,
                    COLORS[k],
                    xml(phase_names[k])
                ));
                from = t;
            }
        }
    }
    let ly = top + rows.len() as f64 * row_h + 20.0;
    for (k, name) in phase_names.iter().enumerate() {
        let lx = 10.0 + (k % 3) as f64 * 300.0;
        let lyk = ly + (k / 3) as f64 * 20.0;
        s.push_str(&format!(
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            lyk - 10.0,
            COLORS[k],
            lx + 18.0,
            lyk,
            xml(name)
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Which parts to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suites {
    pub boot: bool,
    pub icount: bool,
    pub kexec: bool,
    pub secure_boot: bool,
}

/// What verifying a signed image costs the emulator, in guest time (`-icount shift=0`), with
/// the CPU's SHA-256 instructions and with the portable code: the 46 MB UKI, signed with EDK2's
/// test key at bench time, verified in audit mode (no firmware here: the verdict is "unknown
/// signer", after the whole digest and the signer's RSA signature). Returns the Markdown rows.
fn secure_boot_suite(blob: &Blob, payloads: &Payloads, runs: usize, dir: &Path) -> Result<(String, Value)> {
    let keys = crate::harness::secure_boot::Snakeoil::new(&dir.join("secure-boot"))?;
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
            let line = t.find("(verified in ").map(|(_, l)| l.clone()).with_context(|| format!("{name}: no verdict:\n{}", t.text()))?;
            let v: f64 = line.split("(verified in ").nth(1).and_then(|r| r.split(" ms").next()).and_then(|v| v.parse().ok()).with_context(|| format!("unreadable: {line}"))?;
            eprintln!("secure-boot {round}/{runs}: {name:<50} {v:10.3} ms");
            ms.push(v);
        }
        let (m, lo, hi) = stats(&ms).unwrap_or_default();
        md.push_str(&format!("| {name} | {m:.3} ms ({lo:.3}–{hi:.3}) | {:.3} ms |\n", m / mb));
        rows.push(json!({ "path": name, "ms": { "median": m, "min": lo, "max": hi }, "megabytes": mb }));
    }
    Ok((md, Value::Array(rows)))
}

/// The host, for the report's header: QEMU version and CPU model.
fn host_line(runs: usize) -> Result<String> {
    let (major, minor) = qemu::version()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(": ").nth(1)).map(str::to_string));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let date = crate::output_checked(std::process::Command::new("date").args(["-u", "+%Y-%m-%d"])).map(|d| d.trim().to_string()).unwrap_or_default();
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
        let (configs, samples) = boot_suite(blob, payloads, runs, &dir)?;
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
        let (configs, phases) = icount_suite(blob, payloads, runs.min(3))?;
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
    let sz = sizes(blob)?;
    md.push_str("## Sizes\n\n| firmware | file | in memory |\n|---|---:|---:|\n");
    md.push_str(&format!("| efi-emulator.bin | {} B ({} KiB) | {} KiB |\n", sz.blob_file, sz.blob_file.div_ceil(1024), sz.blob_footprint / 1024));
    let peer = |n: &str, v: Option<u64>| v.map(|b| format!("| {n} | {b} B ({} KiB) | |\n", b.div_ceil(1024))).unwrap_or_default();
    md.push_str(&peer("U-Boot 2023.01 u-boot.bin", sz.u_boot));
    md.push_str(&peer("EDK2 2022.11 QEMU_EFI.fd", sz.edk2));
    md.push_str("\nWhat costs size in the blob (symbol bytes by origin, then the largest symbols):\n\n| bytes | origin |\n|---:|---|\n");
    for (b, o) in &sz.by_origin {
        md.push_str(&format!("| {b} | `{o}` |\n"));
    }
    md.push_str("\n| bytes | symbol |\n|---:|---|\n");
    for (b, n) in &sz.top_symbols {
        md.push_str(&format!("| {b} | `{}` |\n", n.replace('|', "\\|")));
    }
    js["sizes"] = json!({
        "blob_file": sz.blob_file, "blob_footprint": sz.blob_footprint, "u_boot": sz.u_boot, "edk2": sz.edk2,
        "by_origin": sz.by_origin.iter().map(|(b, o)| json!({ "bytes": b, "origin": o })).collect::<Vec<_>>(),
    });
    if suites.secure_boot {
        let (rows, j) = secure_boot_suite(blob, payloads, runs, &dir)?;
        md.push_str("\n## Secure Boot: verifying the 46 MB UKI (`-icount shift=0`, guest time)\n\n");
        md.push_str("Authenticode digest of the whole file, PKCS#7 parse, the signer's RSA-2048 signature; medians of the runs (min–max).\n\n| SHA-256 | verified in | per MB |\n|---|---:|---:|\n");
        md.push_str(&rows);
        js["secure_boot"] = j;
    }
    if let (true, Some(k)) = (suites.kexec, efi_kexec) {
        md.push_str("\n## Real kexec (`kexec -e` to the marker)\n\n");
        md.push_str(&crate::payloads::kexec_tools::bench_kexec(k, &blob.bin, payloads, runs)?);
    }
    std::fs::write(out("md"), &md)?;
    std::fs::write(out("json"), serde_json::to_string_pretty(&js)? + "\n")?;
    Ok(md)
}

fn tempdir() -> Result<PathBuf> {
    let dir = crate::paths::out_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_cells() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        assert_eq!(cell(&[], 3), "-");
        assert_eq!(cell(&[2.0, 1.0, 4.0], 3), "2.000 s (1.000–4.000)");
        assert_eq!(cell(&[2.0], 3), "2.000 s (2.000–2.000) in 1 of 3 runs");
    }

    #[test]
    fn peers_boot_the_harness_machine() {
        let args = peer_args(Mode::Direct, Path::new("Image"), None, "quiet", Path::new(".")).unwrap();
        let machine = ["-M", "virt", "-cpu", "max", "-m", "1G", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none"];
        assert_eq!(args[..machine.len()], machine);
        assert_eq!(args[machine.len()..], ["-kernel", "Image", "-append", "quiet"]);
    }

    #[test]
    fn timeline_lines_parse() {
        let l = "efi-emulator timeline: MMU on 0.637 ms, boot services ready 1.848 ms, payload entered 2.213 ms, ExitBootServices 11.580 ms; mempool used by the emulator: 184 KiB (page tables 52 KiB, heap 4 KiB, pages 128 KiB)";
        assert_eq!(phases(l), Some(Phases { mmu_on: 0.637, services_ready: 1.848, payload_entered: 2.213, exit_boot_services: 11.58, mempool_kib: 184 }));
        assert_eq!(phases("timeline: MMU on 1 ms"), None);
    }

    #[test]
    fn symbols_are_grouped_by_where_they_come_from() {
        assert_eq!(origin("efi_emulator::services::image::load"), "efi_emulator::services");
        assert_eq!(origin("<core::fmt::Formatter>::pad"), "core");
        assert_eq!(origin("compiler_builtins::mem::memmove"), "compiler_builtins");
        assert_eq!(origin("efi_emulator_main"), "efi_emulator entry points (the boot flow, inlined)");
        assert_eq!(origin("memcpy"), "(other symbols)");
    }

    #[test]
    fn the_chart_stacks_the_phases_it_has() {
        let s = svg("t", &[("a & b".into(), [Some(0.1), Some(0.2), None, Some(0.5), Some(4.0), Some(4.2)])]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("a &amp; b"));
        // Five phases drawn (the missing ExitBootServices merges into the next).
        assert_eq!(s.matches("<rect x=").count() - 6, 5, "{s}");
        assert!(s.contains(">5 s</text>"), "the axis reaches past the longest bar");
    }
}
