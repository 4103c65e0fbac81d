//! The earlier boot's TPM event log, from the configuration tables passed on to the emulator:
//! Linux's copy of it (LINUX_EFI_TPM_EVENT_LOG, which its EFI stub made from GetEventLog) and
//! the events logged after that copy, in the TCG2 final-events table (ExitBootServices, the
//! initrd). Together, the whole log the live PCRs replay to, which measured boot continues.
//! Both tables are the earlier OS's memory: every address is checked against the memory map
//! and every length bounded before a byte is read.

use super::validate::PhysMemory;
use super::ConfigTableEntry;
use crate::efi::event_log::{self, MAX_EVENTS};
use crate::efi::guids::{LINUX_EFI_TPM_EVENT_LOG, LINUX_EFI_TPM_FINAL_LOG};
use alloc::vec::Vec;

/// The largest log continued (firmware logs are kilobytes; Linux caps its copy at 1 MiB too).
pub const MAX_LOG: usize = 1 << 20;
/// `linux_efi_tpm_eventlog`: size, final_events_preboot_size, version, then the log.
const LINUX_HEADER: usize = 9;
/// Its `version` for a crypto-agile log (EFI_TCG2_EVENT_LOG_FORMAT_TCG_2).
const TCG_2: u8 = 2;

/// Why the earlier log is not continued (the emulator then starts a new one and says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviousLogError {
    /// A table's bytes are not all in memory the map describes as kept.
    OutsideMemory {
        table: &'static str,
        address: u64,
        size: u64,
    },
    /// The log is the TCG 1.2 (SHA-1 only) format, or its header is bad.
    Format {
        what: &'static str,
        value: u64,
    },
    Log(event_log::LogError),
}

impl core::fmt::Display for PreviousLogError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutsideMemory { table, address, size } => write!(f, "the {table} at {address:#x}+{size:#x} is not in memory the map keeps"),
            Self::Format { what, value } => write!(f, "{what} ({value:#x})"),
            Self::Log(e) => write!(f, "the log is damaged: {e}"),
        }
    }
}

/// The earlier boot's whole log, when `tables` carry one: Linux's copy, then the final events
/// it did not copy. `kept(address)` is how many bytes from `address` on the map keeps (occupied
/// RAM, without a gap).
pub fn previous_log(tables: &[ConfigTableEntry], kept: &dyn Fn(u64) -> u64, mem: &dyn PhysMemory) -> Result<Option<Vec<u8>>, PreviousLogError> {
    let find = |guid| tables.iter().find(|t| t.guid == guid).map(|t| t.table);
    let Some(at) = find(LINUX_EFI_TPM_EVENT_LOG) else { return Ok(None) };
    let read = |table: &'static str, address: u64, size: u64| -> Result<&[u8], PreviousLogError> {
        let outside = PreviousLogError::OutsideMemory { table, address, size };
        if kept(address) < size {
            return Err(outside);
        }
        mem.bytes(address, size as usize).ok_or(outside)
    };
    let header = read("TPM event log (LINUX_EFI_TPM_EVENT_LOG)", at, LINUX_HEADER as u64)?;
    let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let preboot = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if header[8] != TCG_2 {
        return Err(PreviousLogError::Format { what: "the log is not crypto-agile (TCG 1.2, SHA-1 only): version", value: header[8] as u64 });
    }
    if size > MAX_LOG {
        return Err(PreviousLogError::Format { what: "the log is larger than 1 MiB", value: size as u64 });
    }
    let log = read("TPM event log (LINUX_EFI_TPM_EVENT_LOG)", at + LINUX_HEADER as u64, size as u64)?;
    let (spec, first) = event_log::parse_spec_id_event(log).map_err(PreviousLogError::Log)?;
    let (_, end) = event_log::parse_events(log, first, &spec, MAX_EVENTS).map_err(PreviousLogError::Log)?;
    let mut whole = log[..end].to_vec();

    // The final events: the first `preboot` bytes of them were in the log Linux copied.
    if let Some(table) = find(LINUX_EFI_TPM_FINAL_LOG) {
        let head = read("TCG2 final-events table", table, 16)?;
        let count = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
        if count > MAX_EVENTS as u64 {
            return Err(PreviousLogError::Format { what: "the final-events table's NumberOfEvents", value: count });
        }
        // Its length is known only by reading its events: they lie in what the map keeps.
        let bytes = read("TCG2 final-events table", table + 16, kept(table + 16).min(MAX_LOG as u64))?;
        let (events, end) = event_log::parse_events(bytes, 0, &spec, count as usize).map_err(PreviousLogError::Log)?;
        if events.len() != count as usize {
            return Err(PreviousLogError::Format { what: "the final-events table ends before its NumberOfEvents", value: count });
        }
        let events = &bytes[..end];
        let after = events.get(preboot..).ok_or(PreviousLogError::Format { what: "final_events_preboot_size is past the final events", value: preboot as u64 })?;
        whole.extend_from_slice(after);
        // What follows the copy must be whole events: a preboot size inside an event would
        // splice half an event onto the log.
        let (_, read_to) = event_log::parse_events(&whole, first, &spec, MAX_EVENTS).map_err(PreviousLogError::Log)?;
        if read_to != whole.len() {
            return Err(PreviousLogError::Format { what: "final_events_preboot_size does not end an event", value: preboot as u64 });
        }
    }
    Ok(Some(whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::testkit::FakeMemory;
    use crate::efi::event_log::{event_type, parse, Writer};
    use crate::efi::secure_boot::hash::HashAlg;
    use std::vec;

    const LOG_AT: u64 = 0x4000_0000;
    const FINAL_AT: u64 = 0x4100_0000;

    /// An earlier boot: a log of three events, the last two also in the final-events table
    /// (logged after GetEventLog), of which Linux copied the first (`preboot`).
    fn earlier_boot(version: u8) -> (FakeMemory, Vec<ConfigTableEntry>, Vec<u8>) {
        let mut buf = vec![0u8; 4096];
        let mut w = Writer::new(&mut buf, &[HashAlg::Sha256]).unwrap();
        w.measure(0, event_type::S_CRTM_VERSION, &[b"fw"], b"fw").unwrap();
        w.measure(9, event_type::IPL, &[b"initrd"], b"initrd").unwrap();
        let copied = w.bytes().to_vec();
        w.measure(5, event_type::EFI_ACTION, &[b"Exit Boot Services Invocation"], b"Exit Boot Services Invocation").unwrap();
        let whole = w.bytes().to_vec();
        let (spec, first) = event_log::parse_spec_id_event(&whole).unwrap();
        let (_, after_crtm) = event_log::parse_events(&whole, first, &spec, 1).unwrap();
        // The final events: the initrd's (also in the copy: preboot) and ExitBootServices'.
        let finals = &whole[after_crtm..];
        let preboot = copied.len() - after_crtm;
        let mut linux = Vec::new();
        linux.extend_from_slice(&(copied.len() as u32).to_le_bytes());
        linux.extend_from_slice(&(preboot as u32).to_le_bytes());
        linux.push(version);
        linux.extend_from_slice(&copied);
        let mut table = Vec::new();
        table.extend_from_slice(&1u64.to_le_bytes());
        table.extend_from_slice(&2u64.to_le_bytes());
        table.extend_from_slice(finals);
        table.resize(8192, 0);
        let entry = |guid, table| ConfigTableEntry { guid, table };
        let tables = vec![entry(LINUX_EFI_TPM_EVENT_LOG, LOG_AT), entry(LINUX_EFI_TPM_FINAL_LOG, FINAL_AT)];
        (FakeMemory { regions: vec![(LOG_AT, linux), (FINAL_AT, table)] }, tables, whole)
    }

    fn kept(mem: &FakeMemory) -> impl Fn(u64) -> u64 + '_ {
        |at| mem.regions.iter().find_map(|(start, data)| at.checked_sub(*start).filter(|off| *off <= data.len() as u64).map(|off| data.len() as u64 - off)).unwrap_or(0)
    }

    #[test]
    fn the_copy_and_the_uncopied_final_events_make_the_whole_log() {
        let (mem, tables, whole) = earlier_boot(2);
        let log = previous_log(&tables, &kept(&mem), &mem).unwrap().unwrap();
        assert_eq!(log, whole, "each event once, in order");
        assert_eq!(parse(&log).unwrap().1.len(), 3);
        assert_eq!(previous_log(&tables[1..], &kept(&mem), &mem), Ok(None), "no log, nothing to continue");
    }

    #[test]
    fn a_damaged_or_foreign_earlier_log_is_refused_with_what_is_wrong() {
        let (mem, tables, _) = earlier_boot(1);
        assert!(matches!(previous_log(&tables, &kept(&mem), &mem), Err(PreviousLogError::Format { value: 1, .. })), "TCG 1.2");
        let (mem, tables, _) = earlier_boot(2);
        let nothing_kept = |_| 0;
        assert!(matches!(previous_log(&tables, &nothing_kept, &mem), Err(PreviousLogError::OutsideMemory { address: LOG_AT, .. })));
        let (mut mem, tables, _) = earlier_boot(2);
        mem.regions[1].1[8] = 9; // NumberOfEvents past the events there are
        assert!(previous_log(&tables, &kept(&mem), &mem).is_err());
        let (mut mem, tables, _) = earlier_boot(2);
        mem.regions[0].1[0..4].copy_from_slice(&(2u32 << 20).to_le_bytes()); // size over 1 MiB
        assert!(matches!(previous_log(&tables, &kept(&mem), &mem), Err(PreviousLogError::Format { .. })));
        let (mut mem, tables, _) = earlier_boot(2);
        mem.regions[0].1[4..8].copy_from_slice(&4096u32.to_le_bytes()); // preboot past the final events
        assert!(matches!(previous_log(&tables, &kept(&mem), &mem), Err(PreviousLogError::Format { .. })));
        // Found by the event_log fuzz target: a preboot size inside an event spliced half of it
        // onto the log, which then did not read back.
        let (mut mem, tables, _) = earlier_boot(2);
        let preboot = u32::from_le_bytes(mem.regions[0].1[4..8].try_into().unwrap());
        mem.regions[0].1[4..8].copy_from_slice(&(preboot - 3).to_le_bytes());
        assert!(previous_log(&tables, &kept(&mem), &mem).is_err());
    }
}
