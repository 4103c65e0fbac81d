//! `cargo xtask <command>`: see `cargo xtask --help`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use xtask::cargo::{Cargo, Toolchain};
use xtask::harness::trampoline::EntryEl;
use xtask::harness::{run, setup};
use xtask::{build, paths, payloads};

#[derive(Parser)]
#[command(about = "Build, run and test efi-emulator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the blob (target/efi-emulator/efi-emulator.bin), efi_emulator.h, and efi-kexec
    /// (target/aarch64-unknown-linux-musl/release/efi-kexec) with the blob inside.
    Build {
        #[arg(long)]
        verbose: bool,
    },
    /// Install the host tools: QEMU >= 8, the aarch64-unknown-none target, dpkg-deb, cc.
    Setup,
    /// Download the Debian payloads into the cache and build the test initramfs.
    Payloads,
    /// Boot a PE kernel through the emulator under QEMU, laid out like kexec_file_load.
    Run(RunArgs),
    /// Real kexec: Debian's 6.12 boots directly, and its /init kexecs PE through efi-kexec.
    Kexec(KexecArgs),
    /// Boot times beside direct boot, U-Boot and EDK2 (medians with min-max, interleaved), the
    /// emulator's phases under -icount, sizes; writes docs/bench.{md,json,svg} (one suite:
    /// docs/bench-SUITE.*).
    Bench {
        /// Boots per configuration (the icount suite repeats exactly and takes at most 3).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// boot: the payloads under the emulator (printing on and off), direct -kernel, U-Boot
        /// and EDK2; icount: the emulator's phases in guest time and how they scale; standard:
        /// both; kexec: real kexec from Debian 6.12, kexec-tools beside efi-kexec (about 15 min
        /// for 5 rounds: kexec-tools loads for 80-100 s under TCG); secure-boot: verifying the 46
        /// MB UKI in guest time, SHA-256 instructions and portable (also in standard); all: every
        /// suite.
        #[arg(long, value_enum, default_value = "standard")]
        suite: BenchSuite,
        /// Where the report goes (default: docs/ of the repository).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the fuzz targets in fuzz/ (cargo-fuzz, nightly), seeded from the payloads.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// The lint gate: rustfmt, and clippy with -D warnings for the host, the blob (with and
    /// without the test hooks), the UEFI test payload and efi-kexec for arm64 musl.
    Lint,
    /// Everything: the lint gate, setup, build, payloads, host tests, Miri, QEMU tests.
    Test {
        /// Only the host unit tests.
        #[arg(long)]
        host_only: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchSuite {
    Standard,
    All,
    Boot,
    Icount,
    Kexec,
    SecureBoot,
}

/// What to boot: shared by `run` and `kexec`.
#[derive(clap::Args)]
struct PayloadArgs {
    /// The PE file (default: Debian's 6.12 arm64 kernel for run, 6.1 for kexec).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// The initrd (default: the busybox test initramfs).
    #[arg(long, conflicts_with = "no_initrd")]
    initrd: Option<PathBuf>,
    /// Boot without an initrd.
    #[arg(long)]
    no_initrd: bool,
    /// The kernel command line (`--append ""` lets a UKI use its own).
    #[arg(long, default_value = run::DEFAULT_APPEND)]
    append: String,
}

#[derive(clap::Args)]
struct KexecArgs {
    #[command(flatten)]
    payload: PayloadArgs,
    /// The first kernel's EL: 1, 2 (nVHE: kvm-arm.mode=nvhe) or 2vhe.
    #[arg(long, value_enum, default_value = "1")]
    el: EntryEl,
    #[arg(long, default_value_t = 240)]
    timeout: u64,
    /// Only `efi-kexec load --dry-run`: print the plan, kexec nothing.
    #[arg(long)]
    dry_run: bool,
    /// EDK2 boots the first kernel (which then runs on ACPI): the firmware is passed through.
    #[arg(long)]
    edk2: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    payload: PayloadArgs,
    /// An EFI system partition served as a disk: a directory (made into a FAT image) or a FAT
    /// image; `--kernel ESP/EFI/BOOT/BOOTAA64.EFI` then boots the loader from it, as firmware.
    #[arg(long)]
    esp: Option<PathBuf>,
    /// Serve an `--esp` directory as a GPT disk with one EFI system partition (`HD()` device
    /// paths, a partition handle under the disk's), as a real disk's ESP looks.
    #[arg(long, requires = "esp")]
    esp_gpt: bool,
    /// The exception level the emulator is entered at.
    #[arg(long, value_enum, default_value = "1")]
    el: EntryEl,
    #[arg(long, default_value_t = 1)]
    smp: u32,
    #[arg(long, default_value = "1G")]
    mem: String,
    #[arg(long, default_value = "max")]
    cpu: String,
    /// The GIC of QEMU's `virt` machine (2 or 3).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    gic: u8,
    /// Seconds before the run is stopped and counted as failed.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Clear print_enabled: the emulator prints only fatal errors.
    #[arg(long)]
    quiet: bool,
    /// Make the emulator fault on purpose after the MMU is on: data-abort or undefined.
    #[arg(long)]
    debug_fault: Option<String>,
    /// Have the emulator CRC the kernel, initrd and DTB at entry and check them again.
    #[arg(long)]
    integrity: bool,
    /// Have the emulator print its timeline line even with `--quiet`.
    #[arg(long)]
    timeline: bool,
    /// Run QEMU with `-icount shift=0`: guest time that repeats exactly.
    #[arg(long)]
    icount: bool,
    /// Have the emulator verify the kernel image's signature and say the verdict and its cost,
    /// without enforcing (there are no firmware databases here).
    #[arg(long)]
    secure_boot_audit: bool,
    /// Have the emulator hash with the portable SHA-256, not the CPU's instructions.
    #[arg(long)]
    generic_sha256: bool,
    /// Reserve this many 64 KiB ranges in the upper half of RAM (a map of hundreds of
    /// descriptors).
    #[arg(long, default_value_t = 0)]
    reserved_ranges: usize,
    /// Reserve only the kernel file's bytes, not SizeOfImage, as a loader that ignores the PE
    /// header would: the emulator must copy the kernel.
    #[arg(long)]
    kernel_file_size_only: bool,
    /// Boot the Image form (efi-emulator.efi) as arm64 kexec_file_load does: the kernel as its
    /// initrd (with --initrd, a bundle of kernel, initrd and command line), entered with x0 =
    /// the DTB.
    #[arg(long)]
    kexec_file: bool,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Build { verbose } => {
            let blob = build::build_blob(verbose)?;
            println!("{}", blob.report());
            let efi_kexec = xtask::harness::kexec::build_efi_kexec(&blob)?;
            println!(
                "efi-kexec: {} bytes, static arm64
  {}",
                std::fs::metadata(&efi_kexec)?.len(),
                efi_kexec.display()
            );
        }
        Cmd::Setup => setup::setup()?,
        Cmd::Payloads => {
            let p = payloads::ensure_all()?;
            for k in &p.kernels {
                println!("kernel {:<5} {} {}\n             {}", k.series, k.package, k.version, k.image.display());
            }
            for s in &p.stubs {
                println!("systemd-stub {}\n             {}", s.version, s.path.display());
            }
            for z in &p.zboot {
                println!("zboot {:<5}  {} (linux-source {}, {})", z.series, z.image.display(), z.source_version, z.compression);
            }
            for u in &p.ukis {
                println!("UKI {:<8} {}\n             .cmdline {:?}", u.name, u.path.display(), u.cmdline);
            }
            println!("initramfs    {}\nbusybox      {}", p.initramfs.display(), p.busybox.display());
            let l = p.loaders()?;
            println!("systemd-boot {}\n             {}", l.systemd.version, l.systemd.sibling("systemd-bootaa64.efi").display());
            println!("GRUB         {} (arm64-efi modules, grub-mkimage)\n             {}", l.grub.version, l.grub.modules.display());
            println!("GRUB signed  {}\n             {}", l.grub.signed_version, l.grub.signed.display());
            println!("shim         {}\n             {}", l.shim.version, l.shim.path.display());
        }
        Cmd::Run(a) => run_command(a)?,
        Cmd::Kexec(a) => kexec_command(a)?,
        Cmd::Lint => lint()?,
        Cmd::Test { host_only } => test(host_only)?,
        Cmd::Fuzz { seconds, target } => {
            let payloads = payloads::ensure()?;
            for (t, execs) in xtask::gate::fuzz::fuzz(&payloads, seconds, target.as_deref())? {
                println!("{t:<16} {execs:>12} executions in {seconds} s, no crash");
            }
        }
        Cmd::Bench { runs, suite, out } => {
            setup::setup()?;
            let blob = build::build_blob(false)?;
            eprintln!("{}", blob.report());
            let payloads = payloads::ensure_all()?;
            let all = suite == BenchSuite::All;
            let standard = all || suite == BenchSuite::Standard;
            let suites = xtask::bench::Suites {
                boot: standard || suite == BenchSuite::Boot,
                icount: standard || suite == BenchSuite::Icount,
                kexec: all || suite == BenchSuite::Kexec,
                secure_boot: standard || suite == BenchSuite::SecureBoot,
            };
            let efi_kexec = if suites.kexec { Some(xtask::harness::kexec::build_efi_kexec(&blob)?) } else { None };
            let stem = match suite {
                BenchSuite::Standard | BenchSuite::All => "bench".to_string(),
                one => format!("bench-{}", clap::ValueEnum::to_possible_value(&one).expect("a named suite").get_name()),
            };
            let out = out.unwrap_or_else(|| xtask::paths::root().join("docs"));
            println!("{}", xtask::bench::bench(&blob, &payloads, runs, suites, efi_kexec.as_deref(), &out, &stem)?);
            eprintln!("written: {0}/{stem}.md, {0}/{stem}.json and (with the boot suite) {0}/{stem}.svg", out.display());
        }
    }
    Ok(())
}

fn run_command(a: RunArgs) -> Result<()> {
    run::parse_mem(&a.mem)?;
    setup::setup()?;
    // --debug-fault needs the hooks the shipped blob leaves out.
    let flavour = if a.debug_fault.is_some() { build::Flavour::TestHooks } else { build::Flavour::Shipped };
    let blob = build::build_blob_flavour(false, flavour)?;
    eprintln!("{}", blob.report());
    let p = a.payload;
    let payloads = if p.kernel.is_none() || (p.initrd.is_none() && !p.no_initrd) { Some(payloads::ensure()?) } else { None };
    let opts = run::RunOptions {
        kernel: p.kernel,
        initrd: p.initrd,
        esp: a.esp,
        esp_gpt: a.esp_gpt,
        crash_region: None,
        no_initrd: p.no_initrd,
        append: p.append,
        el: a.el,
        smp: a.smp,
        mem: a.mem,
        cpu: a.cpu,
        gic: a.gic,
        timeout: Duration::from_secs(a.timeout),
        print: !a.quiet,
        debug_fault: a.debug_fault,
        stale_map_key: false,
        input: None,
        integrity: a.integrity,
        timeline: a.timeline,
        secure_boot_audit: a.secure_boot_audit,
        generic_sha256: a.generic_sha256,
        icount: a.icount,
        reserved_ranges: a.reserved_ranges,
        kernel_file_size_only: a.kernel_file_size_only,
        kexec_file: a.kexec_file,
        echo: true,
        tweak: None,
    };
    let prepared = run::prepare(&opts, &blob, payloads.as_ref())?;
    let door = if opts.kexec_file { "kexec_file_load" } else { "kexec-style" };
    eprintln!("{door} layout, entered at {} through the trampoline at {:#x}:", opts.el.name(), prepared.trampoline_addr);
    eprint!("{}", prepared.summary);
    eprintln!("--- serial console ---");
    let t = xtask::harness::qemu::run(&prepared.qemu_args, opts.timeout, true)?;
    eprintln!("--- end of console ---");
    for (name, at) in run::milestones(&t) {
        eprintln!("{name:>17}: {:7.3} s after QEMU start", at.as_secs_f64());
    }
    let verdict = run::verdict(&t)?;
    eprintln!("ok: {verdict}");
    Ok(())
}

fn kexec_command(a: KexecArgs) -> Result<()> {
    use xtask::harness::kexec;
    setup::setup()?;
    let blob = build::build_blob(false)?;
    let efi_kexec = kexec::build_efi_kexec(&blob)?;
    let payloads = payloads::ensure()?;
    let p = a.payload;
    let image = match p.kernel {
        Some(k) => k,
        None => payloads.kernel("6.1")?.image.clone(),
    };
    let initrd = match (p.initrd, p.no_initrd) {
        (_, true) => None,
        (Some(p), _) => Some(std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?),
        (None, _) => Some(std::fs::read(&payloads.initramfs)?),
    };
    let extra = if a.dry_run { vec!["--dry-run".to_string()] } else { Vec::new() };
    let next = kexec::NextBoot { image, initrd, append: Some(p.append), extra, before_load: None, files: Vec::new() };
    let initramfs = kexec::stage_initramfs(&payloads.busybox, &efi_kexec, "first", &next)?;
    eprintln!(
        "first kernel: Debian {} at {}{}, -cpu {}, 2 CPUs, 2 GiB; its /init runs efi-kexec load + exec",
        payloads.kernel("6.12")?.version,
        a.el.name(),
        if a.edk2 { ", booted by EDK2" } else { "" },
        kexec::FIRST_CPU
    );
    eprintln!("--- serial console ---");
    let boot = if a.edk2 { kexec::FirstBoot::Edk2 } else { kexec::FirstBoot::Direct };
    let t = kexec::boot_first_with(&payloads, a.el, boot, &initramfs, Duration::from_secs(a.timeout), true)?;
    eprintln!("--- end of console ---");
    if a.dry_run {
        anyhow::ensure!(t.contains("efi-kexec: dry run, nothing loaded"), "efi-kexec printed no plan");
        return Ok(());
    }
    let verdict = run::verdict(&t)?;
    eprintln!("ok: {verdict}");
    Ok(())
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

fn test(host_only: bool) -> Result<()> {
    let mut total = (0, 0);
    let result = test_steps(host_only, &mut total);
    println!("xtask test: {} passed, {} failed", total.0, total.1);
    result
}

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

fn lint() -> Result<()> {
    for args in LINTS {
        eprintln!("lint: cargo {}", args.join(" "));
        xtask::run_checked(&mut Cargo::new(args[0]).args(&args[1..]).command()).with_context(|| format!("lint gate: `cargo {}` failed", args.join(" ")))?;
    }
    eprintln!("lint: the emulator's layers (xtask/src/gate/layers.rs): no crate:: path points up, no file circle");
    xtask::gate::layers::check(&paths::root().join("emulator/src")).context("lint gate: layers")?;
    for args in DOCS {
        eprintln!("lint: RUSTDOCFLAGS=\"-D warnings\" cargo {}", args.join(" "));
        xtask::run_checked(&mut Cargo::new(args[0]).args(&args[1..]).env("RUSTDOCFLAGS", "-D warnings").command())
            .with_context(|| format!("lint gate: `cargo {}` failed", args.join(" ")))?;
    }
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

/// Whether rustup has a nightly toolchain (Miri and cargo-fuzz need one).
fn nightly() -> bool {
    Cargo::new("--version").toolchain(Toolchain::Nightly).caller_dir().command().output().is_ok_and(|o| o.status.success())
}

fn test_steps(host_only: bool, total: &mut (u64, u64)) -> Result<()> {
    eprintln!("== lint gate");
    lint()?;
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
    let efi_kexec = xtask::harness::kexec::build_efi_kexec(&blob)?;
    eprintln!("efi-kexec: {}", efi_kexec.display());
    eprintln!("== payloads");
    payloads::ensure_all()?;
    eprintln!("== QEMU tests");
    cargo_test(&["-p", "qemu-tests"], &[("EFI_EMULATOR_BLOB", &blob.bin), ("EFI_KEXEC", &efi_kexec)], total).context("QEMU tests")?;
    eprintln!("== fuzz (a short bound per target; `cargo xtask fuzz --seconds N` for longer)");
    if nightly() {
        let payloads = payloads::ensure()?;
        for (target, execs) in xtask::gate::fuzz::fuzz(&payloads, 10, None)? {
            println!("fuzz {target}: {execs} executions, no crash");
            total.0 += 1;
        }
    } else {
        eprintln!("fuzz: skipped: no nightly toolchain (cargo-fuzz needs one)");
    }
    Ok(())
}
