//! EFI zboot kernels (`vmlinuz.efi`) built from Debian's `linux-source-6.1` and
//! `linux-source-6.12` packages: Debian does not ship zboot. A minimal configuration
//! (tinyconfig plus EFI zboot, PL011 console, initramfs, devtmpfs), gzip for 6.1 and zstd for
//! 6.12, cross-compiled with `gcc-aarch64-linux-gnu`; cached by source version and config.

use crate::paths;
use crate::payloads::apt::{self, Apt};
use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const CROSS_COMPILE: &str = "aarch64-linux-gnu-";

/// Options added to `tinyconfig`; each must survive `olddefconfig`.
fn fragment(series: &str) -> Vec<&'static str> {
    let mut f = vec![
        "CONFIG_EFI=y",
        "CONFIG_EFI_STUB=y",
        "CONFIG_EFI_ZBOOT=y",
        "CONFIG_BLK_DEV_INITRD=y",
        "CONFIG_DEVTMPFS=y",
        "CONFIG_DEVTMPFS_MOUNT=y",
        "CONFIG_PROC_FS=y",
        "CONFIG_SYSFS=y",
        "CONFIG_TTY=y",
        "CONFIG_PRINTK=y",
        "CONFIG_SERIAL_AMBA_PL011=y",
        "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y",
        "CONFIG_BINFMT_ELF=y",
        "CONFIG_BINFMT_SCRIPT=y",
        "CONFIG_SMP=y",
    ];
    f.push(if series == "6.1" { "CONFIG_KERNEL_GZIP=y" } else { "CONFIG_KERNEL_ZSTD=y" });
    f
}

/// A built zboot kernel.
#[derive(Clone, Debug)]
pub struct Zboot {
    pub series: &'static str,
    pub source_version: String,
    pub image: PathBuf,
    /// "gzip" or "zstd".
    pub compression: &'static str,
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    crate::process::run_checked(cmd).with_context(|| what.to_string())
}

/// The source tree of `linux-source-<series>` and its version, unpacked once under the cache's
/// `zboot/src-<series>-<version>` (the zboot kernels and `file_kernel` share it).
pub(crate) fn source_tree(apt: &Apt, series: &str) -> Result<(PathBuf, String)> {
    let name = format!("linux-source-{series}");
    let version = apt.show(&name)?.iter().filter_map(|s| apt::field(s, "Version").map(str::to_string)).next().with_context(|| format!("no {name}"))?;
    let dir = paths::cache_dir().join("zboot").join(format!("src-{series}-{version}"));
    let done = dir.join(".unpacked");
    if done.exists() {
        return Ok((dir, version));
    }
    let file = apt.resolve(&name, &version)?;
    let deb = apt.fetch(&file, &paths::cache_dir().join("payloads/debs"))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("zboot: unpacking {name} {version}");
    let pkg = dir.join("pkg");
    apt::extract(&deb, &pkg)?;
    let tarball = std::fs::read_dir(pkg.join("usr/src"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "xz"))
        .with_context(|| format!("{name} holds no source tarball"))?;
    run(Command::new("tar").arg("-xJf").arg(&tarball).arg("-C").arg(&dir).arg("--strip-components=1"), "unpacking the kernel source")?;
    std::fs::remove_dir_all(&pkg)?;
    std::fs::write(&done, "")?;
    Ok((dir, version))
}

/// `make` (arm64, cross-compiled, out of tree in `out`) with a one-line progress display of the
/// kbuild steps, prefixed with `label`.
pub(crate) fn make(src: &Path, out: &Path, targets: &[&str], label: &str) -> Result<()> {
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).to_string();
    let mut child = Command::new("make")
        .current_dir(src)
        .args(["ARCH=arm64", &format!("CROSS_COMPILE={CROSS_COMPILE}"), &format!("O={}", out.display()), "-j", &jobs])
        .args(targets)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running make (install make and gcc-aarch64-linux-gnu: `cargo xtask setup`)")?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {prefix} {pos} steps {wide_msg}").unwrap());
    bar.set_prefix(label.to_string());
    let err = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).collect::<Vec<_>>());
    let mut steps = 0u64;
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        steps += 1;
        bar.set_position(steps);
        bar.set_message(line.trim().to_string());
        if bar.is_hidden() && steps.is_multiple_of(200) {
            eprintln!("{label}: {steps} steps ({})", line.trim());
        }
    }
    let status = child.wait()?;
    bar.finish_and_clear();
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        bail!("{label}: make {} failed: {status}\n{}", targets.join(" "), errors.iter().rev().take(30).rev().cloned().collect::<Vec<_>>().join("\n"));
    }
    eprintln!("{label}: make {} done ({steps} steps)", targets.join(" "));
    Ok(())
}

/// The cache key of a kernel build: the source version, the config fragment and the cross
/// compiler's version (12 hex digits).
pub(crate) fn build_key(version: &str, fragment: &[&str]) -> Result<String> {
    let gcc = crate::process::output_checked(Command::new(format!("{CROSS_COMPILE}gcc")).arg("--version")).context("no aarch64-linux-gnu-gcc: `cargo xtask setup`")?;
    let mut key = Sha256::new();
    key.update(version.as_bytes());
    key.update(fragment.join("\n").as_bytes());
    key.update(gcc.lines().next().unwrap_or("").as_bytes());
    Ok(key.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect())
}

/// `tinyconfig` plus `fragment`, then `olddefconfig`; fails naming every fragment line that did
/// not survive (a dependency is missing, or the option does not exist in this source).
pub(crate) fn configure(src: &Path, out: &Path, fragment: &[&str], label: &str) -> Result<()> {
    make(src, out, &["tinyconfig"], label)?;
    let config = out.join(".config");
    let mut text = std::fs::read_to_string(&config)?;
    for line in fragment {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&config, text)?;
    make(src, out, &["olddefconfig"], label)?;
    let final_config = std::fs::read_to_string(&config)?;
    let lost: Vec<String> =
        fragment.iter().filter(|line| !final_config.lines().any(|l| l == **line)).map(|line| format!("{line} ({})", config_state(&final_config, line))).collect();
    ensure!(lost.is_empty(), "{label}: did not survive olddefconfig: {}", lost.join("; "));
    Ok(())
}

/// What a `.config` says about the option of a fragment line, for error messages.
fn config_state(config: &str, line: &str) -> String {
    let name = line.split('=').next().unwrap_or(line);
    config
        .lines()
        .find(|l| l.starts_with(&format!("{name}=")) || *l == format!("# {name} is not set"))
        .map_or_else(|| format!("{name} is absent: unmet dependencies, or no such option"), |l| format!("the result has `{l}`"))
}

/// Builds (once per source version and config) the zboot kernel of `series`.
pub fn ensure(apt: &Apt, series: &'static str) -> Result<Zboot> {
    let compression = if series == "6.1" { "gzip" } else { "zstd" };
    let (src, version) = source_tree(apt, series)?;
    let key = build_key(&version, &fragment(series))?;
    let out = paths::cache_dir().join("zboot").join(format!("build-{series}-{key}"));
    let image = out.join("arch/arm64/boot/vmlinuz.efi");
    if image.exists() {
        return Ok(Zboot { series, source_version: version, image, compression });
    }
    std::fs::create_dir_all(&out)?;
    let label = format!("zboot {series}");
    configure(&src, &out, &fragment(series), &label)?;
    make(&src, &out, &["vmlinuz.efi"], &label)?;
    ensure!(image.exists(), "{label}: no arch/arm64/boot/vmlinuz.efi after the build");
    Ok(Zboot { series, source_version: version, image, compression })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fragments_pick_the_compression() {
        assert!(super::fragment("6.1").contains(&"CONFIG_KERNEL_GZIP=y"));
        assert!(super::fragment("6.12").contains(&"CONFIG_KERNEL_ZSTD=y"));
        assert!(super::fragment("6.12").contains(&"CONFIG_EFI_ZBOOT=y"));
    }

    #[test]
    fn config_state_says_what_became_of_a_line() {
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n";
        assert_eq!(super::config_state(config, "CONFIG_B=y"), "the result has `# CONFIG_B is not set`");
        assert_eq!(super::config_state(config, "CONFIG_C=y"), "the result has `CONFIG_C=m`");
        assert!(super::config_state(config, "CONFIG_AB=y").starts_with("CONFIG_AB is absent"));
    }
}
