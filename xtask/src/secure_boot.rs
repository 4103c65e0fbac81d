//! Secure Boot under EDK2 for the tests: Debian's `qemu-efi-aarch64` ships a variable store
//! with Secure Boot on and one test certificate enrolled as PK, KEK and db
//! (`AAVMF_VARS.snakeoil.fd`), and that certificate's key, protected by the passphrase
//! `snakeoil` (its README.Debian). `sbsign` signs PE files with it; a kernel booted so locks
//! itself down and loads the certificate into its platform keyring.

use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SNAKEOIL_KEY: &str = "/usr/share/qemu-efi-aarch64/PkKek-1-snakeoil.key";
pub const SNAKEOIL_CERT: &str = "/usr/share/qemu-efi-aarch64/PkKek-1-snakeoil.pem";
pub const SNAKEOIL_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd";
const PASSPHRASE: &str = "pass:snakeoil";

/// A working directory with the key without its passphrase (what `sbsign` takes) and a
/// writable copy of the Secure Boot variable store.
pub struct Snakeoil {
    pub dir: PathBuf,
    pub key: PathBuf,
    pub vars: PathBuf,
}

impl Snakeoil {
    pub fn new(dir: &Path) -> Result<Snakeoil> {
        std::fs::create_dir_all(dir)?;
        let key = dir.join("snakeoil.key");
        crate::run_checked(Command::new("openssl").args(["rsa", "-passin", PASSPHRASE, "-in", SNAKEOIL_KEY, "-out"]).arg(&key))
            .with_context(|| format!("decrypting {SNAKEOIL_KEY} (install qemu-efi-aarch64 and openssl: `cargo xtask setup`)"))?;
        let vars = dir.join("AAVMF_VARS.snakeoil.fd");
        std::fs::copy(SNAKEOIL_VARS, &vars).with_context(|| format!("copying {SNAKEOIL_VARS}"))?;
        Ok(Snakeoil { dir: dir.to_path_buf(), key, vars })
    }

    /// `input` signed with the test key, as `output`. An image that is signed already (Debian's
    /// kernels are) loses its signatures first: the kernel checks only the first one.
    pub fn sign(&self, input: &Path, output: &Path) -> Result<()> {
        let unsigned = self.dir.join("unsigned.efi");
        std::fs::copy(input, &unsigned)?;
        // sbattach fails on an image without signatures; that is fine.
        let _ = Command::new("sbattach").arg("--remove").arg(&unsigned).output();
        crate::run_checked(Command::new("sbsign").arg("--key").arg(&self.key).args(["--cert", SNAKEOIL_CERT, "--output"]).arg(output).arg(&unsigned))
            .with_context(|| format!("signing {} (install sbsigntool: `cargo xtask setup`)", input.display()))?;
        let check = Command::new("sbverify").args(["--cert", SNAKEOIL_CERT]).arg(output).output().context("running sbverify")?;
        ensure!(check.status.success(), "sbverify does not accept {}: {}", output.display(), String::from_utf8_lossy(&check.stderr));
        Ok(())
    }
}
