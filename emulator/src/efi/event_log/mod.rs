//! The TCG event log in the crypto-agile format (TCG PC Client Platform Firmware Profile 1.05,
//! section 10): what EFI_TCG2_PROTOCOL.GetEventLog hands the OS, and what Linux shows as
//! `binary_bios_measurements`. Read (a firmware's log is input: every length is checked, the
//! work bounded), written into a caller's buffer without allocating, and replayed to the PCR
//! values it claims. Groundwork for measured boot (issue 24); nothing in the boot uses it yet.

use super::secure_boot::hash::{Hash, HashAlg};
use alloc::vec::Vec;

/// Event types the emulator reads or writes (TCG PC Client PFP, table 9).
pub mod event_type {
    pub const NO_ACTION: u32 = 0x0000_0003;
    pub const SEPARATOR: u32 = 0x0000_0004;
    pub const S_CRTM_VERSION: u32 = 0x0000_0008;
    pub const IPL: u32 = 0x0000_000d;
    pub const EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
    pub const EFI_BOOT_SERVICES_DRIVER: u32 = 0x8000_0004;
    pub const EFI_RUNTIME_SERVICES_DRIVER: u32 = 0x8000_0005;
    pub const EFI_ACTION: u32 = 0x8000_0007;
}

/// The first event's signature: a crypto-agile log.
pub const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// The EV_NO_ACTION event that says which locality the TPM was started from (PCR 0's first value).
pub const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";
/// PCRs a PC Client TPM has.
pub const PCRS: usize = 24;
/// Most events read from one log (a firmware log has a few hundred).
pub const MAX_EVENTS: usize = 65_536;
/// Most banks a Spec ID event may name (TPM 2.0 algorithms with a digest).
pub const MAX_BANKS: usize = 8;

/// TPM_ALG_ID of a hash the emulator computes.
pub fn alg_id(alg: HashAlg) -> u16 {
    match alg {
        HashAlg::Sha1 => 0x0004,
        HashAlg::Sha256 => 0x000b,
        HashAlg::Sha384 => 0x000c,
        HashAlg::Sha512 => 0x000d,
    }
}

/// The hash of a TPM_ALG_ID, when the emulator computes it (SM3 and others: read, not replayed).
pub fn alg_of(id: u16) -> Option<HashAlg> {
    [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512].into_iter().find(|a| alg_id(*a) == id)
}

/// A bank of the log: an algorithm and its digest size, as the Spec ID event lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bank {
    pub alg: u16,
    pub size: u16,
}

/// What the log's first event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecId {
    pub platform_class: u32,
    pub errata: u8,
    pub banks: Vec<Bank>,
}

/// One event after the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub pcr: u32,
    pub event_type: u32,
    /// (TPM_ALG_ID, digest), as many as the event carries.
    pub digests: Vec<(u16, &'a [u8])>,
    pub data: &'a [u8],
}

/// Why a log cannot be read or written: what, and at which byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogError {
    Truncated {
        at: usize,
        what: &'static str,
    },
    /// The first event is not a crypto-agile Spec ID event.
    NotCryptoAgile {
        what: &'static str,
    },
    /// An event names an algorithm the Spec ID event does not list.
    UnknownBank {
        at: usize,
        alg: u16,
    },
    /// Too many digests, events or banks.
    TooMany {
        at: usize,
        what: &'static str,
        count: usize,
    },
    /// The buffer being written has no room for the event.
    Full {
        needed: usize,
        room: usize,
    },
}

impl core::fmt::Display for LogError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            LogError::Truncated { at, what } => write!(f, "{what} at byte {at} runs past the end"),
            LogError::NotCryptoAgile { what } => f.write_str(what),
            LogError::UnknownBank { at, alg } => write!(f, "algorithm {alg:#06x} at byte {at} is not a bank of the log the emulator hashes"),
            LogError::TooMany { at, what, count } => write!(f, "{count} {what} at byte {at}"),
            LogError::Full { needed, room } => write!(f, "{needed} bytes needed, {room} left"),
        }
    }
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<u16, LogError> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or(LogError::Truncated { at, what })
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<u32, LogError> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or(LogError::Truncated { at, what })
}

fn bytes_at<'a>(b: &'a [u8], at: usize, len: usize, what: &'static str) -> Result<&'a [u8], LogError> {
    at.checked_add(len).and_then(|end| b.get(at..end)).ok_or(LogError::Truncated { at, what })
}

/// The Spec ID event's data (TCG_EfiSpecIDEvent).
fn parse_spec_id(data: &[u8]) -> Result<SpecId, LogError> {
    if data.get(..16) != Some(&SPEC_ID_SIGNATURE[..]) {
        return Err(LogError::NotCryptoAgile { what: "the first event is not \"Spec ID Event03\"" });
    }
    let platform_class = u32_at(data, 16, "platformClass")?;
    let (minor, major, errata) = (data.get(20).copied(), data.get(21).copied(), data.get(22).copied().unwrap_or(0));
    if (major, minor) != (Some(2), Some(0)) {
        return Err(LogError::NotCryptoAgile { what: "specVersion is not 2.0" });
    }
    let count = u32_at(data, 24, "numberOfAlgorithms")? as usize;
    if count == 0 || count > MAX_BANKS {
        return Err(LogError::TooMany { at: 24, what: "algorithms in the Spec ID event", count });
    }
    let mut banks = Vec::with_capacity(count);
    for i in 0..count {
        let at = 28 + 4 * i;
        banks.push(Bank { alg: u16_at(data, at, "algorithmId")?, size: u16_at(data, at + 2, "digestSize")? });
    }
    Ok(SpecId { platform_class, errata, banks })
}

/// Reads a crypto-agile log: the Spec ID event, then every event up to the end of `log` or to
/// an all-zero header (the unused rest of a log area).
pub fn parse(log: &[u8]) -> Result<(SpecId, Vec<Event<'_>>), LogError> {
    let (spec, at) = parse_spec_id_event(log)?;
    let (events, _) = parse_events(log, at, &spec, MAX_EVENTS)?;
    Ok((spec, events))
}

/// The first event (in the SHA-1 format: PCR, type, a 20-byte digest, size, data), which must
/// be the Spec ID event; and where the next event starts.
pub fn parse_spec_id_event(log: &[u8]) -> Result<(SpecId, usize), LogError> {
    if u32_at(log, 4, "the first event's type")? != event_type::NO_ACTION {
        return Err(LogError::NotCryptoAgile { what: "the first event is not EV_NO_ACTION" });
    }
    let size = u32_at(log, 28, "the first event's size")? as usize;
    let spec = parse_spec_id(bytes_at(log, 32, size, "the Spec ID event")?)?;
    Ok((spec, 32 + size))
}

/// Reads at most `limit` events of `spec`'s banks from `log[at..]`, stopping at its end or at
/// an all-zero header; and where the events end (a final-events table counts its events and
/// has no Spec ID event of its own).
pub fn parse_events<'a>(log: &'a [u8], mut at: usize, spec: &SpecId, limit: usize) -> Result<(Vec<Event<'a>>, usize), LogError> {
    let mut events = Vec::new();
    while at < log.len() && events.len() < limit {
        let (pcr, ty, count) = (u32_at(log, at, "PCRIndex")?, u32_at(log, at + 4, "EventType")?, u32_at(log, at + 8, "digest count")? as usize);
        if pcr == 0 && ty == 0 && count == 0 {
            break;
        }
        if count > spec.banks.len() {
            return Err(LogError::TooMany { at: at + 8, what: "digests in an event", count });
        }
        if events.len() == MAX_EVENTS {
            return Err(LogError::TooMany { at, what: "events", count: MAX_EVENTS });
        }
        let mut cursor = at + 12;
        let mut digests = Vec::with_capacity(count);
        for _ in 0..count {
            let alg = u16_at(log, cursor, "hashAlg")?;
            let bank = spec.banks.iter().find(|b| b.alg == alg).ok_or(LogError::UnknownBank { at: cursor, alg })?;
            digests.push((alg, bytes_at(log, cursor + 2, bank.size as usize, "a digest")?));
            cursor += 2 + bank.size as usize;
        }
        let size = u32_at(log, cursor, "EventSize")? as usize;
        let data = bytes_at(log, cursor + 4, size, "the event data")?;
        events.push(Event { pcr, event_type: ty, digests, data });
        at = cursor + 4 + size;
    }
    Ok((events, at))
}

/// The PCR values `events` extend bank `alg` to: PCRs start at their reset values (zero, all
/// ones for PCRs 17-22; PCR 0 at the locality a StartupLocality event names), each digest of the bank extends its PCR, EV_NO_ACTION extends
/// nothing. `None` for a bank the emulator cannot hash.
pub fn replay(events: &[Event], alg: u16) -> Option<Vec<Hash>> {
    let hash = alg_of(alg)?;
    // PCRs 17-22 (the dynamic root of trust's) reset to all ones, the others to zero.
    let mut pcrs: Vec<Hash> = (0..PCRS).map(|n| Hash::new(&[if (17..=22).contains(&n) { 0xff } else { 0 }; 64][..hash.digest_len()])).collect();
    for e in events {
        if e.event_type == event_type::NO_ACTION {
            if let Some(&locality) = e.data.strip_prefix(&STARTUP_LOCALITY_SIGNATURE[..]).and_then(|rest| rest.first()) {
                let mut start = [0u8; 64];
                start[hash.digest_len() - 1] = locality;
                pcrs[0] = Hash::new(&start[..hash.digest_len()]);
            }
            continue;
        }
        let Some(pcr) = pcrs.get_mut(e.pcr as usize) else { continue };
        for (_, digest) in e.digests.iter().filter(|(a, _)| *a == alg) {
            *pcr = hash.digest(&[pcr.as_bytes(), digest]);
        }
    }
    Some(pcrs)
}

/// Writes a crypto-agile log into a buffer: the Spec ID event for `banks`, then events.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    banks: Vec<HashAlg>,
    /// Where the last event starts (the Spec ID event's 0 while it is the only one).
    last: usize,
    /// Events appended since the writer was made.
    appended: usize,
}

impl<'b> Writer<'b> {
    /// Starts a log in `buf` with the Spec ID event for `banks` (platform class 0, a client).
    pub fn new(buf: &'b mut [u8], banks: &[HashAlg]) -> Result<Self, LogError> {
        if banks.is_empty() || banks.len() > MAX_BANKS {
            return Err(LogError::TooMany { at: 0, what: "banks", count: banks.len() });
        }
        let mut spec = Vec::with_capacity(29 + 4 * banks.len());
        spec.extend_from_slice(SPEC_ID_SIGNATURE);
        spec.extend_from_slice(&0u32.to_le_bytes()); // platformClass
        spec.extend_from_slice(&[0, 2, 2, 2]); // specVersion 2.0, errata 2, UINTN 64-bit
        spec.extend_from_slice(&(banks.len() as u32).to_le_bytes());
        for b in banks {
            spec.extend_from_slice(&alg_id(*b).to_le_bytes());
            spec.extend_from_slice(&(b.digest_len() as u16).to_le_bytes());
        }
        spec.push(0); // vendorInfoSize
        let mut w = Writer::events_only(buf, banks);
        let mut header = [0u8; 32];
        header[4..8].copy_from_slice(&event_type::NO_ACTION.to_le_bytes());
        header[28..32].copy_from_slice(&(spec.len() as u32).to_le_bytes());
        w.put(&[&header, &spec])?;
        Ok(w)
    }

    /// A writer of bare events (a final-events table: no Spec ID event) for `banks`.
    pub fn events_only(buf: &'b mut [u8], banks: &[HashAlg]) -> Self {
        Writer { buf, len: 0, banks: banks.to_vec(), last: 0, appended: 0 }
    }

    /// Continues `log`, a whole crypto-agile log already read through (a firmware's, with what
    /// its OS added), in `buf`: copied as it is, its banks the ones written from now on. Refused
    /// when a bank is one the emulator cannot hash (its PCR could not be followed).
    pub fn continuing(buf: &'b mut [u8], log: &[u8]) -> Result<Self, LogError> {
        let banks = banks_of(log)?;
        let (spec, first) = parse_spec_id_event(log)?;
        let mut w = Writer::events_only(buf, &banks);
        w.put(&[log])?;
        w.last = last_event_start(log, first, log.len(), &spec);
        Ok(w)
    }

    /// The banks events are written for, in the log's order.
    pub fn banks(&self) -> &[HashAlg] {
        &self.banks
    }

    /// Where the last event starts, from the start of the buffer.
    pub fn last_event(&self) -> usize {
        self.last
    }

    /// How many events were appended since the writer was made.
    pub fn appended(&self) -> usize {
        self.appended
    }

    fn put(&mut self, parts: &[&[u8]]) -> Result<(), LogError> {
        let needed: usize = parts.iter().map(|p| p.len()).sum();
        let room = self.buf.len() - self.len;
        if needed > room {
            return Err(LogError::Full { needed, room });
        }
        for p in parts {
            self.buf[self.len..self.len + p.len()].copy_from_slice(p);
            self.len += p.len();
        }
        Ok(())
    }

    /// Appends an event whose digest in every bank is that of `hashed` (the measured bytes, in
    /// parts), with `data` as its event data; the digests, for the TPM's PCR_Extend.
    pub fn measure(&mut self, pcr: u32, event_type: u32, hashed: &[&[u8]], data: &[u8]) -> Result<Vec<Hash>, LogError> {
        let digests: Vec<Hash> = self.banks.iter().map(|b| b.digest(hashed)).collect();
        self.append(pcr, event_type, &digests, data)?;
        Ok(digests)
    }

    /// Appends an event with one digest per bank (in the banks' order); EV_NO_ACTION events
    /// carry zeros.
    pub fn append(&mut self, pcr: u32, event_type: u32, digests: &[Hash], data: &[u8]) -> Result<(), LogError> {
        if digests.len() != self.banks.len() {
            return Err(LogError::TooMany { at: self.len, what: "digests for the banks", count: digests.len() });
        }
        let mut head = [0u8; 12];
        head[0..4].copy_from_slice(&pcr.to_le_bytes());
        head[4..8].copy_from_slice(&event_type.to_le_bytes());
        head[8..12].copy_from_slice(&(digests.len() as u32).to_le_bytes());
        let needed = 12 + digests.iter().map(|d| 2 + d.as_bytes().len()).sum::<usize>() + 4 + data.len();
        let room = self.buf.len() - self.len;
        if needed > room {
            return Err(LogError::Full { needed, room });
        }
        self.last = self.len;
        self.appended += 1;
        self.put(&[&head])?;
        for (i, d) in digests.iter().enumerate() {
            let id = alg_id(self.banks[i]).to_le_bytes();
            self.put(&[&id, d.as_bytes()])?;
        }
        self.put(&[&(data.len() as u32).to_le_bytes(), data])
    }

    /// The log so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The banks a log's Spec ID event lists, each one the emulator hashes (`UnknownBank` otherwise).
pub fn banks_of(log: &[u8]) -> Result<Vec<HashAlg>, LogError> {
    let (spec, _) = parse_spec_id_event(log)?;
    spec.banks.iter().map(|b| alg_of(b.alg).filter(|a| a.digest_len() == b.size as usize).ok_or(LogError::UnknownBank { at: 28, alg: b.alg })).collect()
}

/// Where the last of the events in `log[first..end]` starts (`0`, the Spec ID event, for none).
fn last_event_start(log: &[u8], first: usize, end: usize, spec: &SpecId) -> usize {
    let mut at = first;
    let mut last = 0;
    while at < end {
        last = at;
        let Ok((_, next)) = parse_events(log, at, spec, 1) else { break };
        if next == at {
            break;
        }
        at = next;
    }
    last
}

#[cfg(test)]
mod tests;
