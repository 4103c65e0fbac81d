//! Debian packages by name, for arm64, through a private apt state under the cache: the host's
//! apt configuration (architectures, suites, locks) is never touched. The mirror is the one the
//! host's own apt sources use.

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// The suites most payloads come from.
pub const SUITES: [&str; 2] = ["bookworm", "bookworm-backports"];

/// One private apt state: an architecture and the suites it sees.
#[derive(Clone, Copy, Debug)]
pub struct Archive {
    /// The state's folder under the cache (`apt`, `apt-trixie`, ...).
    pub state: &'static str,
    pub arch: &'static str,
    pub suites: &'static [&'static str],
}

/// The kernels, busybox, systemd-boot-efi 252/254, GRUB 2.12 and shim: arm64 from bookworm and
/// bookworm-backports.
pub const BOOKWORM: Archive = Archive { state: "apt", arch: "arm64", suites: &SUITES };
/// systemd-boot-efi 257, which only trixie has. A state of its own, so that adding it never
/// re-resolves what the bookworm state pins.
pub const TRIXIE: Archive = Archive { state: "apt-trixie", arch: "arm64", suites: &["trixie"] };
/// Tools that run on this (amd64 bookworm) host, such as `grub-mkimage` of the same GRUB
/// release as the arm64 modules.
pub const HOST_TOOLS: Archive = Archive { state: "apt-host", arch: "amd64", suites: &SUITES };

/// A private apt state.
pub struct Apt {
    root: PathBuf,
    archive: Archive,
}

/// One package file apt would download.
#[derive(Debug, Clone)]
pub struct PackageFile {
    pub name: String,
    pub version: String,
    pub url: String,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
}

/// The Debian mirror URI from the host's apt sources (deb822 `.sources` or one-line lists).
pub fn host_mirror() -> Result<String> {
    let mut texts = Vec::new();
    for dir in ["/etc/apt/sources.list.d"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                if p.extension().is_some_and(|e| e == "sources" || e == "list") {
                    texts.push(std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
    }
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    for text in &texts {
        // deb822 stanzas.
        for stanza in text.split("\n\n") {
            let field = |name: &str| stanza.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
            if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) {
                if suites.split_whitespace().any(|s| !s.ends_with("-security")) && field("Types:").is_some_and(|t| t.contains("deb")) {
                    if let Some(uri) = uris.split_whitespace().find(|u| u.contains("debian") && !u.contains("security")) {
                        return Ok(uri.trim_end_matches('/').to_string());
                    }
                }
            }
        }
        // One-line entries.
        for line in text.lines().map(str::trim).filter(|l| l.starts_with("deb ")) {
            let words: Vec<_> = line.split_whitespace().filter(|w| !w.starts_with('[') && !w.ends_with(']')).collect();
            if let (Some(uri), Some(suite)) = (words.get(1), words.get(2)) {
                if uri.contains("debian") && !suite.ends_with("-security") {
                    return Ok(uri.trim_end_matches('/').to_string());
                }
            }
        }
    }
    bail!("no Debian mirror in /etc/apt/sources.list(.d): payloads come from Debian's archive through apt")
}

impl Apt {
    /// The bookworm arm64 state ([`BOOKWORM`]).
    pub fn open(cache: &Path) -> Result<Apt> {
        Apt::open_archive(cache, BOOKWORM)
    }

    /// Prepares (once) and refreshes (when older than a day) a private state.
    pub fn open_archive(cache: &Path, archive: Archive) -> Result<Apt> {
        ensure!(Path::new("/usr/bin/apt-get").exists(), "payloads are Debian packages fetched with apt; this host has no apt-get (a Debian or Ubuntu host is needed)");
        ensure!(Path::new(KEYRING).exists(), "{KEYRING} is missing: install the debian-archive-keyring package");
        let root = cache.join(archive.state);
        for d in ["etc/sources.list.d", "etc/preferences.d", "etc/apt.conf.d", "etc/trusted.gpg.d", "state/lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let status = root.join("state/status");
        if !status.exists() {
            std::fs::write(&status, "")?;
        }
        let mirror = host_mirror()?;
        let arch = archive.arch;
        let sources: String = archive.suites.iter().map(|s| format!("deb [arch={arch} signed-by={KEYRING}] {mirror} {s} main\n")).collect();
        std::fs::write(root.join("etc/sources.list"), sources)?;
        let apt = Apt { root, archive };
        let stamp = apt.root.join("state/updated");
        let fresh = std::fs::metadata(&stamp).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() < 86_400));
        if !fresh {
            eprintln!("apt: updating the {arch} package lists ({})", archive.suites.join(", "));
            let out = apt.command("apt-get").args(["-q", "update"]).output().context("running apt-get update")?;
            if out.status.success() {
                std::fs::write(&stamp, "")?;
            } else if stamp.exists() {
                eprintln!("apt: warning: update failed, using the package lists from the last update:\n{}", String::from_utf8_lossy(&out.stderr));
            } else {
                bail!("apt-get update for {arch} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            }
        }
        Ok(apt)
    }

    /// The architecture this state's packages are for.
    pub fn arch(&self) -> &'static str {
        self.archive.arch
    }

    fn command(&self, program: &str) -> Command {
        let r = |p: &str| self.root.join(p).display().to_string();
        let mut cmd = Command::new(program);
        for opt in [
            format!("Dir::Etc={}", r("etc")),
            format!("Dir::Etc::sourcelist={}", r("etc/sources.list")),
            format!("Dir::Etc::sourceparts={}", r("etc/sources.list.d")),
            format!("Dir::State={}", r("state")),
            format!("Dir::State::status={}", r("state/status")),
            format!("Dir::Cache={}", r("cache")),
            format!("APT::Architecture={}", self.archive.arch),
            format!("APT::Architectures={}", self.archive.arch),
            "Acquire::Languages=none".into(),
            "Debug::NoLocking=true".into(),
        ] {
            cmd.arg("-o").arg(opt);
        }
        cmd.env("LC_ALL", "C");
        cmd
    }

    /// `apt-cache show NAME`: every version's stanza.
    pub fn show(&self, name: &str) -> Result<Vec<String>> {
        let out = crate::process::output_checked(self.command("apt-cache").args(["show", name])).with_context(|| format!("apt-cache show {name}"))?;
        Ok(out.split("\n\n").filter(|s| !s.trim().is_empty()).map(str::to_string).collect())
    }

    /// The download of `name=version`, as apt resolves it.
    pub fn resolve(&self, name: &str, version: &str) -> Result<PackageFile> {
        let spec = format!("{name}={version}");
        let out =
            crate::process::output_checked(self.command("apt-get").args(["download", "--print-uris", &spec])).with_context(|| format!("apt-get download --print-uris {spec}"))?;
        let line = out.lines().find(|l| l.starts_with('\'')).with_context(|| format!("apt gave no URI for {spec}"))?;
        let words: Vec<_> = line.split_whitespace().collect();
        ensure!(words.len() >= 4, "unexpected apt output: {line}");
        Ok(PackageFile {
            name: name.to_string(),
            version: version.to_string(),
            url: words[0].trim_matches('\'').to_string(),
            file_name: words[1].to_string(),
            size: words[2].parse().context("package size")?,
            sha256: words[3].strip_prefix("SHA256:").with_context(|| format!("no SHA256 in: {line}"))?.to_string(),
        })
    }

    /// Downloads a package file into `dir` (once), with a progress bar, checking its SHA-256.
    pub fn fetch(&self, pkg: &PackageFile, dir: &Path) -> Result<PathBuf> {
        let dest = dir.join(&pkg.file_name);
        if dest.exists() {
            return Ok(dest);
        }
        std::fs::create_dir_all(dir)?;
        let partial = dir.join(format!("{}.partial", pkg.file_name));
        if pkg.url.starts_with("http://") {
            download(&pkg.url, &partial, pkg.size, &pkg.file_name)?;
        } else {
            // Our HTTP client speaks plain HTTP only; let apt fetch other schemes itself.
            eprintln!("apt: downloading {} ({} MB)", pkg.file_name, pkg.size / 1_000_000);
            let spec = format!("{}={}", pkg.name, pkg.version);
            crate::process::run_checked(self.command("apt-get").current_dir(dir).args(["-q", "download", &spec]))?;
            let fetched = std::fs::read_dir(dir)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".deb") && n.starts_with(&format!("{}_", pkg.name))));
            std::fs::rename(fetched.context("apt-get download produced no .deb")?, &partial)?;
        }
        let digest = hex(&Sha256::digest(std::fs::read(&partial)?));
        ensure!(digest == pkg.sha256, "{}: SHA-256 {digest} does not match the archive's {}", pkg.file_name, pkg.sha256);
        std::fs::rename(&partial, &dest)?;
        Ok(dest)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn download(url: &str, dest: &Path, size: u64, label: &str) -> Result<()> {
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(indicatif::ProgressStyle::with_template("{prefix:>32} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}").unwrap().progress_chars("=> "));
    bar.set_prefix(label.chars().take(32).collect::<String>());
    if bar.is_hidden() {
        eprintln!("downloading {label} ({} MB)", size / 1_000_000);
    }
    let mut response = ureq::get(url).call().with_context(|| format!("GET {url}"))?;
    let mut reader = response.body_mut().with_config().limit(size + 1).reader();
    let mut file = std::fs::File::create(dest)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("reading {url}"))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        bar.inc(n as u64);
    }
    bar.finish();
    Ok(())
}

/// The value of `Field:` in one `apt-cache show` stanza.
pub fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

/// Extracts a `.deb` with `dpkg-deb` into `dir`.
pub fn extract(deb: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::process::run_checked(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir)).with_context(|| format!("extracting {}", deb.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_a_stanza() {
        let s = "Package: linux-image-arm64\nVersion: 6.1.1-1\nDepends: linux-image-6.1.0-1-arm64 (= 6.1.1-1)\n";
        assert_eq!(field(s, "Version"), Some("6.1.1-1"));
        assert_eq!(field(s, "Depends"), Some("linux-image-6.1.0-1-arm64 (= 6.1.1-1)"));
        assert_eq!(field(s, "Missing"), None);
    }
}
