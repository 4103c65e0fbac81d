//! `efi-kexec tpm-log`: does the running kernel's TPM event log replay to the TPM's PCRs? The
//! log (`binary_bios_measurements`) is replayed with the emulator's own replayer, bank by bank,
//! and each PCR compared with what the kernel reads from the TPM (`/sys/class/tpm/tpm0/pcr-*`).
//! The emulator's start events are named, with what they say of the log's past.

use efi_emulator::efi::event_log::{alg_id, event_type, parse, replay};
use efi_emulator::efi::secure_boot::hash::HashAlg;
use efi_emulator::efi::tcg2::EMULATOR_SIGNATURE;

pub const LOG_PATH: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
pub const PCRS_PATH: &str = "/sys/class/tpm/tpm0";
/// IMA's PCR: its measurements are in IMA's own list, not in this log.
const IMA_PCR: usize = 10;

/// What the check found: lines to print, and how many PCRs disagree (IMA's not counted).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<String>,
    pub mismatches: usize,
    pub compared: usize,
}

/// sysfs's name of a bank (`pcr-sha256`).
fn bank_name(alg: HashAlg) -> &'static str {
    match alg {
        HashAlg::Sha1 => "sha1",
        HashAlg::Sha256 => "sha256",
        HashAlg::Sha384 => "sha384",
        HashAlg::Sha512 => "sha512",
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `log` against `live(bank, pcr)`, the TPM's value (`None`: the kernel does not show
/// that bank). `events` lists every event too.
pub fn check(log: &[u8], live: &dyn Fn(&str, usize) -> Option<Vec<u8>>, events: bool) -> Result<Report, String> {
    let (spec, list) = parse(log).map_err(|e| format!("the log does not read: {e}"))?;
    let mut r = Report::default();
    let banks: Vec<HashAlg> = HashAlg::ALL.into_iter().filter(|a| spec.banks.iter().any(|b| b.alg == alg_id(*a))).collect();
    r.lines.push(format!("crypto-agile log: {} events, banks {}", list.len(), banks.iter().map(|b| bank_name(*b)).collect::<Vec<_>>().join(", ")));
    for (i, e) in list.iter().enumerate() {
        if let Some(rest) = e.data.strip_prefix(&EMULATOR_SIGNATURE[..]).filter(|_| e.event_type == event_type::NO_ACTION) {
            let past = match rest.first() {
                Some(0) => "continues the earlier boot's log",
                Some(1) => "a new log; the PCRs did not start from zero",
                Some(2) => "the emulator started the TPM; the log is whole",
                _ => "an unknown history",
            };
            let who = String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).trim_end_matches('\0').to_string();
            r.lines.push(format!("event {i}: {who}: {past}"));
        }
        if events {
            r.lines.push(format!("event {i}: PCR {} type {:#010x}, {} bytes of data", e.pcr, e.event_type, e.data.len()));
        }
    }
    for alg in banks {
        let name = bank_name(alg);
        let Some(pcrs) = replay(&list, alg_id(alg)) else { continue };
        let mut shown = false;
        for (n, want) in pcrs.iter().enumerate() {
            let Some(have) = live(name, n) else { continue };
            shown = true;
            if have == want.as_bytes() {
                r.compared += 1;
                continue;
            }
            if n == IMA_PCR {
                r.lines.push(format!("{name} PCR {n}: the TPM holds {} (IMA's PCR: its measurements are in IMA's own list)", hex(&have)));
                continue;
            }
            r.compared += 1;
            r.mismatches += 1;
            r.lines.push(format!("{name} PCR {n}: MISMATCH: the log replays to {}, the TPM holds {}", hex(want.as_bytes()), hex(&have)));
        }
        if !shown {
            r.lines.push(format!("{name}: the kernel shows no PCR of this bank"));
        }
    }
    r.lines.push(match r.mismatches {
        0 => format!("every PCR compared ({}) replays from the log", r.compared),
        n => format!("{n} of {} PCRs compared do not replay from the log", r.compared),
    });
    Ok(r)
}

/// The value sysfs shows for a PCR: hex, one line.
pub fn read_pcr(dir: &std::path::Path, bank: &str, pcr: usize) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(dir.join(format!("pcr-{bank}")).join(pcr.to_string())).ok()?;
    efi_emulator::mem::hex_bytes(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use efi_emulator::efi::event_log::Writer;
    use efi_emulator::efi::secure_boot::hash::Hash;

    /// A log of the emulator's start and one measurement, and the PCRs it replays to.
    fn log_and_pcrs() -> (Vec<u8>, Vec<Hash>) {
        let mut buf = vec![0u8; 4096];
        let mut w = Writer::new(&mut buf, &[HashAlg::Sha256]).unwrap();
        let mut start = EMULATOR_SIGNATURE.to_vec();
        start.push(1);
        start.extend_from_slice(b"efi-emulator 0.1.0 via kexec_file_load\0");
        w.append(0, event_type::NO_ACTION, &[Hash::new(&[0; 32])], &start).unwrap();
        w.measure(4, event_type::EFI_BOOT_SERVICES_APPLICATION, &[b"image"], b"").unwrap();
        let log = w.bytes().to_vec();
        let pcrs = replay(&parse(&log).unwrap().1, alg_id(HashAlg::Sha256)).unwrap();
        (log, pcrs)
    }

    #[test]
    fn a_log_that_replays_says_so_and_names_the_emulators_start() {
        let (log, pcrs) = log_and_pcrs();
        let live = |bank: &str, n: usize| (bank == "sha256").then(|| pcrs[n].as_bytes().to_vec());
        let r = check(&log, &live, false).unwrap();
        assert_eq!(r.mismatches, 0);
        assert_eq!(r.compared, 24);
        assert!(r.lines.contains(&"event 0: efi-emulator 0.1.0 via kexec_file_load: a new log; the PCRs did not start from zero".to_string()), "{:?}", r.lines);
        assert_eq!(r.lines.last().unwrap(), "every PCR compared (24) replays from the log");
    }

    #[test]
    fn a_pcr_that_does_not_replay_is_named_and_imas_is_told_apart() {
        let (log, pcrs) = log_and_pcrs();
        let live = |_: &str, n: usize| Some(if n == 4 || n == 10 { vec![0xee; 32] } else { pcrs[n].as_bytes().to_vec() });
        let r = check(&log, &live, true).unwrap();
        assert_eq!(r.mismatches, 1, "{:?}", r.lines);
        assert!(r.lines.iter().any(|l| l.starts_with("sha256 PCR 4: MISMATCH")));
        assert!(r.lines.iter().any(|l| l.starts_with("sha256 PCR 10: the TPM holds eeee") && l.contains("IMA")));
        assert!(r.lines.iter().any(|l| l.starts_with("event 1: PCR 4 type 0x80000003")));
        assert!(check(b"not a log", &live, false).is_err());
    }
}
