//! The TCG crypto-agile event log reader (a firmware's log is input): any bytes are read or
//! refused with the place, never a panic; what is read replays in every bank it names.
#![no_main]
use efi_emulator::efi::event_log::{parse, replay, PCRS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((spec, events)) = parse(data) else { return };
    for bank in &spec.banks {
        if let Some(pcrs) = replay(&events, bank.alg) {
            assert_eq!(pcrs.len(), PCRS);
        }
    }
});
