//! What `cargo xtask build`, `payloads`, `run`, `kexec`, `bench` and `fuzz` do with their
//! arguments: the library's steps, and what they print.

use crate::cli::{BenchSuite, KexecArgs, RunArgs};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use xtask::harness::{kexec, run, setup};
use xtask::payloads::kexec_stage::{self, NextBoot};
use xtask::{build, payloads};

/// `cargo xtask build`: the blob, its report, and efi-kexec with the blob inside.
pub fn build(verbose: bool) -> Result<()> {
    let blob = build::build_blob(verbose)?;
    println!("{}", blob.report());
    let efi_kexec = build::build_efi_kexec(&blob)?;
    println!(
        "efi-kexec: {} bytes, static arm64
  {}",
        std::fs::metadata(&efi_kexec)?.len(),
        efi_kexec.display()
    );
    for manual in build::efi_kexec_manuals()? {
        println!("  {}", manual.display());
    }
    Ok(())
}

/// `cargo xtask payloads`: everything the runs and tests boot, fetched or built, and where it is.
pub fn payloads() -> Result<()> {
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
    Ok(())
}

/// `cargo xtask run`: one boot through the emulator, its console streamed, its milestones timed.
pub fn run(a: RunArgs) -> Result<()> {
    run::parse_mem(&a.mem)?;
    setup::setup()?;
    // --debug-fault needs the hooks the shipped blob leaves out.
    let flavour = if a.debug_fault.is_some() { build::Flavour::TestHooks } else { build::Flavour::Shipped };
    let blob = build::build_blob_flavour(false, flavour)?;
    eprintln!("{}", blob.report());
    let p = a.payload;
    let payloads = if p.kernel.is_none() || (p.initrd.is_none() && !p.no_initrd) { Some(payloads::ensure()?) } else { None };
    let swtpm = if a.tpm { Some(xtask::harness::tpm::Swtpm::start()?) } else { None };
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
        tpm: swtpm.as_ref().map(|t| t.socket().to_path_buf()),
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

/// `cargo xtask kexec`: real kexec from Debian's 6.12 through efi-kexec.
pub fn kexec(a: KexecArgs) -> Result<()> {
    setup::setup()?;
    let blob = build::build_blob(false)?;
    let efi_kexec = build::build_efi_kexec(&blob)?;
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
    let next = NextBoot { image, initrd, append: Some(p.append), extra, before_load: None, before_exec: None, files: Vec::new() };
    let initramfs = kexec_stage::stage_initramfs(&payloads.busybox, &efi_kexec, "first", &next)?;
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

/// `cargo xtask bench`: the chosen suites, their report written.
pub fn bench(runs: usize, suite: BenchSuite, out: Option<PathBuf>) -> Result<()> {
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
        measured_boot: standard || suite == BenchSuite::MeasuredBoot,
    };
    let efi_kexec = if suites.kexec { Some(build::build_efi_kexec(&blob)?) } else { None };
    let stem = match suite {
        BenchSuite::Standard | BenchSuite::All => "bench".to_string(),
        one => format!("bench-{}", clap::ValueEnum::to_possible_value(&one).expect("a named suite").get_name()),
    };
    let out = out.unwrap_or_else(|| xtask::paths::root().join("docs"));
    println!("{}", xtask::bench::bench(&blob, &payloads, runs, suites, efi_kexec.as_deref(), &out, &stem)?);
    eprintln!("written: {0}/{stem}.md, {0}/{stem}.json and (with the boot suite) {0}/{stem}.svg", out.display());
    Ok(())
}

/// `cargo xtask fuzz`: every fuzz target (or one) for `seconds`.
pub fn fuzz(seconds: u64, target: Option<&str>) -> Result<()> {
    let payloads = payloads::ensure()?;
    for (t, execs) in xtask::gate::fuzz::fuzz(&payloads, seconds, target)? {
        println!("{t:<16} {execs:>12} executions in {seconds} s, no crash");
    }
    Ok(())
}
