//! The TCG crypto-agile event log reader (a firmware's log is input): any bytes are read or
//! refused with the place, never a panic; what is read replays in every bank it names. The same
//! bytes as an earlier boot's memory: Linux's copy of the log at its start, the final-events
//! table where the last two bytes say; rebuilt or refused, never a panic, and what is rebuilt is
//! a whole log the emulator can continue.
#![no_main]
use efi_emulator::abi::tpm_log::previous_log;
use efi_emulator::abi::validate::PhysMemory;
use efi_emulator::abi::ConfigTableEntry;
use efi_emulator::efi::event_log::{banks_of, parse, replay, Writer, PCRS};
use efi_emulator::efi::guids::{LINUX_EFI_TPM_EVENT_LOG, LINUX_EFI_TPM_FINAL_LOG};
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0x4000_0000;

struct Memory<'a>(&'a [u8]);

impl PhysMemory for Memory<'_> {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(BASE)?).ok()?;
        self.0.get(off..off.checked_add(len)?)
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok((spec, events)) = parse(data) {
        for bank in &spec.banks {
            if let Some(pcrs) = replay(&events, bank.alg) {
                assert_eq!(pcrs.len(), PCRS);
            }
        }
    }

    let Some(tail) = data.len().checked_sub(2).map(|n| &data[n..]) else { return };
    let final_at = u16::from_le_bytes([tail[0], tail[1]]) as u64 % data.len() as u64;
    let tables = [
        ConfigTableEntry { guid: LINUX_EFI_TPM_EVENT_LOG, table: BASE },
        ConfigTableEntry { guid: LINUX_EFI_TPM_FINAL_LOG, table: BASE + final_at },
    ];
    let kept = |addr: u64| addr.checked_sub(BASE).map_or(0, |off| (data.len() as u64).saturating_sub(off));
    if let Ok(Some(log)) = previous_log(&tables, &kept, &Memory(data)) {
        assert!(parse(&log).is_ok(), "a rebuilt log reads back");
        if banks_of(&log).is_ok() {
            let mut buf = vec![0u8; log.len() + 64];
            let w = Writer::continuing(&mut buf, &log).expect("a rebuilt log with known banks is continued");
            assert_eq!(&w.bytes()[..log.len()], &log[..]);
        }
    }
});
