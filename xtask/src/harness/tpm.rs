//! A TPM 2.0 for QEMU's `virt`: Debian's `swtpm`, reached through QEMU's `tpm-tis-device` (the
//! TIS over MMIO on the platform bus, the only TPM `virt` offers besides I2C). Each instance has
//! a state directory of its own, so PCRs start from their reset values, and QEMU's first command
//! leaves it waiting for TPM2_Startup as a real TPM is at power-on.

use crate::paths;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Swtpm {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Swtpm {
    /// Starts swtpm with a fresh state; it ends when QEMU closes its control socket.
    pub fn start() -> Result<Swtpm> {
        Self::start_with_banks(None)
    }

    /// [`Swtpm::start`], with only `banks` (`sha256`, `sha1,sha256`, ...) active: manufactured
    /// first by `swtpm_setup`. Without, libtpms's default: all four banks.
    pub fn start_with_banks(banks: Option<&str>) -> Result<Swtpm> {
        let dir = paths::out_dir().join("runs").join(format!("swtpm-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir)?;
        if let Some(banks) = banks {
            let mut setup = Command::new("swtpm_setup");
            setup.args(["--tpm2", "--overwrite", "--pcr-banks", banks, "--tpmstate"]).arg(&dir);
            crate::process::output_checked(&mut setup).context("swtpm_setup (install swtpm-tools: `cargo xtask setup`)")?;
        }
        let socket = dir.join("ctrl.sock");
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--terminate", "--tpmstate"])
            .arg(format!("dir={}", dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting swtpm (install it: `cargo xtask setup`)")?;
        let started = Instant::now();
        while !socket.exists() {
            ensure!(started.elapsed() < Duration::from_secs(10), "swtpm made no control socket at {} within 10 s", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Swtpm { child, dir, socket })
    }

    /// QEMU's arguments for this TPM.
    pub fn qemu_args(&self) -> Vec<String> {
        qemu_args(&self.socket)
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Ends the TPM now, as a TPM that stops answering: QEMU's backend then fails every
    /// command.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The installed swtpm's version line.
    pub fn version() -> Result<String> {
        let out = Command::new("swtpm").arg("--version").output().context("running swtpm --version")?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string())
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// QEMU's arguments for a `tpm-tis-device` on the swtpm whose control socket is `socket`.
pub fn qemu_args(socket: &Path) -> Vec<String> {
    ["-chardev", &format!("socket,id=tpmchar,path={}", socket.display()), "-tpmdev", "emulator,id=tpm0,chardev=tpmchar", "-device", "tpm-tis-device,tpmdev=tpm0"]
        .map(String::from)
        .to_vec()
}

/// Where QEMU's `virt` puts the TIS: the first device on its platform bus, 5 localities.
pub const VIRT_TIS: (u64, u64) = (0x0c00_0000, 0x5000);

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
