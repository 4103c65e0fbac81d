//! EFI_TCG2_PROTOCOL (TCG EFI Protocol Specification 1.22) on the machine's TPM: the thin
//! shims around `efi::tcg2`, the event log and final-events table in memory, and the events the
//! emulator measures itself (its start, the images it loads, ExitBootServices), as EDK2 logs
//! them. Installed only when a TPM answered (docs/measured-boot.md).

use crate::efi::event_log::event_type;
use crate::efi::tcg2::{self, History, Measurements, Transport};
use crate::services::*;

/// {607f766c-7455-42be-930b-e4d76db2720f}
pub const PROTOCOL_GUID: Guid = Guid::from_fields(0x607f766c, 0x7455, 0x42be, 0x93, 0x0b, &[0xe4, 0xd7, 0x6d, 0xb2, 0x72, 0x0f]);

/// The protocol's functions, in the specification's order.
#[repr(C)]
pub struct Protocol {
    pub get_capability: unsafe extern "efiapi" fn(*mut Protocol, *mut u8) -> Status,
    pub get_event_log: unsafe extern "efiapi" fn(*mut Protocol, u32, *mut u64, *mut u64, *mut u8) -> Status,
    pub hash_log_extend_event: unsafe extern "efiapi" fn(*mut Protocol, u64, u64, u64, *mut u8) -> Status,
    pub submit_command: unsafe extern "efiapi" fn(*mut Protocol, u32, *mut u8, u32, *mut u8) -> Status,
    pub get_active_pcr_banks: unsafe extern "efiapi" fn(*mut Protocol, *mut u32) -> Status,
    pub set_active_pcr_banks: unsafe extern "efiapi" fn(*mut Protocol, u32) -> Status,
    pub get_result_of_set_active_pcr_banks: unsafe extern "efiapi" fn(*mut Protocol, *mut u32, *mut u32) -> Status,
}

/// Sizes of EFI_TCG2_BOOT_SERVICE_CAPABILITY, which is not packed (natural alignment, as EDK2
/// and every caller declare it): 1.1, and 1.0 (TREE) for older callers.
const CAPABILITY_1_1: usize = 36;
const CAPABILITY_1_0: usize = 28;
/// The main log's room beyond a continued one, and the final-events table's (EDK2's defaults).
const LOG_ROOM: usize = 64 << 10;
const FINAL_ROOM: usize = 32 << 10;
/// The longest event a payload may log (an image's load event carries its device path).
const MAX_EVENT: usize = 1 << 20;

/// Runs `f` with the measurements, EFI_DEVICE_ERROR when there are none.
fn with_measurements<R>(f: impl FnOnce(&mut Measurements) -> Result<R, EfiError>) -> Result<R, EfiError> {
    with_core(|c| c.measurements.as_mut().map_or(Err(EfiError::DeviceError), f))
}

/// EFI_TCG2_BOOT_SERVICE_CAPABILITY 1.1: Size, StructureVersion and ProtocolVersion at 0-4,
/// then the fields at their natural alignment.
fn capability(m: &Measurements) -> [u8; CAPABILITY_1_1] {
    let mut b = [0u8; CAPABILITY_1_1];
    let max = crate::drivers::tpm_tis::MAX_BUFFER as u32;
    b[..5].copy_from_slice(&[CAPABILITY_1_1 as u8, 1, 1, 1, 1]);
    b[8..12].copy_from_slice(&m.supported.to_le_bytes()); // HashAlgorithmBitmap
    b[12..16].copy_from_slice(&tcg2::LOG_FORMAT_TCG_2.to_le_bytes()); // SupportedEventLogs
    b[16] = u8::from(!m.failed); // TPMPresentFlag
    b[18..22].copy_from_slice(&(max | max << 16).to_le_bytes()); // MaxCommandSize, MaxResponseSize
    b[24..28].copy_from_slice(&m.manufacturer.to_le_bytes());
    b[28..32].copy_from_slice(&m.supported.count_ones().to_le_bytes()); // NumberOfPcrBanks
    b[32..36].copy_from_slice(&m.active.to_le_bytes());
    b
}

efiapi! {
    fn get_capability(this: *mut Protocol, cap: *mut u8) -> Status {
        guarded(|| {
            if this.is_null() || cap.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let mut bytes = with_measurements(|m| Ok(capability(m)))?;
            // SAFETY: the payload's structure: its first byte is its Size, and it has that many.
            let size = unsafe { cap.read() } as usize;
            let n = if size >= CAPABILITY_1_1 {
                CAPABILITY_1_1
            } else if size >= CAPABILITY_1_0 {
                // A caller of the 1.0 structure (EDK2 answers the same): its size, versions 1.0.
                bytes[0] = CAPABILITY_1_0 as u8;
                bytes[1..5].copy_from_slice(&[1, 0, 1, 0]);
                CAPABILITY_1_0
            } else {
                // SAFETY: as above.
                unsafe { cap.write(CAPABILITY_1_1 as u8) };
                return Err(EfiError::BufferTooSmall);
            };
            // SAFETY: the payload's structure holds `size` >= `n` bytes.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), cap, n) };
            Ok(())
        })
    }

    fn get_event_log(this: *mut Protocol, format: u32, location: *mut u64, last_entry: *mut u64, truncated: *mut u8) -> Status {
        guarded(|| {
            if this.is_null() || format != tcg2::LOG_FORMAT_TCG_2 {
                return Err(EfiError::InvalidParameter);
            }
            let (at, last, cut) = with_measurements(|m| Ok(m.event_log()))?;
            // SAFETY: the payload's optional out-arguments (NULL ones are skipped).
            unsafe {
                let _ = out(location, at);
                let _ = out(last_entry, last);
                let _ = out(truncated, u8::from(cut));
            }
            Ok(())
        })
    }

    fn hash_log_extend_event(this: *mut Protocol, flags: u64, data: u64, data_len: u64, event: *mut u8) -> Status {
        guarded(|| {
            if this.is_null() || event.is_null() || (data == 0 && data_len != 0) {
                return Err(EfiError::InvalidParameter);
            }
            // EFI_TCG2_EVENT: Size, then the header (HeaderSize, HeaderVersion, PCRIndex,
            // EventType), then the event data.
            // SAFETY: the payload's event starts with its 4-byte Size and an 14-byte header.
            let head = unsafe { bytes_arg(event, 18)? };
            let le32 = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
            let (size, header_size, version, pcr, ty) = (le32(0) as usize, le32(4) as usize, u16::from_le_bytes([head[8], head[9]]), le32(10), le32(14));
            if header_size != 14 || version != 1 || !(18..=MAX_EVENT).contains(&size) || pcr > tcg2::MAX_PCR {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the event holds `size` bytes, as its Size says.
            let event_data = unsafe { &bytes_arg(event, size)?[18..] };
            // SAFETY: the payload passes `data_len` readable bytes at `data`.
            let bytes = unsafe { bytes_arg(data as *const u8, usize::try_from(data_len).map_err(|_| EfiError::InvalidParameter)?)? };
            with_measurements(|m| {
                let digests = if flags & tcg2::PE_COFF_IMAGE != 0 {
                    tcg2::image_digests(m.banks(), bytes)?
                } else {
                    m.banks().iter().map(|b| b.digest(&[bytes])).collect()
                };
                m.extend_and_log(pcr, ty, &digests, event_data, flags & tcg2::EXTEND_ONLY == 0)
            })
        })
    }

    fn submit_command(this: *mut Protocol, in_size: u32, input: *mut u8, out_size: u32, output: *mut u8) -> Status {
        guarded(|| {
            let max = crate::drivers::tpm_tis::MAX_BUFFER as u32;
            if this.is_null() || input.is_null() || output.is_null() || in_size == 0 || out_size == 0 || in_size > max || out_size > max {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload's command block of `in_size` bytes.
            let command = unsafe { bytes_arg(input, in_size as usize)? };
            // SAFETY: the payload's response block of `out_size` writable bytes.
            let response = unsafe { core::slice::from_raw_parts_mut(output, out_size as usize) };
            with_measurements(|m| m.submit(command, response)).map(drop)
        })
    }

    fn get_active_pcr_banks(this: *mut Protocol, banks: *mut u32) -> Status {
        guarded(|| {
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let active = with_measurements(|m| Ok(m.active))?;
            // SAFETY: the payload's out-argument.
            unsafe { out(banks, active) }
        })
    }

    fn set_active_pcr_banks(this: *mut Protocol, banks: u32) -> Status {
        guarded(|| {
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            with_measurements(|m| m.set_active_banks(banks))
        })
    }

    fn get_result_of_set_active_pcr_banks(this: *mut Protocol, present: *mut u32, response: *mut u32) -> Status {
        guarded(|| {
            if this.is_null() || present.is_null() || response.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let request = with_measurements(|m| Ok(m.bank_request))?;
            // SAFETY: the payload's out-arguments, checked non-NULL.
            unsafe {
                out(present, u32::from(request.is_some()))?;
                out(response, request.map_or(0, |(_, code)| code))
            }
        })
    }
}

/// Starts measuring on `tpm` and installs the protocol and the final-events table: the log in
/// boot-services memory (the OS copies it, Linux's stub into LINUX_EFI_TPM_EVENT_LOG), the
/// final-events table in ACPI NVS (it outlives boot services), `previous` (a whole earlier log)
/// continued when it fits the TPM. Then the emulator's own events: its identity, the boot
/// attempt and, unless the log continues a firmware's, the separators of PCRs 0-7. `false`, and
/// the boot goes on unmeasured, when the TPM does not cooperate.
pub fn install(c: &mut Core, tpm: alloc::boxed::Box<dyn Transport>, previous: Option<&[u8]>, identity: &str) -> Result<bool, EfiError> {
    let log_len = previous.map_or(0, <[u8]>::len) + LOG_ROOM;
    let log_at = allocate_zeroed(c, efi::BOOT_SERVICES_DATA, log_len)?;
    let final_at = allocate_zeroed(c, efi::ACPI_MEMORY_NVS, FINAL_ROOM)?;
    // SAFETY: fresh pages of the map, identity-mapped, owned by the measurements from now on
    // (the log until ExitBootServices, the table for good).
    let (log_area, final_area) = unsafe { (core::slice::from_raw_parts_mut(log_at as *mut u8, log_len), core::slice::from_raw_parts_mut(final_at as *mut u8, FINAL_ROOM)) };
    let mut m = match Measurements::start(tpm, log_area, log_at, final_area, previous, identity) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("TPM: {e}: no EFI_TCG2_PROTOCOL, nothing is measured this boot");
            c.memory.free(log_at, pages(log_len))?;
            c.memory.free(final_at, pages(FINAL_ROOM))?;
            return Ok(false);
        }
    };
    let history = m.history;
    // The emulator as the boot's code: the CRTM when it started the TPM, else a boot manager.
    let _ = match history {
        History::StartedHere => m.measure(0, event_type::S_CRTM_VERSION, &[identity.as_bytes()], identity.as_bytes()),
        _ => m.measure(4, event_type::EFI_ACTION, &[identity.as_bytes()], identity.as_bytes()),
    };
    let calling = b"Calling EFI Application from Boot Option";
    let _ = m.measure(4, event_type::EFI_ACTION, &[calling], calling);
    if history != History::Continued {
        for pcr in 0..8 {
            let _ = m.measure(pcr, event_type::SEPARATOR, &[&[0u8; 4]], &[0u8; 4]);
        }
    }
    log::info!(
        "EFI_TCG2_PROTOCOL on the TPM (active banks {:#x}; log at {log_at:#x}, {})",
        m.active,
        match history {
            History::Continued => "continuing the earlier boot's log",
            History::StartedHere => "TPM started here, the log is whole",
            History::Unknown => "new log: the PCRs did not start from zero",
        }
    );
    c.measurements = Some(m);
    install_protocol(
        c,
        &PROTOCOL_GUID,
        Protocol {
            get_capability: get_capability::entry,
            get_event_log: get_event_log::entry,
            hash_log_extend_event: hash_log_extend_event::entry,
            submit_command: submit_command::entry,
            get_active_pcr_banks: get_active_pcr_banks::entry,
            set_active_pcr_banks: set_active_pcr_banks::entry,
            get_result_of_set_active_pcr_banks: get_result_of_set_active_pcr_banks::entry,
        },
    )?;
    c.config.push((crate::efi::guids::LINUX_EFI_TPM_FINAL_LOG, final_at as usize));
    Ok(true)
}

fn pages(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(PAGE_SIZE)
}

fn allocate_zeroed(c: &mut Core, ty: u32, bytes: usize) -> Result<u64, EfiError> {
    let at = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, ty, pages(bytes), PAGE_SIZE)?;
    // SAFETY: fresh pages of the map, identity-mapped.
    unsafe { core::ptr::write_bytes(at as *mut u8, 0, bytes) };
    Ok(at)
}

/// An image's digests in every bank, and when computing them began.
pub struct ImageDigests {
    digests: alloc::vec::Vec<crate::efi::secure_boot::hash::Hash>,
    started_us: u64,
}

/// The digests an image the emulator loads is measured with (before loading it in place
/// changes the file); `None` without measurements or for a file that is no PE image.
pub fn image_digests(c: &Core, file: &[u8]) -> Option<ImageDigests> {
    let started_us = Machine::micros_since_entry();
    let digests = c.measurements.as_ref().and_then(|m| tcg2::image_digests(m.banks(), file).ok())?;
    Some(ImageDigests { digests, started_us })
}

/// Measures an image once loaded, as EDK2's DxeTpm2MeasureBootLib does: applications into
/// PCR 4, drivers into PCR 2, by their Authenticode digests, with UEFI_IMAGE_LOAD_EVENT. Says
/// what it cost (hashing in every bank and the TPM's extend), which `cargo xtask bench` reads.
pub fn measure_image(c: &mut Core, d: &ImageDigests, base: u64, size: u64, link_address: u64, subsystem: u16, device_path: Option<&[u8]>) {
    let Some(m) = c.measurements.as_mut() else { return };
    let (pcr, ty) = match subsystem {
        crate::efi::pe::SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER => (2, event_type::EFI_BOOT_SERVICES_DRIVER),
        crate::efi::pe::SUBSYSTEM_EFI_RUNTIME_DRIVER => (2, event_type::EFI_RUNTIME_SERVICES_DRIVER),
        _ => (4, event_type::EFI_BOOT_SERVICES_APPLICATION),
    };
    let event = tcg2::image_load_event(base, size, link_address, device_path.unwrap_or(&[]));
    if m.extend_and_log(pcr, ty, &d.digests, &event, true).is_ok() {
        let us = Machine::micros_since_entry().saturating_sub(d.started_us);
        log::info!("image at {base:#x} measured into PCR {pcr} ({} banks, measured in {}.{:03} ms)", d.digests.len(), us / 1000, us % 1000);
    }
}

/// ExitBootServices succeeds: both of EDK2's PCR 5 actions.
pub fn measure_exit_boot_services(c: &mut Core) {
    if let Some(m) = c.measurements.as_mut() {
        for action in [&b"Exit Boot Services Invocation"[..], b"Exit Boot Services Returned with Success"] {
            let _ = m.measure(5, event_type::EFI_ACTION, &[action], action);
        }
    }
}
