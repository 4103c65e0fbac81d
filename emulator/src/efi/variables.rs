//! The volatile variable store: what GetVariable/SetVariable serve when no firmware is behind
//! the emulator. It lives in one buffer of runtime-services memory and needs no heap, so the
//! same code serves boot services and, after ExitBootServices, the OS (efivarfs). Nothing
//! survives a reset; QueryVariableInfo says how much room there is.
//!
//! Layout: 8-byte header (magic, bytes used), then records, each 8-byte aligned:
//! `attributes u32, name_bytes u32 (UTF-16 with NUL), data_len u32, 0 u32, guid [16], name, data`.

use super::EfiError;
use r_efi::efi::{self, Guid};

/// Largest single variable (name + data).
pub const MAX_VARIABLE: usize = 32 * 1024;
const MAGIC: u32 = 0x5352_4156; // "VARS"
const HEADER: usize = 8;
const RECORD: usize = 32;

const SUPPORTED_ATTRIBUTES: u32 = efi::VARIABLE_NON_VOLATILE | efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS | efi::VARIABLE_APPEND_WRITE;

/// A variable as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variable<'a> {
    /// UTF-16 name without its NUL.
    pub name: &'a [u16],
    pub guid: Guid,
    pub attributes: u32,
    pub data: &'a [u8],
}

pub struct VariableStore {
    buf: &'static mut [u8],
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn record_len(name_units: usize, data: usize) -> usize {
    (RECORD + (name_units + 1) * 2 + data).next_multiple_of(8)
}

impl VariableStore {
    /// A store over `buf` (8-byte aligned), emptied.
    pub fn new(buf: &'static mut [u8]) -> Self {
        assert!(buf.len() > HEADER && (buf.as_ptr() as usize).is_multiple_of(8));
        buf[..4].copy_from_slice(&MAGIC.to_le_bytes());
        buf[4..8].copy_from_slice(&0u32.to_le_bytes());
        VariableStore { buf }
    }

    fn used(&self) -> usize {
        u32_at(self.buf, 4) as usize
    }

    fn set_used(&mut self, n: usize) {
        self.buf[4..8].copy_from_slice(&(n as u32).to_le_bytes());
    }

    fn capacity(&self) -> usize {
        self.buf.len() - HEADER
    }

    /// (offset, length) of every record.
    fn records(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let end = HEADER + self.used();
        let mut at = HEADER;
        core::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let name_bytes = u32_at(self.buf, at + 4) as usize;
            let data_len = u32_at(self.buf, at + 8) as usize;
            let len = (RECORD + name_bytes + data_len).next_multiple_of(8);
            let here = at;
            at += len;
            Some((here, len))
        })
    }

    fn view(&self, at: usize) -> Variable<'_> {
        let name_bytes = u32_at(self.buf, at + 4) as usize;
        let data_len = u32_at(self.buf, at + 8) as usize;
        let name_ptr = self.buf[at + RECORD..].as_ptr() as *const u16;
        // SAFETY: the name lies inside the buffer at an 8-byte-aligned offset, holding
        // name_bytes / 2 units, the last of them the NUL.
        let name = unsafe { core::slice::from_raw_parts(name_ptr, name_bytes / 2 - 1) };
        let data_at = at + RECORD + name_bytes;
        Variable { name, guid: Guid::from_bytes(self.buf[at + 16..at + 32].try_into().unwrap()), attributes: u32_at(self.buf, at), data: &self.buf[data_at..data_at + data_len] }
    }

    fn find(&self, name: &[u16], guid: &Guid) -> Option<(usize, usize)> {
        self.records().find(|&(at, _)| {
            let v = self.view(at);
            v.name == name && v.guid == *guid
        })
    }

    pub fn get(&self, name: &[u16], guid: &Guid) -> Result<Variable<'_>, EfiError> {
        if name.is_empty() {
            return Err(EfiError::InvalidParameter);
        }
        self.find(name, guid).map(|(at, _)| self.view(at)).ok_or(EfiError::NotFound)
    }

    fn remove(&mut self, at: usize, len: usize) {
        let end = HEADER + self.used();
        self.buf.copy_within(at + len..end, at);
        self.set_used(self.used() - len);
    }

    /// Appends a record whose data is `kept` (bytes already in the buffer, past where the
    /// record goes) followed by `data`.
    fn append(&mut self, name: &[u16], guid: &Guid, attributes: u32, kept: (usize, usize), data: &[u8]) {
        let at = HEADER + self.used();
        let data_len = kept.1 + data.len();
        let len = record_len(name.len(), data_len);
        let data_at = at + RECORD + (name.len() + 1) * 2;
        // The kept bytes first: they sit above the new record's end, so the copy is safe
        // before anything else of the record is written.
        self.buf.copy_within(kept.0..kept.0 + kept.1, data_at);
        let rec = &mut self.buf[at..at + len];
        rec[..RECORD].fill(0);
        rec[0..4].copy_from_slice(&attributes.to_le_bytes());
        rec[4..8].copy_from_slice(&(((name.len() + 1) * 2) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(data_len as u32).to_le_bytes());
        rec[16..32].copy_from_slice(guid.as_bytes());
        for (i, u) in name.iter().chain(core::iter::once(&0)).enumerate() {
            rec[RECORD + 2 * i..RECORD + 2 * i + 2].copy_from_slice(&u.to_le_bytes());
        }
        let d = data_at - at + kept.1;
        rec[d..d + data.len()].copy_from_slice(data);
        rec[d + data.len()..].fill(0);
        self.set_used(self.used() + len);
    }

    /// SetVariable. Empty data (without APPEND_WRITE) or zero attributes delete.
    pub fn set(&mut self, name: &[u16], guid: &Guid, attributes: u32, data: &[u8]) -> Result<(), EfiError> {
        if name.is_empty() {
            return Err(EfiError::InvalidParameter);
        }
        if attributes & !SUPPORTED_ATTRIBUTES != 0 {
            // Authenticated writes need key material this store does not have.
            return Err(if attributes & (efi::VARIABLE_AUTHENTICATED_WRITE_ACCESS | efi::VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS) != 0 {
                EfiError::Unsupported
            } else {
                EfiError::InvalidParameter
            });
        }
        let access = attributes & (efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS);
        if attributes & efi::VARIABLE_BOOTSERVICE_ACCESS == 0 && access != 0 {
            return Err(EfiError::InvalidParameter); // RT without BS
        }
        if attributes & efi::VARIABLE_NON_VOLATILE != 0 && access == 0 {
            return Err(EfiError::InvalidParameter);
        }
        let append = attributes & efi::VARIABLE_APPEND_WRITE != 0;
        let stored = attributes & !efi::VARIABLE_APPEND_WRITE;
        let existing = self.find(name, guid);
        if stored == 0 || (data.is_empty() && !append) {
            let (at, len) = existing.ok_or(EfiError::NotFound)?;
            self.remove(at, len);
            return Ok(());
        }
        let (old, old_len) = match existing {
            Some((at, len)) => {
                let v = self.view(at);
                if v.attributes != stored {
                    return Err(EfiError::InvalidParameter);
                }
                (if append { v.data.len() } else { 0 }, len)
            }
            None => (0, 0),
        };
        let new_len = record_len(name.len(), old + data.len());
        // APPEND keeps the old data at the very end of the buffer while the record moves: it
        // needs that much room beyond the new record.
        if (name.len() + 1) * 2 + old + data.len() > MAX_VARIABLE || HEADER + self.used() - old_len + new_len + old > self.buf.len() {
            return Err(EfiError::OutOfResources);
        }
        let scratch = self.buf.len() - old;
        if let Some((at, len)) = existing {
            if old > 0 {
                let data_at = at + RECORD + (name.len() + 1) * 2;
                self.buf.copy_within(data_at..data_at + old, scratch);
            }
            self.remove(at, len);
        }
        self.append(name, guid, stored, (scratch, old), data);
        Ok(())
    }

    /// GetNextVariableName: the variable after (`name`, `guid`), or the first for an empty name.
    pub fn next(&self, name: &[u16], guid: &Guid) -> Result<Variable<'_>, EfiError> {
        let mut records = self.records();
        if !name.is_empty() {
            records
                .by_ref()
                .find(|&(at, _)| {
                    let v = self.view(at);
                    v.name == name && v.guid == *guid
                })
                .ok_or(EfiError::InvalidParameter)?;
        }
        records.next().map(|(at, _)| self.view(at)).ok_or(EfiError::NotFound)
    }

    /// QueryVariableInfo: (maximum storage, remaining, largest variable).
    pub fn query(&self, attributes: u32) -> Result<(u64, u64, u64), EfiError> {
        if attributes & efi::VARIABLE_BOOTSERVICE_ACCESS == 0 || attributes & !SUPPORTED_ATTRIBUTES != 0 {
            return Err(if attributes & (efi::VARIABLE_AUTHENTICATED_WRITE_ACCESS | efi::VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS) != 0 {
                EfiError::Unsupported
            } else {
                EfiError::InvalidParameter
            });
        }
        let remaining = self.capacity() - self.used();
        Ok((self.capacity() as u64, remaining as u64, MAX_VARIABLE.min(remaining.saturating_sub(RECORD)) as u64))
    }

    pub fn iter(&self) -> impl Iterator<Item = Variable<'_>> {
        self.records().map(|(at, _)| self.view(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn store(bytes: usize) -> VariableStore {
        let words: &'static mut [u64] = Vec::leak(std::vec![0u64; bytes / 8]);
        // SAFETY: reinterpreting a leaked u64 buffer as bytes keeps it 8-byte aligned.
        let buf = unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, bytes) };
        VariableStore::new(buf)
    }
    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }
    const G: Guid = Guid::from_fields(0x4a67b082, 0x0a4c, 0x41cf, 0xb6, 0xc7, &[0x44, 0x0b, 0x29, 0xbb, 0x8c, 0x4f]);
    const BSRT: u32 = efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;

    #[test]
    fn set_get_replace_append_delete() {
        let mut s = store(64 * 1024);
        assert_eq!(s.get(&w("StubInfo"), &G), Err(EfiError::NotFound));
        s.set(&w("StubInfo"), &G, BSRT, b"systemd-stub 254").unwrap();
        s.set(&w("Other"), &G, BSRT, b"o").unwrap();
        assert_eq!(s.get(&w("StubInfo"), &G).unwrap().data, b"systemd-stub 254");
        s.set(&w("StubInfo"), &G, BSRT, b"x").unwrap();
        s.set(&w("StubInfo"), &G, BSRT | efi::VARIABLE_APPEND_WRITE, b"yz").unwrap();
        assert_eq!(s.get(&w("StubInfo"), &G).unwrap().data, b"xyz");
        assert_eq!(s.get(&w("Other"), &G).unwrap().data, b"o", "neighbours survive moves");
        assert_eq!(s.set(&w("StubInfo"), &G, efi::VARIABLE_BOOTSERVICE_ACCESS, b"z"), Err(EfiError::InvalidParameter), "attributes differ");
        s.set(&w("StubInfo"), &G, BSRT, b"").unwrap();
        assert_eq!(s.get(&w("StubInfo"), &G), Err(EfiError::NotFound));
        assert_eq!(s.set(&w("RandomSeed"), &G, 0, &[]), Err(EfiError::NotFound), "deleting a missing variable");
        assert_eq!(s.get(&w("Other"), &G).unwrap().attributes, BSRT);
    }

    #[test]
    fn refuses_bad_attributes_names_and_overflow() {
        let mut s = store(4096);
        assert_eq!(s.set(&w(""), &G, BSRT, b"x"), Err(EfiError::InvalidParameter));
        assert_eq!(s.set(&w("A"), &G, efi::VARIABLE_RUNTIME_ACCESS, b"x"), Err(EfiError::InvalidParameter));
        assert_eq!(s.set(&w("A"), &G, efi::VARIABLE_NON_VOLATILE, b"x"), Err(EfiError::InvalidParameter));
        assert_eq!(s.set(&w("A"), &G, BSRT | efi::VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS, b"x"), Err(EfiError::Unsupported));
        assert_eq!(s.set(&w("A"), &G, BSRT, &[0; 5000]), Err(EfiError::OutOfResources));
        s.set(&w("MemoryOverwriteRequestControl"), &G, efi::VARIABLE_NON_VOLATILE | BSRT, &[1]).unwrap();
        assert_eq!(s.get(&w("MemoryOverwriteRequestControl"), &G).unwrap().data, &[1]);
    }

    #[test]
    fn walks_every_name_and_reports_room() {
        let mut s = store(64 * 1024);
        for n in ["A", "B", "C"] {
            s.set(&w(n), &G, BSRT, b"1").unwrap();
        }
        let mut names = Vec::new();
        let mut cur: (Vec<u16>, Guid) = (Vec::new(), G);
        while let Ok(v) = s.next(&cur.0, &cur.1) {
            names.push(String::from_utf16(v.name).unwrap());
            cur = (v.name.to_vec(), v.guid);
        }
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(s.next(&w("Nope"), &G).err(), Some(EfiError::InvalidParameter));
        let (max, left, _) = s.query(BSRT).unwrap();
        assert_eq!(max, 64 * 1024 - 8);
        assert_eq!(left, max - 3 * 40, "three 40-byte records");
        assert_eq!(s.query(0).err(), Some(EfiError::InvalidParameter));
    }
}
