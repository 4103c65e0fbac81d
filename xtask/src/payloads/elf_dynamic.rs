//! The shared libraries a dynamically linked arm64 binary needs: `PT_INTERP` and `DT_NEEDED`
//! read from the ELF files themselves, each found in unpacked Debian packages (symlinks resolved
//! as they would be on the target), and where each goes in an initramfs.

use anyhow::{ensure, Context, Result};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

/// Debian's multiarch directory for arm64 libraries.
pub const MULTIARCH: &str = "aarch64-linux-gnu";

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
pub fn library_closure(binary: &Path, trees: &[PathBuf]) -> Result<Vec<(String, PathBuf)>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
