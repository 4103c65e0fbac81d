//! The log against the layouts of the TCG PC Client Platform Firmware Profile, written and read
//! back, replayed, and refused when damaged.

use super::*;
use std::vec;

/// The Spec ID event for SHA-256 alone, laid out by hand from the profile (section 10.4.5.1):
/// TCG_PCR_EVENT with a 20-byte zero digest, then TCG_EfiSpecIDEvent.
fn reference_spec_id_sha256() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0u32.to_le_bytes()); // PCRIndex
    v.extend_from_slice(&3u32.to_le_bytes()); // EV_NO_ACTION
    v.extend_from_slice(&[0; 20]); // digest
    v.extend_from_slice(&33u32.to_le_bytes()); // EventSize
    v.extend_from_slice(b"Spec ID Event03\0");
    v.extend_from_slice(&0u32.to_le_bytes()); // platformClass: client
    v.extend_from_slice(&[0, 2, 2, 2]); // specVersionMinor 0, Major 2, errata 2, uintnSize 2 (64-bit)
    v.extend_from_slice(&1u32.to_le_bytes()); // numberOfAlgorithms
    v.extend_from_slice(&[0x0b, 0x00, 32, 0]); // TPM_ALG_SHA256, 32 bytes
    v.push(0); // vendorInfoSize
    v
}

#[test]
fn the_spec_id_event_is_laid_out_as_the_profile_says() {
    let mut buf = [0u8; 256];
    let w = Writer::new(&mut buf, &[HashAlg::Sha256]).unwrap();
    assert_eq!(w.bytes(), &reference_spec_id_sha256()[..]);
    let (spec, events) = parse(w.bytes()).unwrap();
    assert_eq!(spec, SpecId { platform_class: 0, errata: 2, banks: vec![Bank { alg: 0x000b, size: 32 }] });
    assert!(events.is_empty());
}

#[test]
fn events_are_written_read_back_and_replayed_per_bank() {
    let mut buf = [0u8; 4096];
    let mut w = Writer::new(&mut buf, &[HashAlg::Sha1, HashAlg::Sha256]).unwrap();
    // A separator in PCR 4 (its data, four zero bytes, is what is measured), as firmware logs it.
    let separator = w.measure(4, event_type::SEPARATOR, &[&[0u8; 4]], &[0u8; 4]).unwrap();
    w.measure(4, event_type::EFI_BOOT_SERVICES_APPLICATION, &[b"an image"], b"\x01\x02").unwrap();
    w.append(0, event_type::NO_ACTION, &[Hash::new(&[0; 20]), Hash::new(&[0; 32])], b"StartupLocality\0\x03").unwrap();
    let log = w.bytes().to_vec();
    // The separator's bytes: PCR, type, count, then (alg, digest) per bank, size, data.
    let first = reference_spec_id_sha256().len() + 4; // this log has two banks: 4 more bytes
    assert_eq!(&log[first..first + 12], &[4, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(&log[first + 12..first + 14], &[0x04, 0x00], "SHA-1 first, as the banks were given");

    let (spec, events) = parse(&log).unwrap();
    assert_eq!(spec.banks, [Bank { alg: 0x0004, size: 20 }, Bank { alg: 0x000b, size: 32 }]);
    assert_eq!(events.len(), 3);
    assert_eq!((events[0].pcr, events[0].event_type, events[0].data), (4, event_type::SEPARATOR, &[0u8; 4][..]));
    assert_eq!(events[0].digests[1], (0x000b, separator[1].as_bytes()));

    // PCR 4 in each bank: extend(extend(0, separator), image); PCR 0 starts at locality 3.
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        let pcrs = replay(&events, alg_id(alg)).unwrap();
        let zero = vec![0u8; alg.digest_len()];
        let after_separator = alg.digest(&[&zero, alg.digest(&[&[0u8; 4]]).as_bytes()]);
        let want = alg.digest(&[after_separator.as_bytes(), alg.digest(&[b"an image"]).as_bytes()]);
        assert_eq!(pcrs[4].as_bytes(), want.as_bytes(), "{}", alg.name());
        let mut locality = zero.clone();
        *locality.last_mut().unwrap() = 3;
        assert_eq!(pcrs[0].as_bytes(), &locality[..], "StartupLocality");
        assert_eq!(pcrs[7].as_bytes(), &zero[..]);
        // The dynamic root of trust's PCRs reset to all ones (PC Client PTP), as swtpm's do.
        assert!(pcrs[17..=22].iter().all(|p| p.as_bytes().iter().all(|&b| b == 0xff)));
        assert_eq!(pcrs[16].as_bytes(), &zero[..]);
        assert_eq!(pcrs[23].as_bytes(), &zero[..]);
    }
    assert!(replay(&events, 0x0012).is_none(), "SM3: read, not replayed");
}

#[test]
fn a_damaged_log_is_refused_with_the_place() {
    let mut buf = [0u8; 1024];
    let mut w = Writer::new(&mut buf, &[HashAlg::Sha256]).unwrap();
    w.measure(7, event_type::EFI_ACTION, &[b"x"], b"Exit Boot Services Invocation").unwrap();
    let log = w.bytes().to_vec();
    let spec_len = reference_spec_id_sha256().len();

    for cut in [0, 10, 31, spec_len - 1, spec_len + 5, spec_len + 13, log.len() - 1] {
        assert!(matches!(parse(&log[..cut]), Err(LogError::Truncated { .. })), "cut at {cut}");
    }
    let mut bad = log.clone();
    bad[32] = b'X';
    assert!(matches!(parse(&bad), Err(LogError::NotCryptoAgile { .. })), "signature");
    let mut bad = log.clone();
    bad[spec_len + 12] = 0x0c; // SHA-384, which the Spec ID event does not list
    assert_eq!(parse(&bad), Err(LogError::UnknownBank { at: spec_len + 12, alg: 0x000c }));
    let mut bad = log.clone();
    bad[spec_len + 8] = 2; // two digests in a one-bank log
    assert!(matches!(parse(&bad), Err(LogError::TooMany { what: "digests in an event", .. })));
    let mut bad = log.clone();
    let size_at = spec_len + 12 + 2 + 32;
    bad[size_at..size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(parse(&bad), Err(LogError::Truncated { what: "the event data", .. })), "a size past the end");

    // The unused rest of a log area ends the log.
    let mut padded = log.clone();
    padded.extend_from_slice(&[0; 64]);
    assert_eq!(parse(&padded).unwrap().1.len(), 1);
}

#[test]
fn a_full_buffer_is_said_so_and_left_whole() {
    let mut buf = [0u8; 100];
    let mut w = Writer::new(&mut buf, &[HashAlg::Sha256]).unwrap();
    let before = w.bytes().len();
    assert!(matches!(w.measure(4, event_type::SEPARATOR, &[&[0; 4]], &[0; 4]), Err(LogError::Full { .. })));
    assert_eq!(w.bytes().len(), before, "nothing half-written");
    assert!(matches!(Writer::new(&mut [0u8; 16], &[HashAlg::Sha256]), Err(LogError::Full { .. })));
}
