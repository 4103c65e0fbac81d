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
/// Secure Boot on with Microsoft's keys: their KEK, the Windows and UEFI CAs in db, their dbx.
pub const MS_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.ms.fd";
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
        crate::process::run_checked(Command::new("openssl").args(["rsa", "-passin", PASSPHRASE, "-in", SNAKEOIL_KEY, "-out"]).arg(&key))
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
        crate::process::run_checked(Command::new("sbsign").arg("--key").arg(&self.key).args(["--cert", SNAKEOIL_CERT, "--output"]).arg(output).arg(&unsigned))
            .with_context(|| format!("signing {} (install sbsigntool: `cargo xtask setup`)", input.display()))?;
        let check = Command::new("sbverify").args(["--cert", SNAKEOIL_CERT]).arg(output).output().context("running sbverify")?;
        ensure!(check.status.success(), "sbverify does not accept {}: {}", output.display(), String::from_utf8_lossy(&check.stderr));
        Ok(())
    }

    /// `input` with one more signature, by `key` and `cert`, after those it has (sbsign
    /// appends to a signed image).
    pub fn add_signature(key: &Path, cert: &Path, input: &Path, output: &Path) -> Result<()> {
        crate::process::run_checked(Command::new("sbsign").arg("--key").arg(key).arg("--cert").arg(cert).arg("--output").arg(output).arg(input))
            .with_context(|| format!("signing {}", input.display()))
    }

    /// A signer no store knows: a self-signed RSA-2048 certificate made now, (key, cert).
    pub fn unknown_signer(&self) -> Result<(PathBuf, PathBuf)> {
        let (key, cert) = (self.dir.join("unknown.key"), self.dir.join("unknown.pem"));
        crate::process::run_checked(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=Unknown Test Signer", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        )
        .context("making a certificate with openssl")?;
        Ok((key, cert))
    }

    /// Debian's store with Microsoft's keys (Secure Boot on), the test certificate added to db
    /// and the SHA-256 Authenticode `dbx_hashes` (hex) to dbx, written by virt-fw-vars
    /// (PyPI's virt-firmware) as `name` in the working directory.
    pub fn microsoft_store_with_test_key(&self, name: &str, dbx_hashes: &[String]) -> Result<PathBuf> {
        let out = self.dir.join(name);
        let mut cmd = Command::new("virt-fw-vars");
        cmd.args(["-i", MS_VARS, "-o"]).arg(&out).args(["--add-db", OWNER, SNAKEOIL_CERT]);
        for h in dbx_hashes {
            cmd.args(["--add-dbx-hash", OWNER, h]);
        }
        crate::process::run_checked(&mut cmd).context("writing a variable store (install virt-firmware: `cargo xtask setup`)")?;
        Ok(out)
    }
}

/// The owner GUID of the entries the tests add to db and dbx.
const OWNER: &str = "4d5a8f2e-7c1b-4e0a-9b3d-6f1e2c8a5b47";

/// What `secure-boot-probe` printed: each file's LoadImage status, by name.
pub fn probe_verdicts(t: &crate::harness::qemu::Transcript) -> std::collections::BTreeMap<String, String> {
    t.lines.iter().filter_map(|(_, l)| l.split_once("secure-boot-probe: verdict ")?.1.rsplit_once(": ").map(|(n, s)| (n.to_string(), s.trim().to_string()))).collect()
}

/// EDK2 with `vars` starting `probe` from an ESP (as `\EFI\BOOT\BOOTAA64.EFI`) with `corpus`
/// beside it (`\corpus.cpio`): the oracle's verdicts.
pub fn edk2_verdicts(vars: &Path, probe: &[u8], corpus: &[u8], timeout: std::time::Duration) -> Result<crate::harness::qemu::Transcript> {
    let dir = vars.with_extension("run");
    std::fs::create_dir_all(&dir)?;
    let files: [(&str, &[u8]); 2] = [("EFI/BOOT/BOOTAA64.EFI", probe), ("corpus.cpio", corpus)];
    let size = (probe.len() + corpus.len() + (16 << 20)).next_multiple_of(1 << 20);
    let disk = dir.join("esp.img");
    std::fs::write(&disk, esp_image::gpt_disk(&esp_image::image_from_files(&files, size)?, *b"sb-probe-esp-gpt"))?;
    let args: Vec<String> =
        ["-M", "virt", "-cpu", crate::harness::kexec::FIRST_CPU, "-m", "2G", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none"]
            .iter()
            .map(|s| s.to_string())
            .chain(crate::harness::kexec::edk2_flash(vars))
            .chain(["-drive".into(), format!("if=none,format=raw,id=esp,file={}", disk.display()), "-device".into(), "virtio-blk-pci,drive=esp".into()])
            .collect();
    let t = crate::harness::qemu::run(&args, timeout, false);
    let _ = std::fs::remove_dir_all(&dir);
    t
}

/// `EFI_IMAGE_SECURITY_DATABASE_GUID` (db, dbx) and `EFI_GLOBAL_VARIABLE` as they lie in a store.
pub const IMAGE_SECURITY_DATABASE: [u8; 16] = [0xcb, 0xb2, 0x19, 0xd7, 0x3a, 0x3d, 0x96, 0x45, 0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f];
pub const GLOBAL_VARIABLE: [u8; 16] = [0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c];

/// A variable's data in an EDK2 variable store file (`AAVMF_VARS*.fd`): a firmware volume
/// whose store holds authenticated variables (60-byte headers, 4-byte aligned); only those in
/// the ADDED state count.
pub fn read_variable(store: &[u8], name: &str, guid: &[u8; 16]) -> Option<Vec<u8>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(store.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(store.get(at..at + 4)?.try_into().ok()?));
    let fv_header = u16_at(48)? as usize;
    let end = fv_header + u32_at(fv_header + 16)? as usize;
    let wanted: Vec<u8> = name.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
    let mut at = fv_header + 28;
    while at + 60 <= end && u16_at(at)? == 0x55aa {
        let (state, name_size, data_size) = (store[at + 2], u32_at(at + 36)? as usize, u32_at(at + 40)? as usize);
        let (var_name, data) = (store.get(at + 60..at + 60 + name_size)?, store.get(at + 60 + name_size..at + 60 + name_size + data_size)?);
        if matches!(state, 0x3f | 0x3e) && &store[at + 44..at + 60] == guid && var_name == wanted {
            return Some(data.to_vec());
        }
        at = (at + 60 + name_size + data_size).next_multiple_of(4);
    }
    None
}
