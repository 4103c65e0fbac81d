//! Debian's own arm64 `kexec-tools`, the baseline for `efi-kexec`: it loads a raw `Image` through
//! `kexec_load` with its purgatory and enters it without EFI. Here: the package, and a first
//! stage's initramfs whose `/init` kexecs through it (the bench times it beside `efi-kexec`).
//!
//! Debian's `/sbin/kexec` is dynamically linked, so the loader and every shared library it
//! needs come from their Debian packages too, through the same private arm64 apt state as the
//! payloads; which files are needed is read from the ELF files themselves
//! ([`crate::payloads::elf_dynamic`]).

use crate::paths;
use crate::payloads::apt::{self, Apt};
use crate::payloads::elf_dynamic::library_closure;
use crate::payloads::kexec_stage::{self, NextBoot};
use crate::payloads::packages::unpack;
use anyhow::{ensure, Context, Result};
use efi_emulator_loader::cpio::Cpio;
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The stage name the `/init` reports with, as [`kexec_stage::stage_script`]'s first stage.
pub const STAGE: &str = "first";
/// The lines `/init` prints right before `kexec -e` (or `efi-kexec exec`) and before the load.
pub const EXEC_LINE: &str = "efi-kexec-test: first: exec at uptime";
pub const LOAD_LINE: &str = "efi-kexec-test: first: load at uptime";

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
    let dir = unpack(&apt, "kexec-tools", &version)?;
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
        trees.push(unpack(&apt, &name, &v)?);
        queue.extend(depends(&stanza));
        packages.push((name, v));
    }
    let libs = library_closure(&kexec, &trees).with_context(|| format!("the libraries of kexec-tools {version}"))?;
    Ok(KexecTools { kexec, version, libs, packages })
}

/// The `/init` of the baseline: the same reports as [`kexec_stage::stage_script`]'s first stage,
/// but Debian's `kexec -l` (the raw Image, entered without EFI) and `kexec -e`.
fn stage_script(next: &NextBoot) -> String {
    let mut load = vec!["/sbin/kexec".to_string(), "-l".into(), "/next.efi".into()];
    if next.initrd.is_some() {
        load.push("--initrd=/next.initrd".into());
    }
    if let Some(a) = &next.append {
        load.push(format!("--append={}", kexec_stage::quote(a)));
    }
    load.extend(next.extra.iter().cloned());
    // kexec-tools unpacks into /tmp: the script mounts a tmpfs there.
    kexec_stage::script(STAGE, "", &load.join(" "), "/sbin/kexec -e", next.before_load.as_deref().unwrap_or(""))
}

/// An initramfs whose `/init` kexecs `next` through Debian's kexec-tools.
pub fn stage_initramfs(busybox: &Path, tools: &KexecTools, next: &NextBoot) -> Result<Vec<u8>> {
    Ok(tools_cpio(busybox, tools, &stage_script(next), next)?.finish())
}

/// A stage's archive (see [`kexec_stage::stage_cpio`]) with `script` as `/init` and
/// kexec-tools' `/sbin/kexec` with the libraries it needs.
pub fn tools_cpio(busybox: &Path, tools: &KexecTools, script: &str, next: &NextBoot) -> Result<Cpio> {
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
    let mut c = kexec_stage::stage_cpio(busybox, &dirs.into_iter().collect::<Vec<_>>(), script, next)?;
    // /usr/lib/... resolves like /lib/..., for binaries built with merged-/usr paths.
    c.symlink("usr/lib", "../lib");
    c.file("sbin/kexec", 0o755, &read(&tools.kexec)?);
    for (path, host) in &tools.libs {
        c.file(path, 0o755, &read(host)?);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::elf_dynamic::MULTIARCH;

    #[test]
    fn depends_takes_first_alternatives_without_versions() {
        let s = "Package: kexec-tools\nDepends: libc6 (>= 2.34), zlib1g:any (>= 1:1.2.2.3), debconf (>= 0.5) | debconf-2.0\nPre-Depends: init-system-helpers\n";
        assert_eq!(depends(s), ["libc6", "zlib1g", "debconf", "init-system-helpers"]);
    }

    #[test]
    fn script_reports_like_efi_kexec_stages_and_uses_kexec_tools() {
        let next = NextBoot {
            image: "Image".into(),
            initrd: Some(vec![1]),
            append: Some("console=ttyAMA0 it's".into()),
            extra: vec![],
            before_load: None,
            before_exec: None,
            files: Vec::new(),
        };
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
        assert!(s.replace("$p", &format!("{}{STAGE}", kexec_stage::STAGE_PREFIX)).contains(EXEC_LINE));
        let bare = stage_script(&NextBoot { image: "Image".into(), initrd: None, append: None, extra: vec![], before_load: None, before_exec: None, files: Vec::new() });
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
        let next = NextBoot { image: file("Image"), initrd: Some(b"initrd".to_vec()), append: None, extra: vec![], before_load: None, before_exec: None, files: Vec::new() };
        let data = stage_initramfs(&file("busybox"), &tools, &next).unwrap();
        let names = [format!("lib/{MULTIARCH}\0"), format!("lib/{MULTIARCH}/libc.so.6\0")];
        for needle in
            [&b"sbin/kexec\0"[..], b"lib/ld-linux-aarch64.so.1\0", names[0].as_bytes(), names[1].as_bytes(), b"usr/lib\0", b"../lib", b"tmp\0", b"next.initrd\0", b"dev/console\0"]
        {
            assert!(data.windows(needle.len()).any(|w| w == needle), "{}", String::from_utf8_lossy(needle));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
