//! Measurements against a software TPM that parses the commands the emulator sends and keeps
//! PCRs: whatever is measured, replaying the log gives the PCRs the TPM holds.

use super::soft_tpm::{tpm, SoftTpm, State};
use super::*;
use crate::efi::event_log::{alg_id, parse, replay};
use std::vec;

fn area(len: usize) -> &'static mut [u8] {
    vec![0u8; len].leak()
}

/// Replays `log` in each active bank of the TPM and compares every PCR.
fn assert_replays(log: &[u8], state: &State) {
    let (_, events) = parse(log).unwrap();
    for (alg, on, pcrs) in &state.banks {
        if *on {
            assert_eq!(&replay(&events, alg_id(*alg)).unwrap(), pcrs, "{}", alg.name());
        }
    }
}

#[test]
fn a_tpm_nobody_started_is_started_and_the_whole_log_replays() {
    let (t, state) = tpm(&[(HashAlg::Sha1, false), (HashAlg::Sha256, true), (HashAlg::Sha384, true)], false);
    let mut m = Measurements::start(t, area(8192), 0x1000, area(4096), None, "efi-emulator test").unwrap();
    assert_eq!(m.history, History::StartedHere);
    assert_eq!((m.supported, m.active, m.manufacturer), (0b111, 0b110, u32::from_be_bytes(*b"IBM\0")));
    assert_eq!(m.banks(), [HashAlg::Sha256, HashAlg::Sha384]);
    m.measure(4, event_type::EFI_BOOT_SERVICES_APPLICATION, &[b"an image"], b"load event").unwrap();
    m.measure(11, event_type::IPL, &[b".linux"], b".linux\0").unwrap();
    let file = crate::efi::pe::test_image();
    let digests = image_digests(m.banks(), &file).unwrap();
    let pe = crate::efi::pe::PeImage::parse(&file).unwrap();
    assert_eq!(digests[0], crate::efi::secure_boot::authenticode::digest_with(HashAlg::Sha256, &pe).unwrap(), "a PE image's digest is its Authenticode hash");
    m.extend_and_log(4, event_type::EFI_BOOT_SERVICES_APPLICATION, &digests, &image_load_event(0x4000_0000, 0x2000, 0, &[]), true).unwrap();
    assert_eq!(image_digests(m.banks(), b"MZ not a PE image"), Err(EfiError::Unsupported));
    assert_replays(m.log_bytes(), &state.borrow());
    let (_, events) = parse(m.log_bytes()).unwrap();
    assert_eq!(events[0].event_type, event_type::NO_ACTION);
    assert_eq!(&events[0].data[..17], b"EfiEmulatorStart\x02", "the log says the emulator started the TPM");
    assert_eq!(&events[0].data[17..], b"efi-emulator test\0");
}

#[test]
fn a_running_tpm_without_a_log_says_its_past_is_unknown() {
    let (t, state) = tpm(&[(HashAlg::Sha256, true)], true);
    // Something measured before the emulator, with no log to show for it.
    state.borrow_mut().banks[0].2[0] = HashAlg::Sha256.digest(&[b"firmware"]);
    let mut m = Measurements::start(t, area(4096), 0, area(4096), None, "x").unwrap();
    assert_eq!(m.history, History::Unknown);
    m.measure(4, event_type::EFI_ACTION, &[b"Calling EFI Application from Boot Option"], b"Calling EFI Application from Boot Option").unwrap();
    let (_, events) = parse(m.log_bytes()).unwrap();
    let s = state.borrow();
    let replayed = replay(&events, alg_id(HashAlg::Sha256)).unwrap();
    assert_eq!(replayed[4], s.banks[0].2[4], "what the emulator measured replays");
    assert_ne!(replayed[0], s.banks[0].2[0], "what came before is not in this log");
}

#[test]
fn a_previous_log_is_continued_and_replays_from_power_on() {
    // The earlier boot: a log and the PCRs it left.
    let (t, state) = tpm(&[(HashAlg::Sha1, true), (HashAlg::Sha256, true)], false);
    let mut first = Measurements::start(t, area(8192), 0, area(4096), None, "first").unwrap();
    first.measure(0, event_type::S_CRTM_VERSION, &[b"firmware 1.0"], b"firmware 1.0").unwrap();
    first.measure(7, event_type::SEPARATOR, &[&[0u8; 4]], &[0u8; 4]).unwrap();
    let old = first.log_bytes().to_vec();
    drop(first);

    // The kexec'd emulator on the same TPM, which keeps its PCRs.
    let t = Box::new(SoftTpm(state.clone()));
    let mut m = Measurements::start(t, area(old.len() + 4096), 0x8000, area(4096), Some(&old), "second").unwrap();
    assert_eq!(m.history, History::Continued);
    assert_eq!(m.banks(), [HashAlg::Sha1, HashAlg::Sha256], "the banks as the log lists them");
    assert_eq!(&m.log_bytes()[..old.len()], &old[..], "the earlier log, as it was");
    m.measure(4, event_type::EFI_BOOT_SERVICES_APPLICATION, &[b"next"], b"").unwrap();
    assert_replays(m.log_bytes(), &state.borrow());
    let (_, events) = parse(m.log_bytes()).unwrap();
    assert_eq!(events.iter().filter(|e| e.data.starts_with(EMULATOR_SIGNATURE)).count(), 2, "each emulator marks its start");
    let last = m.event_log().1 - 0x8000;
    assert_eq!(&m.log_bytes()[last as usize..last as usize + 4], &4u32.to_le_bytes(), "the last event is the PCR 4 one");
}

#[test]
fn a_log_with_other_banks_than_the_tpm_is_not_continued() {
    let (t, _) = tpm(&[(HashAlg::Sha1, true)], true);
    let old = Measurements::start(t, area(4096), 0, area(4096), None, "sha1 only").unwrap().log_bytes().to_vec();
    let (t, _) = tpm(&[(HashAlg::Sha256, true)], true);
    let m = Measurements::start(t, area(8192), 0, area(4096), Some(&old), "x").unwrap();
    assert_eq!(m.history, History::Unknown);
    assert_eq!(m.banks(), [HashAlg::Sha256]);
}

#[test]
fn events_after_get_event_log_also_go_to_the_final_events_table() {
    let (t, _) = tpm(&[(HashAlg::Sha256, true)], true);
    let final_area = area(4096);
    let final_ptr = final_area.as_ptr();
    let mut m = Measurements::start(t, area(4096), 0, final_area, None, "x").unwrap();
    m.measure(9, event_type::IPL, &[b"before"], b"before").unwrap();
    m.event_log();
    m.measure(5, event_type::EFI_ACTION, &[b"Exit Boot Services Invocation"], b"Exit Boot Services Invocation").unwrap();
    m.measure(5, event_type::EFI_ACTION, &[b"Exit Boot Services Returned with Success"], b"Exit Boot Services Returned with Success").unwrap();
    assert_eq!(m.final_events_count(), 2);
    // SAFETY: the table's area, alive (leaked); only read here.
    let table = unsafe { core::slice::from_raw_parts(final_ptr, 4096) };
    assert_eq!(&table[..16], &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], "Version 1, NumberOfEvents 2");
    let (spec, _) = parse(m.log_bytes()).unwrap();
    let (events, _) = event_log::parse_events(table, 16, &spec, 2).unwrap();
    assert_eq!(events.iter().map(|e| e.data).collect::<Vec<_>>(), [&b"Exit Boot Services Invocation"[..], b"Exit Boot Services Returned with Success"]);
}

#[test]
fn a_full_log_still_extends_and_says_volume_full() {
    let (t, state) = tpm(&[(HashAlg::Sha256, true)], true);
    let mut m = Measurements::start(t, area(200), 0, area(4096), None, "x").unwrap();
    assert_eq!(m.measure(8, event_type::IPL, &[b"big"], &[0u8; 300]), Err(EfiError::VolumeFull));
    assert_eq!(state.borrow().banks[0].2[8], HashAlg::Sha256.digest(&[&[0u8; 32], HashAlg::Sha256.digest(&[b"big"]).as_bytes()]));
    assert!(m.event_log().2, "the log says it is truncated");
}

#[test]
fn a_tpm_that_stops_answering_ends_measuring_and_the_log_stays_true() {
    let (t, state) = tpm(&[(HashAlg::Sha256, true)], true);
    let mut m = Measurements::start(t, area(4096), 0, area(4096), None, "x").unwrap();
    m.measure(4, event_type::IPL, &[b"one"], b"one").unwrap();
    let sent = state.borrow().commands;
    state.borrow_mut().dies_after = sent;
    assert_eq!(m.measure(4, event_type::IPL, &[b"two"], b"two"), Err(EfiError::DeviceError));
    assert!(m.failed);
    assert_eq!(m.measure(4, event_type::IPL, &[b"three"], b"three"), Err(EfiError::DeviceError));
    assert_eq!(state.borrow().commands, sent + 1, "nothing more is sent to a TPM that stopped");
    let (_, events) = parse(m.log_bytes()).unwrap();
    assert_eq!(events.last().unwrap().data, b"one", "unextended events are not logged");
}

#[test]
fn a_tpm_that_never_answers_is_not_measured_with() {
    let (t, state) = tpm(&[(HashAlg::Sha256, true)], true);
    state.borrow_mut().dies_after = 0;
    assert!(matches!(Measurements::start(t, area(4096), 0, area(4096), None, "x"), Err(StartError::Tpm(TisError::Timeout { .. }))));
}

#[test]
fn bank_changes_go_to_the_tpm_and_its_refusal_is_reported() {
    let (t, _) = tpm(&[(HashAlg::Sha1, false), (HashAlg::Sha256, true)], true);
    let mut m = Measurements::start(t, area(4096), 0, area(4096), None, "x").unwrap();
    assert_eq!(m.set_active_banks(0), Err(EfiError::InvalidParameter));
    assert_eq!(m.set_active_banks(hash_bit(HashAlg::Sha512)), Err(EfiError::InvalidParameter), "a bank the TPM lacks");
    assert_eq!(m.set_active_banks(m.active), Ok(()), "the banks already active");
    assert_eq!(m.set_active_banks(0b11), Err(EfiError::DeviceError));
    assert_eq!(m.bank_request, Some((0b11, 0x185)));
}

#[test]
fn commands_are_encoded_as_the_library_specifies() {
    // TPM2_Startup(SU_CLEAR): 80 01 | 00 00 00 0c | 00 00 01 44 | 00 00.
    assert_eq!(tpm2::startup_clear(), [0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0]);
    let d = HashAlg::Sha256.digest(&[b"x"]);
    let c = tpm2::pcr_extend(7, [(HashAlg::Sha256, &d)].into_iter());
    assert_eq!(c.len(), 10 + 4 + 4 + 9 + 4 + 2 + 32);
    assert_eq!(&c[..10], &[0x80, 0x02, 0, 0, 0, 65, 0, 0, 1, 0x82]);
    assert_eq!(&c[10..14], &7u32.to_be_bytes());
    assert_eq!(&c[27..33], &[0, 0, 0, 1, 0, 0x0b]);
}

#[test]
fn a_tpm_in_failure_mode_ends_measuring_a_refused_pcr_does_not() {
    let (t, state) = tpm(&[(HashAlg::Sha256, true)], true);
    let mut m = Measurements::start(t, area(4096), 0, area(4096), None, "x").unwrap();
    // TPM_RC_LOCALITY: a PCR locality 0 may not extend; the next event goes on.
    state.borrow_mut().extend_answers = Some(0x907);
    assert_eq!(m.measure(17, event_type::IPL, &[b"drtm"], b""), Err(EfiError::DeviceError));
    assert!(!m.failed);
    // TPM_RC_FAILURE, and the TPM_FAIL QEMU's backend answers once swtpm is gone: the end.
    for code in [0x101, 0x9] {
        let (t, state) = tpm(&[(HashAlg::Sha256, true)], true);
        let mut m = Measurements::start(t, area(4096), 0, area(4096), None, "x").unwrap();
        state.borrow_mut().extend_answers = Some(code);
        assert_eq!(m.measure(4, event_type::IPL, &[b"x"], b""), Err(EfiError::DeviceError));
        assert!(m.failed, "{code:#x}");
    }
}
