//! Measured boot, the portable half of EFI_TCG2_PROTOCOL (TCG EFI Protocol Specification 1.22):
//! the TPM 2.0 commands it needs, the active banks, and one event log that every measurement
//! extends a PCR for and is written to, continuing a firmware's log when there is one. The
//! services layer wraps it in the protocol; the TPM is reached through a [`Transport`].

pub mod tpm2;

use super::event_log::{self, event_type, LogError, Writer};
use super::secure_boot::hash::{Hash, HashAlg};
use super::EfiError;
use crate::drivers::tpm_tis::TisError;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Sends a TPM command and reads its response: the driver of the machine's TPM.
pub trait Transport {
    fn submit(&mut self, command: &[u8], response: &mut [u8]) -> Result<usize, TisError>;
}

impl<B: crate::drivers::tpm_tis::Bus, C: Fn() -> u64> Transport for crate::drivers::tpm_tis::Tis<B, C> {
    fn submit(&mut self, command: &[u8], response: &mut [u8]) -> Result<usize, TisError> {
        crate::drivers::tpm_tis::Tis::submit(self, command, response)
    }
}

/// EFI_TCG2_BOOT_HASH_ALG_* of a bank.
pub fn hash_bit(alg: HashAlg) -> u32 {
    match alg {
        HashAlg::Sha1 => 1,
        HashAlg::Sha256 => 2,
        HashAlg::Sha384 => 4,
        HashAlg::Sha512 => 8,
    }
}

/// EFI_TCG2_EVENT_LOG_FORMAT_TCG_2: the crypto-agile log, the one format served.
pub const LOG_FORMAT_TCG_2: u32 = 2;
/// HashLogExtendEvent flags: extend the PCR without logging; the data is a PE image.
pub const EXTEND_ONLY: u64 = 0x1;
pub const PE_COFF_IMAGE: u64 = 0x10;
/// The PCRs a measurement may name (PC Client: 0-23).
pub const MAX_PCR: u32 = 23;

/// The 16-byte signature of the EV_NO_ACTION event that says where the emulator's part of the
/// log starts and how it relates to what came before (docs/measured-boot.md).
pub const EMULATOR_SIGNATURE: &[u8; 16] = b"EfiEmulatorStart";

/// What the emulator knows of the PCRs' past when it starts measuring: the byte after
/// [`EMULATOR_SIGNATURE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum History {
    /// The log continues the earlier boot's: replaying all of it gives the live PCRs.
    Continued = 0,
    /// The TPM was running with no log to continue: the PCRs did not start from zero, and only
    /// the PCRs nothing touched before replay from this log.
    Unknown = 1,
    /// The emulator started the TPM (TPM2_Startup): the PCRs started from zero, the log is whole.
    StartedHere = 2,
}

/// Why measuring cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    Tpm(TisError),
    /// The TPM answered a command with an error code.
    Refused {
        command: &'static str,
        code: u32,
    },
    /// The TPM has no active bank the emulator can hash.
    NoBank {
        active: u32,
    },
    Log(LogError),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Tpm(e) => write!(f, "{e}"),
            StartError::Refused { command, code } => write!(f, "{command} answered {code:#x}"),
            StartError::NoBank { active } => write!(f, "no active PCR bank is SHA-1/256/384/512 (active: {active:#x})"),
            StartError::Log(e) => write!(f, "event log: {e}"),
        }
    }
}

/// The final-events table (EFI_TCG2_FINAL_EVENTS_TABLE): its header (Version, NumberOfEvents)
/// and the events logged after the first GetEventLog, which an OS that copied the log then
/// appends from here.
pub struct FinalEvents {
    header: &'static mut [u8],
    events: Writer<'static>,
}

impl FinalEvents {
    /// The table in `area` (its first 16 bytes the header), empty, version 1.
    pub fn new(area: &'static mut [u8], banks: &[HashAlg]) -> Self {
        area.fill(0);
        let (header, events) = area.split_at_mut(16);
        header[..8].copy_from_slice(&1u64.to_le_bytes());
        FinalEvents { header, events: Writer::events_only(events, banks) }
    }

    fn append(&mut self, pcr: u32, ty: u32, digests: &[Hash], data: &[u8]) -> Result<(), LogError> {
        self.events.append(pcr, ty, digests, data)?;
        self.header[8..16].copy_from_slice(&(self.events.appended() as u64).to_le_bytes());
        Ok(())
    }
}

/// The measurements of this boot: the TPM, its banks, the log and the final-events table.
pub struct Measurements {
    tpm: Box<dyn Transport>,
    log: Writer<'static>,
    /// Where the log's buffer is, for GetEventLog.
    log_address: u64,
    final_events: FinalEvents,
    /// GetEventLog was called: events go to the final-events table too.
    log_handed_out: bool,
    truncated: bool,
    /// EFI_TCG2_BOOT_HASH_ALG_* of the banks the TPM implements, and of the active ones.
    pub supported: u32,
    pub active: u32,
    /// TPM_PT_MANUFACTURER.
    pub manufacturer: u32,
    pub history: History,
    /// The TPM stopped answering or failed: nothing is measured from then on.
    pub failed: bool,
    /// A SetActivePcrBanks this boot: the banks asked for and the TPM's response code.
    pub bank_request: Option<(u32, u32)>,
}

/// The TPM's answer to a command, checked: its bytes, or why not.
fn exchange(tpm: &mut dyn Transport, command: &[u8], name: &'static str) -> Result<Vec<u8>, StartError> {
    let mut response = alloc::vec![0u8; crate::drivers::tpm_tis::MAX_BUFFER];
    let n = tpm.submit(command, &mut response).map_err(StartError::Tpm)?;
    response.truncate(n);
    match tpm2::response_code(&response) {
        0 => Ok(response),
        code => Err(StartError::Refused { command: name, code }),
    }
}

impl Measurements {
    /// Starts measuring on `tpm`: TPM2_Startup when nobody started it, the banks read, and the
    /// log begun in `log_area` (continuing `previous`, a whole crypto-agile log, when given and
    /// its banks are the TPM's), with the EV_NO_ACTION event that says which [`History`] it has
    /// and `identity` (the emulator and how it was entered). `log_address` is where `log_area` is.
    pub fn start(
        mut tpm: Box<dyn Transport>,
        log_area: &'static mut [u8],
        log_address: u64,
        final_area: &'static mut [u8],
        previous: Option<&[u8]>,
        identity: &str,
    ) -> Result<Self, StartError> {
        let mut started_here = false;
        let pcrs = match exchange(&mut *tpm, &tpm2::get_capability(tpm2::CAP_PCRS, 0, 1), "TPM2_GetCapability") {
            Err(StartError::Refused { code: tpm2::RC_INITIALIZE, .. }) => {
                exchange(&mut *tpm, &tpm2::startup_clear(), "TPM2_Startup")?;
                started_here = true;
                exchange(&mut *tpm, &tpm2::get_capability(tpm2::CAP_PCRS, 0, 1), "TPM2_GetCapability")?
            }
            other => other?,
        };
        let (supported, active) = tpm2::pcr_banks(&pcrs).ok_or(StartError::Refused { command: "TPM2_GetCapability(PCRS) (malformed)", code: 0 })?;
        let banks: Vec<HashAlg> = HashAlg::ALL.into_iter().filter(|a| active & hash_bit(*a) != 0).collect();
        if banks.is_empty() {
            return Err(StartError::NoBank { active });
        }
        let manufacturer = exchange(&mut *tpm, &tpm2::get_capability(tpm2::CAP_TPM_PROPERTIES, tpm2::PT_MANUFACTURER, 1), "TPM2_GetCapability")
            .ok()
            .and_then(|r| tpm2::first_property(&r))
            .unwrap_or(0);

        // A log to continue must have exactly the TPM's banks: another bank's PCRs were not
        // followed, a missing one could not be replayed. Otherwise a new log.
        let continuable = previous.filter(|old| event_log::banks_of(old).is_ok_and(|b| b.len() == banks.len() && banks.iter().all(|a| b.contains(a))));
        let history = match (continuable, started_here) {
            (Some(_), _) => History::Continued,
            (None, true) => History::StartedHere,
            (None, false) => History::Unknown,
        };
        let log = match continuable {
            Some(old) => Writer::continuing(log_area, old),
            None => Writer::new(log_area, &banks),
        }
        .map_err(StartError::Log)?;
        let final_events = FinalEvents::new(final_area, log.banks());
        let mut m = Measurements {
            tpm,
            log,
            log_address,
            final_events,
            log_handed_out: false,
            truncated: false,
            supported,
            active,
            manufacturer,
            history,
            failed: false,
            bank_request: None,
        };
        let mut data = Vec::with_capacity(17 + identity.len() + 1);
        data.extend_from_slice(EMULATOR_SIGNATURE);
        data.push(history as u8);
        data.extend_from_slice(identity.as_bytes());
        data.push(0);
        m.log_no_action(&data).map_err(|_| StartError::Log(LogError::Full { needed: data.len(), room: 0 }))?;
        Ok(m)
    }

    /// The banks measured, in the log's order.
    pub fn banks(&self) -> &[HashAlg] {
        self.log.banks()
    }

    /// An EV_NO_ACTION event in PCR 0: logged, extends nothing.
    pub fn log_no_action(&mut self, data: &[u8]) -> Result<(), EfiError> {
        let zeros: Vec<Hash> = self.banks().iter().map(|b| Hash::new(&[0u8; 64][..b.digest_len()])).collect();
        self.record(0, event_type::NO_ACTION, &zeros, data)
    }

    /// Measures `hashed` (its digest in every bank) into `pcr` and logs it with `data`.
    pub fn measure(&mut self, pcr: u32, ty: u32, hashed: &[&[u8]], data: &[u8]) -> Result<(), EfiError> {
        let digests: Vec<Hash> = self.banks().iter().map(|b| b.digest(hashed)).collect();
        self.extend_and_log(pcr, ty, &digests, data, true)
    }

    /// Extends `pcr` in every bank by `digests` (one per bank, the banks' order) and, when `log`,
    /// records the event. A TPM that fails ends measuring for this boot (DEVICE_ERROR from then
    /// on); a full log is EFI_VOLUME_FULL with the PCR extended, as EDK2 does.
    pub fn extend_and_log(&mut self, pcr: u32, ty: u32, digests: &[Hash], data: &[u8], log: bool) -> Result<(), EfiError> {
        if self.failed {
            return Err(EfiError::DeviceError);
        }
        let command = tpm2::pcr_extend(pcr, self.banks().iter().copied().zip(digests.iter()));
        let code = self.response_code(&command);
        match code {
            Ok(0) => {}
            // A PCR this locality may not extend, say: this event only.
            Ok(code) if !tpm2::is_failure(code) => {
                log::warn!("TPM2_PCR_Extend of PCR {pcr} answered {code:#x}");
                return Err(EfiError::DeviceError);
            }
            _ => {
                match code {
                    Err(e) => log::warn!("the TPM stopped answering ({e}): nothing more is measured this boot"),
                    Ok(code) => log::warn!("the TPM failed (response {code:#x}): nothing more is measured this boot"),
                }
                self.failed = true;
                return Err(EfiError::DeviceError);
            }
        }
        if log {
            self.record(pcr, ty, digests, data)?;
        }
        Ok(())
    }

    /// Sends a command whose response is its header and little more (PCR_Extend, PCR_Allocate):
    /// the TPM's response code.
    fn response_code(&mut self, command: &[u8]) -> Result<u32, TisError> {
        let mut response = [0u8; 64];
        self.tpm.submit(command, &mut response).map(|n| tpm2::response_code(&response[..n]))
    }

    /// Writes an event to the log, and to the final-events table once the log was handed out.
    fn record(&mut self, pcr: u32, ty: u32, digests: &[Hash], data: &[u8]) -> Result<(), EfiError> {
        let logged = self.log.append(pcr, ty, digests, data);
        let in_final = !self.log_handed_out || self.final_events.append(pcr, ty, digests, data).is_ok();
        if logged.is_err() || !in_final {
            self.truncated = true;
            return Err(EfiError::VolumeFull);
        }
        Ok(())
    }

    /// GetEventLog(TCG_2): where the log is, where its last event starts, whether events were
    /// lost; from now on events also go to the final-events table.
    pub fn event_log(&mut self) -> (u64, u64, bool) {
        self.log_handed_out = true;
        (self.log_address, self.log_address + self.log.last_event() as u64, self.truncated)
    }

    /// The log written so far.
    pub fn log_bytes(&self) -> &[u8] {
        self.log.bytes()
    }

    /// How many events the final-events table holds.
    pub fn final_events_count(&self) -> usize {
        self.final_events.events.appended()
    }

    /// SubmitCommand: the TPM's response length in `response`.
    pub fn submit(&mut self, command: &[u8], response: &mut [u8]) -> Result<usize, EfiError> {
        let mut whole = alloc::vec![0u8; crate::drivers::tpm_tis::MAX_BUFFER];
        let n = self.tpm.submit(command, &mut whole).map_err(|e| {
            log::warn!("TCG2 SubmitCommand: {e}");
            EfiError::DeviceError
        })?;
        response.get_mut(..n).ok_or(EfiError::BufferTooSmall)?.copy_from_slice(&whole[..n]);
        Ok(n)
    }

    /// SetActivePcrBanks: TPM2_PCR_Allocate with the platform's (empty) authorization, which
    /// takes effect at the next TPM reset. Firmware usually locks the platform hierarchy before
    /// an OS runs, so after a kexec the TPM mostly refuses: DEVICE_ERROR, said on the console.
    pub fn set_active_banks(&mut self, banks: u32) -> Result<(), EfiError> {
        if banks == 0 || banks & !self.supported != 0 {
            return Err(EfiError::InvalidParameter);
        }
        if banks == self.active {
            return Ok(());
        }
        let code = self.response_code(&tpm2::pcr_allocate(self.supported, banks)).map_err(|_| EfiError::DeviceError)?;
        self.bank_request = Some((banks, code));
        if code != 0 {
            log::warn!("SetActivePcrBanks({banks:#x}): TPM2_PCR_Allocate answered {code:#x} (the platform hierarchy is locked after firmware hands over)");
            return Err(EfiError::DeviceError);
        }
        Ok(())
    }
}

/// The Authenticode digests of a PE image in every bank (HashLogExtendEvent's PE_COFF_IMAGE,
/// and the images the emulator loads): EFI_UNSUPPORTED when it is not a PE image.
pub fn image_digests(banks: &[HashAlg], file: &[u8]) -> Result<Vec<Hash>, EfiError> {
    let pe = super::pe::PeImage::parse(file).map_err(|_| EfiError::Unsupported)?;
    banks.iter().map(|b| super::secure_boot::authenticode::digest_with(*b, &pe).map_err(|_| EfiError::Unsupported)).collect()
}

/// UEFI_IMAGE_LOAD_EVENT, the data of an image's measurement.
pub fn image_load_event(location: u64, length: u64, link_address: u64, device_path: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + device_path.len());
    for field in [location, length, link_address, device_path.len() as u64] {
        v.extend_from_slice(&field.to_le_bytes());
    }
    v.extend_from_slice(device_path);
    v
}

#[cfg(test)]
pub mod soft_tpm;
#[cfg(test)]
mod tests;
