//! The baseline for `efi-kexec`: Debian's own arm64 `kexec-tools`, which loads a raw `Image`
//! through `kexec_load` with its purgatory and enters it without EFI, measured beside
//! `efi-kexec` in the same first kernel (Debian's 6.12 under QEMU, see [`crate::harness::kexec`]).
//!
//! Debian's `/sbin/kexec` is dynamically linked, so the loader and every shared library it
//! needs come from their Debian packages too, through the same private arm64 apt state as the
//! payloads; which files are needed is read from the ELF files themselves (`DT_NEEDED`).

use crate::bench::cell;
use crate::harness::kexec::{NextBoot, FIRST_CPU};
use crate::harness::qemu::{self, Transcript};
use crate::harness::run;
use crate::harness::trampoline::EntryEl;
use crate::paths;
use crate::payloads::apt::{self, Apt};
use crate::payloads::{Payloads, MARKER};
use anyhow::{bail, ensure, Context, Result};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Debian's multiarch directory for arm64 libraries.
const MULTIARCH: &str = "aarch64-linux-gnu";
/// The stage name the `/init` reports with, as [`crate::harness::kexec::stage_script`]'s first stage.
const STAGE: &str = "first";
/// The line `/init` prints right before `kexec -e` (or `efi-kexec exec`).
const EXEC_LINE: &str = "efi-kexec-test: first: exec at uptime";
const LOAD_LINE: &str = "efi-kexec-test: first: load at uptime";
/// The emulator's banner and the payload's EFI stub: milestones only the EFI path has.
const BANNER: &str = "efi-emulator 0.";
const EFI_STUB: &str = "EFI stub: ";

/// Debian's kexec-tools, unpacked, with what its dynamic linking needs.
#[derive(Clone, Debug)]
pub struct KexecTools {
    /// `/sbin/kexec` of the package.
    pub kexec: PathBuf,
    /// The `kexec-tools` package version, e.g. `1:2.0.25-3+deb12u3`.
    pub version: String,
    /// The loader and the shared libraries: (path inside the initramfs, real file on the host).
    pub libs: Vec<(String, PathBuf)>,
    /// Every package unpacked for them: (name, version), `kexec-tools` first.
    pub packages: Vec<(String, String)>,
}

/// The stanza of the newest version apt offers (`apt-cache show` lists newest first).
fn newest(apt: &Apt, name: &str) -> Result<String> {
    apt.show(name)?.into_iter().find(|s| apt::field(s, "Version").is_some()).with_context(|| format!("apt offers no {name} for arm64"))
}

/// The packages a stanza depends on (`Depends` and `Pre-Depends`, the first of each set of
/// alternatives, without version constraints or architecture qualifiers).
fn depends(stanza: &str) -> Vec<String> {
    ["Depends", "Pre-Depends"]
        .iter()
        .filter_map(|f| apt::field(stanza, f))
        .flat_map(|v| v.split(','))
        .filter_map(|dep| dep.split('|').next()?.split_whitespace().next())
        .map(|name| name.split(':').next().unwrap_or(name).to_string())
        .collect()
}

/// Makes sure Debian's arm64 kexec-tools and the libraries its `/sbin/kexec` needs are in the
/// cache, downloading what is missing.
pub fn ensure_kexec_tools() -> Result<KexecTools> {
    let apt = Apt::open(&paths::cache_dir())?;
    let stanza = newest(&apt, "kexec-tools")?;
    let version = apt::field(&stanza, "Version").unwrap().to_string();
    let dir = crate::payloads::unpack(&apt, "kexec-tools", &version)?;
    let kexec = dir.join("sbin/kexec");
    ensure!(kexec.is_file(), "kexec-tools {version} has no /sbin/kexec");

    // The library packages among its dependencies, transitively (Section: libs, so debconf and
    // friends are left out); which of their files are needed is decided from the ELF files.
    let mut packages = vec![("kexec-tools".to_string(), version.clone())];
    let mut trees = vec![dir];
    let mut seen: BTreeSet<String> = BTreeSet::from(["kexec-tools".to_string()]);
    let mut queue: VecDeque<String> = depends(&stanza).into();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        // A virtual or missing package cannot hold a library we could place; skip it.
        let Ok(stanza) = newest(&apt, &name) else { continue };
        if apt::field(&stanza, "Section") != Some("libs") {
            continue;
        }
        let v = apt::field(&stanza, "Version").unwrap().to_string();
        trees.push(crate::payloads::unpack(&apt, &name, &v)?);
        queue.extend(depends(&stanza));
        packages.push((name, v));
    }
    let libs = library_closure(&kexec, &trees).with_context(|| format!("the libraries of kexec-tools {version}"))?;
    Ok(KexecTools { kexec, version, libs, packages })
}

/// What dynamic linking of one ELF file asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dynamic {
    /// `PT_INTERP`: the program loader's path.
    interp: Option<String>,
    /// `DT_NEEDED` sonames.
    needed: Vec<String>,
}

/// Reads `PT_INTERP` and `DT_NEEDED` of a 64-bit little-endian AArch64 ELF file.
fn parse_dynamic(data: &[u8]) -> Result<Dynamic> {
    ensure!(data.len() >= 64 && data.starts_with(b"\x7fELF"), "not an ELF file");
    ensure!(data[4] == 2 && data[5] == 1, "not a 64-bit little-endian ELF file");
    let u16_at = |o: usize| -> Result<u64> { Ok(u16::from_le_bytes(data.get(o..o + 2).context("truncated ELF")?.try_into()?) as u64) };
    let u32_at = |o: usize| -> Result<u64> { Ok(u32::from_le_bytes(data.get(o..o + 4).context("truncated ELF")?.try_into()?) as u64) };
    let u64_at = |o: usize| -> Result<u64> { Ok(u64::from_le_bytes(data.get(o..o + 8).context("truncated ELF")?.try_into()?)) };
    ensure!(u16_at(18)? == 183, "not an AArch64 ELF file (e_machine {})", u16_at(18)?);
    let (phoff, phentsize, phnum) = (u64_at(0x20)? as usize, u16_at(0x36)? as usize, u16_at(0x38)? as usize);
    // (type, offset, vaddr, filesz) of every program header.
    let phdrs = (0..phnum)
        .map(|i| {
            let p = phoff + i * phentsize;
            Ok((u32_at(p)?, u64_at(p + 8)?, u64_at(p + 16)?, u64_at(p + 32)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let c_str = |off: u64| -> Result<String> {
        let rest = data.get(off as usize..).context("string outside the file")?;
        let end = rest.iter().position(|&b| b == 0).context("unterminated string")?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let mut dynamic = Dynamic::default();
    if let Some(&(_, off, _, _)) = phdrs.iter().find(|p| p.0 == 3) {
        dynamic.interp = Some(c_str(off)?);
    }
    let Some(&(_, dyn_off, _, dyn_size)) = phdrs.iter().find(|p| p.0 == 2) else {
        return Ok(dynamic); // static: nothing needed
    };
    let mut needed = Vec::new();
    let mut strtab = None;
    for e in (dyn_off..dyn_off + dyn_size).step_by(16) {
        match (u64_at(e as usize)?, u64_at(e as usize + 8)?) {
            (0, _) => break,
            (1, name) => needed.push(name),
            (5, addr) => strtab = Some(addr),
            _ => {}
        }
    }
    // DT_STRTAB is an address; the PT_LOAD segment holding it gives its file offset.
    let strtab = strtab.context("DT_NEEDED without DT_STRTAB")?;
    let &(_, load_off, load_vaddr, _) = phdrs.iter().find(|p| p.0 == 1 && (p.2..p.2 + p.3).contains(&strtab)).context("DT_STRTAB outside every PT_LOAD")?;
    let strtab = strtab - load_vaddr + load_off;
    dynamic.needed = needed.into_iter().map(|n| c_str(strtab + n)).collect::<Result<_>>()?;
    Ok(dynamic)
}

/// Drops `.` and folds `..` lexically, never above the root.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The regular file `rel` names inside an unpacked package `root`, following symlinks as they
/// would resolve on the target (absolute targets are inside `root`, not on the host).
fn resolve_in(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut rel = normalize(rel);
    for _ in 0..32 {
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(path);
        }
        let target = std::fs::read_link(&path).ok()?;
        rel = normalize(&rel.parent().unwrap_or(Path::new("")).join(target));
    }
    None
}

/// The first of `candidates` (paths relative to a package root) that one of `trees` holds.
fn find_in(trees: &[PathBuf], candidates: &[PathBuf]) -> Option<PathBuf> {
    trees.iter().find_map(|t| candidates.iter().find_map(|c| resolve_in(t, c)))
}

/// Where a file of the target's `/usr/lib` goes in the initramfs: under `/lib`, which `/usr/lib`
/// links to there, so either spelling of a path finds it.
fn initramfs_path(abs: &str) -> String {
    let rel = abs.trim_start_matches('/');
    match rel.strip_prefix("usr/") {
        Some(under_lib) if under_lib.starts_with("lib/") => under_lib.to_string(),
        _ => rel.to_string(),
    }
}

/// The loader and every shared library `binary` needs, transitively, found in the unpacked
/// packages `trees`: (path inside the initramfs, real file on the host).
fn library_closure(binary: &Path, trees: &[PathBuf]) -> Result<Vec<(String, PathBuf)>> {
    let read = |p: &Path| -> Result<Dynamic> { parse_dynamic(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?).with_context(|| p.display().to_string()) };
    let top = read(binary)?;
    let mut out = Vec::new();
    let mut provided = BTreeSet::new();
    if let Some(interp) = &top.interp {
        // Packages without merged /usr ship /lib/...; merged ones /usr/lib/...: look for both.
        let rel = PathBuf::from(interp.trim_start_matches('/'));
        let host = find_in(trees, &[rel.clone(), Path::new("usr").join(&rel)]).with_context(|| format!("no package holds the loader {interp}"))?;
        // The loader's own soname (its file name) is satisfied by the loader itself.
        provided.insert(rel.file_name().unwrap().to_string_lossy().into_owned());
        out.push((initramfs_path(interp), host));
    }
    let mut queue: VecDeque<String> = top.needed.into();
    let mut missing = Vec::new();
    while let Some(soname) = queue.pop_front() {
        if !provided.insert(soname.clone()) {
            continue;
        }
        // The loader's default search path on Debian: the multiarch directories first.
        let candidates: Vec<PathBuf> =
            [format!("lib/{MULTIARCH}"), format!("usr/lib/{MULTIARCH}"), "lib".into(), "usr/lib".into()].iter().map(|d| Path::new(d).join(&soname)).collect();
        let Some(host) = find_in(trees, &candidates) else {
            missing.push(soname);
            continue;
        };
        queue.extend(read(&host)?.needed);
        out.push((format!("lib/{MULTIARCH}/{soname}"), host));
    }
    ensure!(missing.is_empty(), "no unpacked package holds {}", missing.join(", "));
    Ok(out)
}

/// Shell-quotes for the stage script.
/// The `/init` of the baseline: the same reports as [`crate::harness::kexec::stage_script`]'s first stage,
/// but Debian's `kexec -l` (the raw Image, entered without EFI) and `kexec -e`.
fn stage_script(next: &NextBoot) -> String {
    let mut load = vec!["/sbin/kexec".to_string(), "-l".into(), "/next.efi".into()];
    if next.initrd.is_some() {
        load.push("--initrd=/next.initrd".into());
    }
    if let Some(a) = &next.append {
        load.push(format!("--append={}", crate::harness::kexec::quote(a)));
    }
    load.extend(next.extra.iter().cloned());
    // kexec-tools unpacks into /tmp: the script mounts a tmpfs there.
    crate::harness::kexec::script(STAGE, "", &load.join(" "), "/sbin/kexec -e", next.before_load.as_deref().unwrap_or(""))
}

/// An initramfs whose `/init` kexecs `next` through Debian's kexec-tools.
pub fn stage_initramfs(busybox: &Path, tools: &KexecTools, next: &NextBoot) -> Result<Vec<u8>> {
    Ok(tools_cpio(busybox, tools, &stage_script(next), next)?.finish())
}

/// A stage's archive (see [`crate::harness::kexec::stage_cpio`]) with `script` as `/init` and
/// kexec-tools' `/sbin/kexec` with the libraries it needs.
pub fn tools_cpio(busybox: &Path, tools: &KexecTools, script: &str, next: &NextBoot) -> Result<efi_emulator::abi::cpio::Cpio> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    // Every directory the libraries need, parents first (BTreeSet order puts "a" before "a/b").
    let mut dirs: BTreeSet<String> = ["sbin", "lib", "usr"].map(String::from).into();
    for (path, _) in &tools.libs {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    let mut c = crate::harness::kexec::stage_cpio(busybox, &dirs.into_iter().collect::<Vec<_>>(), script, next)?;
    // /usr/lib/... resolves like /lib/..., for binaries built with merged-/usr paths.
    c.symlink("usr/lib", "../lib");
    c.file("sbin/kexec", 0o755, &read(&tools.kexec)?);
    for (path, host) in &tools.libs {
        c.file(path, 0o755, &read(host)?);
    }
    Ok(c)
}

/// One boot's milestones after the first kernel's `exec at uptime` line, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// `load` to `exec` in the first kernel's own uptime: how long the loader took.
    pub load: Option<f64>,
    pub banner: Option<f64>,
    pub stub: Option<f64>,
    pub marker: f64,
}

/// The last lines of a transcript, for errors.
fn tail(t: &Transcript) -> String {
    let skip = t.lines.len().saturating_sub(40);
    t.lines[skip..].iter().map(|(d, l)| format!("[{:8.3}] {l}", d.as_secs_f64())).collect::<Vec<_>>().join("\n")
}

/// Measures one boot: everything relative to the `exec at uptime` line, and only what
/// follows it (the first kernel prints nothing of the kind, but stay strict).
fn sample(t: &Transcript) -> Result<Sample> {
    let Some(exec) = t.lines.iter().position(|(_, l)| l.contains(EXEC_LINE)) else {
        bail!("the first kernel never reached `kexec -e` ({}):\n{}", t.command, tail(t));
    };
    let t_exec = t.lines[exec].0;
    let after = |needle: &str| t.lines[exec + 1..].iter().find(|(_, l)| l.contains(needle)).map(|(d, _)| d.saturating_sub(t_exec).as_secs_f64());
    let Some(marker) = after(MARKER) else {
        bail!("no userspace marker after kexec ({}):\n{}", t.command, tail(t));
    };
    let uptime = |needle: &str| t.lines.iter().find_map(|(_, l)| l.split(needle).nth(1)?.trim().parse::<f64>().ok());
    let load = uptime(EXEC_LINE).zip(uptime(LOAD_LINE)).map(|(exec, load)| exec - load);
    Ok(Sample { load, banner: after(BANNER), stub: after(EFI_STUB), marker })
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Times kexec into the next kernel six ways, interleaved round by round. From Debian's 6.12
/// through `kexec_load`: Debian's kexec-tools with the 6.1 Image (no EFI), `efi-kexec` with the
/// same Image (through the emulator and the kernel's EFI stub), and `efi-kexec` with the
/// 254+6.12 UKI. From the kexec_file kernel through `kexec_file_load` (`kexec -s`): the raw 6.12
/// Image (no EFI), and the emulator Image (`emulator_blob` wrapped) with the same Image and
/// initrd as a bundle, and with the UKI. Returns the report (a Markdown table).
pub fn bench_kexec(efi_kexec: &Path, emulator_blob: &Path, payloads: &Payloads, runs: usize) -> Result<String> {
    let timeout = Duration::from_secs(300);
    let tools = ensure_kexec_tools()?;
    let image = payloads.kernel("6.1")?.image.clone();
    let initrd = std::fs::read(&payloads.initramfs).with_context(|| format!("reading {}", payloads.initramfs.display()))?;
    let next_image =
        || NextBoot { image: image.clone(), initrd: Some(initrd.clone()), append: Some(run::DEFAULT_APPEND.into()), extra: Vec::new(), before_load: None, files: Vec::new() };
    let uki = payloads.uki("254+6.12")?;
    // An empty command line lets the UKI use its own `.cmdline`.
    let next_uki = NextBoot { image: uki.path.clone(), initrd: None, append: Some(String::new()), extra: Vec::new(), before_load: None, files: Vec::new() };
    // Each configuration's first-kernel initramfs, built once. kexec-tools with `-i`: no
    // purgatory SHA-256 check of the segments at `kexec -e` (about 10 s under TCG), as efi-kexec
    // does none. Loading takes kexec-tools 80-100 s under TCG either way; this release cannot
    // use `kexec_file_load` (`-s`) on arm64.
    let unchecked = NextBoot { extra: vec!["-i".into()], ..next_image() };
    let debian = payloads.kernel("6.12")?.image.clone();
    // The signed door: kexec_file_load from the kexec_file first kernel, kexec-tools' `-s`, with
    // the raw 6.12 Image (no EFI) and through the emulator Image with the same Image and initrd
    // (a bundle) and with the UKI.
    let file_kernel = crate::payloads::file_kernel::ensure(&crate::payloads::apt::Apt::open(&crate::paths::cache_dir())?)?.image;
    let emulator = efi_emulator::abi::image::wrap(&std::fs::read(emulator_blob)?).map_err(anyhow::Error::msg)?;
    let emulator_file = std::env::temp_dir().join(format!("efi-emulator-bench-{}.efi", std::process::id()));
    std::fs::write(&emulator_file, &emulator)?;
    let image_612 = std::fs::read(&debian)?;
    let raw_file =
        NextBoot { image: debian.clone(), initrd: Some(initrd.clone()), append: Some(run::DEFAULT_APPEND.into()), extra: vec!["-s".into()], before_load: None, files: Vec::new() };
    let bundle = efi_emulator::abi::bundle::make(&image_612, Some(&initrd), None);
    let emulator_bundle =
        NextBoot { image: emulator_file.clone(), initrd: Some(bundle), append: Some(run::DEFAULT_APPEND.into()), extra: vec!["-s".into()], before_load: None, files: Vec::new() };
    let emulator_uki = NextBoot {
        image: emulator_file.clone(),
        initrd: Some(std::fs::read(&uki.path)?),
        append: Some(String::new()),
        extra: vec!["-s".into()],
        before_load: None,
        files: Vec::new(),
    };
    let first_612 = payloads.kernel("6.12")?.image.clone();
    let configs: Vec<(String, Vec<u8>, PathBuf)> = vec![
        (format!("kexec-tools {} `kexec -l -i` Image 6.1 + initrd (no EFI)", tools.version), stage_initramfs(&payloads.busybox, &tools, &unchecked)?, first_612.clone()),
        (
            "efi-kexec, Image 6.1 + initrd (emulator, EFI stub)".into(),
            crate::harness::kexec::stage_initramfs(&payloads.busybox, efi_kexec, STAGE, &next_image())?,
            first_612.clone(),
        ),
        (format!("efi-kexec, UKI {} (emulator, systemd-stub)", uki.name), crate::harness::kexec::stage_initramfs(&payloads.busybox, efi_kexec, STAGE, &next_uki)?, first_612),
        ("kexec-tools `kexec -s` Image 6.12 + initrd (kexec_file_load, no EFI)".into(), stage_initramfs(&payloads.busybox, &tools, &raw_file)?, file_kernel.clone()),
        ("kexec-tools `kexec -s` efi-emulator.efi + bundle of Image 6.12 and initrd".into(), stage_initramfs(&payloads.busybox, &tools, &emulator_bundle)?, file_kernel.clone()),
        (format!("kexec-tools `kexec -s` efi-emulator.efi + UKI {}", uki.name), stage_initramfs(&payloads.busybox, &tools, &emulator_uki)?, file_kernel),
    ];
    let _ = std::fs::remove_file(&emulator_file);
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        // Interleaved: every configuration once per round, so drift hits all alike.
        for ((name, initramfs, first), out) in configs.iter().zip(samples.iter_mut()) {
            let t = crate::harness::kexec::boot_first_kernel(first, EntryEl::El1, crate::harness::kexec::FirstBoot::Direct, initramfs, None, timeout, false)?;
            let s = sample(&t).with_context(|| name.clone())?;
            eprintln!("round {round}/{runs}: {name:<72} load {:>7} banner {:>6} stub {:>6} marker {:6.3} s", opt(s.load), opt(s.banner), opt(s.stub), s.marker);
            out.push(s);
        }
    }
    let (major, minor) = qemu::version()?;
    let mut report = format!(
        "QEMU {major}.{minor} virt, TCG, -cpu {FIRST_CPU}, -m 2G, -smp 2, EL1; first kernel Debian {} (`-kernel`; for `kexec -s` the kexec_file kernel built from linux-source {}), \
         next kernel Debian {} (`kexec -s`: {}); kexec-tools {} (Debian arm64); medians of {runs} (min–max), interleaved; seconds after the first kernel's `exec at uptime` line.\n\n",
        payloads.kernel("6.12")?.version,
        crate::payloads::file_kernel::SERIES,
        payloads.kernel("6.1")?.version,
        payloads.kernel("6.12")?.version,
        tools.version,
    );
    report.push_str("| configuration | load (guest time) | exec → emulator banner | exec → EFI stub | exec → marker |\n|---|---:|---:|---:|---:|\n");
    for ((name, _, _), s) in configs.iter().zip(&samples) {
        let col = |f: fn(&Sample) -> Option<f64>| cell(&s.iter().filter_map(f).collect::<Vec<_>>(), runs);
        report.push_str(&format!("| {name} | {} | {} | {} | {} |\n", col(|x| x.load), col(|x| x.banner), col(|x| x.stub), col(|x| Some(x.marker))));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(lines: &[(f64, &str)]) -> Transcript {
        Transcript {
            lines: lines.iter().map(|&(t, l)| (Duration::from_secs_f64(t), l.to_string())).collect(),
            exit: None,
            timed_out: false,
            elapsed: Duration::from_secs(10),
            first_byte: None,
            command: "qemu-system-aarch64 ...".into(),
        }
    }

    #[test]
    fn samples_are_relative_to_exec_and_only_after_it() {
        let t = transcript(&[
            (1.0, "EFI stub: a line before kexec does not count"),
            (1.5, "efi-kexec-test: first: load at uptime 0.75"),
            (2.0, "efi-kexec-test: first: exec at uptime 1.50"),
            (2.25, "[    0.004961] efi-emulator 0.1.0 (ABI 1), running at EL1"),
            (2.5, "EFI stub: Booting Linux Kernel..."),
            (4.0, MARKER),
            (4.5, MARKER),
        ]);
        let s = sample(&t).unwrap();
        assert_eq!(s, Sample { load: Some(0.75), banner: Some(0.25), stub: Some(0.5), marker: 2.0 });

        let plain = transcript(&[(3.0, "efi-kexec-test: first: exec at uptime 2.00"), (3.5, "Booting Linux"), (5.0, MARKER)]);
        assert_eq!(sample(&plain).unwrap(), Sample { load: None, banner: None, stub: None, marker: 2.0 });
    }

    #[test]
    fn a_boot_without_marker_or_exec_is_an_error() {
        let refused = transcript(&[(1.0, "efi-kexec-test: first: load refused; still running 6.12"), (1.1, MARKER)]);
        assert!(sample(&refused).unwrap_err().to_string().contains("load refused"));
        let hung = transcript(&[(1.0, "efi-kexec-test: first: exec at uptime 1.0"), (2.0, "Kernel panic")]);
        let e = sample(&hung).unwrap_err().to_string();
        assert!(e.contains("no userspace marker") && e.contains("Kernel panic"), "{e}");
    }

    #[test]
    fn depends_takes_first_alternatives_without_versions() {
        let s = "Package: kexec-tools\nDepends: libc6 (>= 2.34), zlib1g:any (>= 1:1.2.2.3), debconf (>= 0.5) | debconf-2.0\nPre-Depends: init-system-helpers\n";
        assert_eq!(depends(s), ["libc6", "zlib1g", "debconf", "init-system-helpers"]);
    }

    /// A minimal AArch64 ELF: one PT_LOAD over the whole file at `0x40_0000`, an optional
    /// PT_INTERP, and a PT_DYNAMIC with DT_NEEDED entries and DT_STRTAB.
    fn elf(interp: Option<&str>, needed: &[&str]) -> Vec<u8> {
        const VADDR: u64 = 0x40_0000;
        let phnum = 3u64;
        let interp_off = 64 + 56 * phnum;
        let interp_bytes = interp.map(|i| format!("{i}\0")).unwrap_or_default();
        let strtab_off = interp_off + interp_bytes.len() as u64;
        let mut strtab = vec![0u8];
        let mut names = Vec::new();
        for n in needed {
            names.push(strtab.len() as u64);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let dyn_off = (strtab_off + strtab.len() as u64).next_multiple_of(8);
        let mut dynamic: Vec<(u64, u64)> = names.iter().map(|&n| (1, n)).collect();
        dynamic.extend([(5, VADDR + strtab_off), (0, 0)]);
        let total = dyn_off + 16 * dynamic.len() as u64;

        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[18..20].copy_from_slice(&183u16.to_le_bytes());
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut phdr = |ty: u32, off: u64, size: u64| {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&ty.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&(VADDR + off).to_le_bytes());
            p[32..40].copy_from_slice(&size.to_le_bytes());
            p[40..48].copy_from_slice(&size.to_le_bytes());
            f.extend(p);
        };
        phdr(1, 0, total);
        // Without an interpreter, a PT_NULL header keeps the count the same.
        phdr(if interp.is_some() { 3 } else { 0 }, interp_off, interp_bytes.len() as u64);
        phdr(2, dyn_off, 16 * dynamic.len() as u64);
        f.extend(interp_bytes.as_bytes());
        f.extend(&strtab);
        f.resize(dyn_off as usize, 0);
        for (tag, val) in dynamic {
            f.extend(tag.to_le_bytes());
            f.extend(val.to_le_bytes());
        }
        f
    }

    #[test]
    fn parses_interp_and_needed() {
        let d = parse_dynamic(&elf(Some("/lib/ld-linux-aarch64.so.1"), &["libz.so.1", "libc.so.6"])).unwrap();
        assert_eq!(d, Dynamic { interp: Some("/lib/ld-linux-aarch64.so.1".into()), needed: vec!["libz.so.1".into(), "libc.so.6".into()] });
        assert_eq!(parse_dynamic(&elf(None, &[])).unwrap(), Dynamic::default());
        assert!(parse_dynamic(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn usr_lib_files_go_under_lib() {
        assert_eq!(initramfs_path("/lib/ld-linux-aarch64.so.1"), "lib/ld-linux-aarch64.so.1");
        assert_eq!(initramfs_path("/usr/lib/aarch64-linux-gnu/libz.so.1"), "lib/aarch64-linux-gnu/libz.so.1");
        assert_eq!(initramfs_path("/usr/libexec/x"), "usr/libexec/x");
    }

    /// Three fake packages: the binary, a libc6-like one with the loader behind a relative
    /// symlink, and a merged-/usr one whose library is an absolute symlink to a versioned file.
    #[test]
    fn finds_the_loader_and_libraries_transitively_through_symlinks() {
        use std::os::unix::fs::symlink;
        let root = std::env::temp_dir().join(format!("efi-emu-kexec-tools-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (bin, libc, zlib) = (root.join("bin-pkg"), root.join("libc-pkg"), root.join("zlib-pkg"));
        let ma = |t: &Path| t.join("lib").join(MULTIARCH);
        for d in [bin.join("sbin"), ma(&libc), root.join("zlib-pkg/usr/lib").join(MULTIARCH)] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(bin.join("sbin/kexec"), elf(Some("/lib/ld-linux-aarch64.so.1"), &["libz.so.1", "libc.so.6", "ld-linux-aarch64.so.1"])).unwrap();
        std::fs::write(ma(&libc).join("ld-linux-aarch64.so.1"), elf(None, &[])).unwrap();
        symlink(format!("{MULTIARCH}/ld-linux-aarch64.so.1"), libc.join("lib/ld-linux-aarch64.so.1")).unwrap();
        std::fs::write(ma(&libc).join("libc.so.6"), elf(Some("/lib/ld-linux-aarch64.so.1"), &["ld-linux-aarch64.so.1"])).unwrap();
        let zdir = zlib.join("usr/lib").join(MULTIARCH);
        std::fs::write(zdir.join("libz.so.1.2.13"), elf(None, &["libc.so.6", "libmissing.so.9"])).unwrap();
        symlink(format!("/usr/lib/{MULTIARCH}/libz.so.1.2.13"), zdir.join("libz.so.1")).unwrap();

        let trees = [bin.clone(), libc.clone(), zlib.clone()];
        let e = library_closure(&bin.join("sbin/kexec"), &trees).unwrap_err();
        assert!(format!("{e:#}").contains("libmissing.so.9"), "{e:#}");

        std::fs::write(zdir.join("libz.so.1.2.13"), elf(None, &["libc.so.6"])).unwrap();
        let libs = library_closure(&bin.join("sbin/kexec"), &trees).unwrap();
        let expect = [
            ("lib/ld-linux-aarch64.so.1".to_string(), ma(&libc).join("ld-linux-aarch64.so.1")),
            (format!("lib/{MULTIARCH}/libz.so.1"), zdir.join("libz.so.1.2.13")),
            (format!("lib/{MULTIARCH}/libc.so.6"), ma(&libc).join("libc.so.6")),
        ];
        assert_eq!(libs, expect);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn script_reports_like_efi_kexec_stages_and_uses_kexec_tools() {
        let next = NextBoot { image: "Image".into(), initrd: Some(vec![1]), append: Some("console=ttyAMA0 it's".into()), extra: vec![], before_load: None, files: Vec::new() };
        let s = stage_script(&next);
        for needle in [
            "mount -t tmpfs tmpfs /tmp",
            "p=\"efi-kexec-test: first\"",
            "echo \"$p: up: $(uname -r)",
            r#"/sbin/kexec -l /next.efi --initrd=/next.initrd --append='console=ttyAMA0 it'\''s'; then"#,
            "echo \"$p: load refused; still running $(uname -r)\"",
            "echo \"$p: exec at uptime $(cut -d' ' -f1 /proc/uptime)\"\n/sbin/kexec -e\n",
        ] {
            assert!(s.contains(needle), "{needle}\n---\n{s}");
        }
        // The exec line the bench times is the one the script prints.
        assert!(s.replace("$p", &format!("{}{STAGE}", crate::harness::kexec::STAGE_PREFIX)).contains(EXEC_LINE));
        let bare = stage_script(&NextBoot { image: "Image".into(), initrd: None, append: None, extra: vec![], before_load: None, files: Vec::new() });
        assert!(bare.contains("/sbin/kexec -l /next.efi; then"), "{bare}");
    }

    #[test]
    fn initramfs_holds_kexec_libraries_and_a_usr_lib_link() {
        let dir = std::env::temp_dir().join(format!("efi-emu-kexec-tools-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str| {
            let p = dir.join(name);
            std::fs::write(&p, name).unwrap();
            p
        };
        let tools = KexecTools {
            kexec: file("kexec"),
            version: "1:2.0.25-3".into(),
            libs: vec![("lib/ld-linux-aarch64.so.1".into(), file("ld")), (format!("lib/{MULTIARCH}/libc.so.6"), file("libc"))],
            packages: vec![],
        };
        let next = NextBoot { image: file("Image"), initrd: Some(b"initrd".to_vec()), append: None, extra: vec![], before_load: None, files: Vec::new() };
        let data = stage_initramfs(&file("busybox"), &tools, &next).unwrap();
        let names = [format!("lib/{MULTIARCH}\0"), format!("lib/{MULTIARCH}/libc.so.6\0")];
        for needle in
            [&b"sbin/kexec\0"[..], b"lib/ld-linux-aarch64.so.1\0", names[0].as_bytes(), names[1].as_bytes(), b"usr/lib\0", b"../lib", b"tmp\0", b"next.initrd\0", b"dev/console\0"]
        {
            assert!(data.windows(needle.len()).any(|w| w == needle), "{}", String::from_utf8_lossy(needle));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One real round of [`bench_kexec`] (six QEMU boots, minutes):
    /// `cargo test -p xtask --lib payloads::kexec_tools::tests::bench_smoke -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_smoke() -> Result<()> {
        let payloads = crate::payloads::ensure()?;
        let blob = crate::build::Blob::load(&paths::out_dir().join("efi-emulator.bin"))?;
        let efi_kexec = crate::harness::kexec::build_efi_kexec(&blob)?;
        let tools = ensure_kexec_tools()?;
        println!("kexec-tools {} from {:?}", tools.version, tools.packages);
        for (path, host) in &tools.libs {
            println!("  /{path} <- {}", host.display());
        }
        println!("{}", bench_kexec(&efi_kexec, &blob.bin, &payloads, 1)?);
        Ok(())
    }
}
