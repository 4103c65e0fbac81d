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
    /// After ExitBootServices: variables without EFI_VARIABLE_RUNTIME_ACCESS are gone.
    runtime: bool,
}

/// EFI_IMAGE_SECURITY_DATABASE_GUID: db, dbx, dbt, dbr.
pub const IMAGE_SECURITY_DATABASE: Guid = Guid::from_fields(0xd719b2cb, 0x3d3a, 0x4596, 0xa3, 0xbc, &[0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f]);

/// The Secure Boot variables: read-only here. Their writes need authentication this store
/// cannot check, and a payload must not fake `SecureBoot` for the next one.
fn read_only(name: &[u16], guid: &Guid) -> bool {
    let is = |s: &str| name.iter().copied().eq(s.encode_utf16());
    (*guid == efi::GLOBAL_VARIABLE && ["SecureBoot", "SetupMode", "AuditMode", "DeployedMode", "VendorKeys", "PK", "KEK"].iter().any(|s| is(s)))
        || (*guid == IMAGE_SECURITY_DATABASE && ["db", "dbx", "dbt", "dbr"].iter().any(|s| is(s)))
}

/// Fields of the store's own records: inside the buffer by construction.
fn u32_at(b: &[u8], o: usize) -> u32 {
    crate::mem::le_u32(b, o).unwrap_or_default()
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
        VariableStore { buf, runtime: false }
    }

    /// ExitBootServices: from now on only runtime-access variables exist.
    pub fn enter_runtime(&mut self) {
        self.runtime = true;
    }

    /// Publishes a read-only variable the platform defines (SecureBoot = 0, SetupMode = 1 when
    /// there is no firmware with keys).
    pub fn define_read_only(&mut self, name: &str, guid: &Guid, data: &[u8]) -> Result<(), EfiError> {
        let name: alloc::vec::Vec<u16> = name.encode_utf16().collect();
        debug_assert!(read_only(&name, guid));
        self.write(&name, guid, efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS, data)
    }

    fn visible(&self, v: &Variable) -> bool {
        !self.runtime || v.attributes & efi::VARIABLE_RUNTIME_ACCESS != 0
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

    /// The record of a variable that exists now (at runtime: with runtime access).
    fn find(&self, name: &[u16], guid: &Guid) -> Option<(usize, usize)> {
        self.records().find(|&(at, _)| {
            let v = self.view(at);
            v.name == name && v.guid == *guid && self.visible(&v)
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
        if read_only(name, guid) {
            return Err(EfiError::WriteProtected);
        }
        let deleting = attributes & !efi::VARIABLE_APPEND_WRITE == 0 || (data.is_empty() && attributes & efi::VARIABLE_APPEND_WRITE == 0);
        if self.runtime {
            // UEFI 2.10 SetVariable: after ExitBootServices only non-volatile runtime variables
            // may be set; volatile runtime ones are read-only data (EDK2: write protected).
            if !deleting && attributes & efi::VARIABLE_RUNTIME_ACCESS == 0 {
                return Err(EfiError::InvalidParameter);
            }
            match self.find(name, guid).map(|(at, _)| self.view(at).attributes) {
                Some(a) if a & efi::VARIABLE_NON_VOLATILE == 0 => return Err(EfiError::WriteProtected),
                None if !deleting && attributes & efi::VARIABLE_NON_VOLATILE == 0 => return Err(EfiError::InvalidParameter),
                _ => {}
            }
        }
        self.write(name, guid, attributes, data)
    }

    fn write(&mut self, name: &[u16], guid: &Guid, attributes: u32, data: &[u8]) -> Result<(), EfiError> {
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
            // A delete that names attributes must name the variable's (EDK2 refuses others).
            if stored != 0 && self.view(at).attributes != stored {
                return Err(EfiError::InvalidParameter);
            }
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
        let mut records = self.records().map(|(at, _)| self.view(at)).filter(|v| self.visible(v));
        if !name.is_empty() {
            records.by_ref().find(|v| v.name == name && v.guid == *guid).ok_or(EfiError::InvalidParameter)?;
        }
        records.next().ok_or(EfiError::NotFound)
    }

    /// QueryVariableInfo: (maximum storage, remaining, largest variable).
    pub fn query(&self, attributes: u32) -> Result<(u64, u64, u64), EfiError> {
        let runtime_only_ok = !self.runtime || attributes & efi::VARIABLE_RUNTIME_ACCESS != 0;
        if attributes & efi::VARIABLE_BOOTSERVICE_ACCESS == 0 || attributes & !SUPPORTED_ATTRIBUTES != 0 || !runtime_only_ok {
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
        self.records().map(|(at, _)| self.view(at)).filter(|v| self.visible(v))
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
    fn boot_service_variables_are_gone_after_exit_boot_services() {
        let mut s = store(64 * 1024);
        s.set(&w("BootOnly"), &G, efi::VARIABLE_BOOTSERVICE_ACCESS, b"b").unwrap();
        s.set(&w("Both"), &G, BSRT, b"r").unwrap();
        s.enter_runtime();
        assert_eq!(s.get(&w("BootOnly"), &G), Err(EfiError::NotFound));
        assert_eq!(s.next(&[], &G).unwrap().name, &w("Both")[..], "not listed");
        assert_eq!(s.next(&w("Both"), &G), Err(EfiError::NotFound));
        assert_eq!(s.set(&w("BootOnly"), &G, efi::VARIABLE_BOOTSERVICE_ACCESS, b"x"), Err(EfiError::InvalidParameter), "no new boot-service variables");
        assert_eq!(s.set(&w("BootOnly"), &G, 0, b""), Err(EfiError::NotFound), "nor deleting one");
        assert_eq!(s.query(efi::VARIABLE_BOOTSERVICE_ACCESS), Err(EfiError::InvalidParameter));
        // UEFI 2.10: volatile runtime variables are read-only data at runtime, and no new
        // volatile one appears; non-volatile runtime variables stay writable.
        assert_eq!(s.set(&w("Both"), &G, BSRT, b"s"), Err(EfiError::WriteProtected));
        assert_eq!(s.set(&w("Both"), &G, 0, b""), Err(EfiError::WriteProtected), "nor deleted");
        assert_eq!(s.set(&w("New"), &G, BSRT, b"n"), Err(EfiError::InvalidParameter));
        let nv = efi::VARIABLE_NON_VOLATILE | BSRT;
        s.set(&w("Kept"), &G, nv, b"k").unwrap();
        s.set(&w("Kept"), &G, nv, b"K").unwrap();
        assert_eq!(s.get(&w("Kept"), &G).unwrap().data, b"K");
        assert_eq!(s.iter().count(), 2);
    }

    /// A delete (DataSize 0) naming attributes other than the variable's is refused, as EDK2
    /// refuses it; Attributes 0 deletes whatever it is.
    #[test]
    fn a_delete_must_name_the_variables_attributes() {
        let mut s = store(64 * 1024);
        s.set(&w("Var"), &G, BSRT, b"v").unwrap();
        assert_eq!(s.set(&w("Var"), &G, efi::VARIABLE_NON_VOLATILE | BSRT, b""), Err(EfiError::InvalidParameter));
        assert!(s.get(&w("Var"), &G).is_ok());
        s.set(&w("Var"), &G, BSRT, b"").unwrap();
        assert_eq!(s.get(&w("Var"), &G), Err(EfiError::NotFound));
        s.set(&w("Var"), &G, BSRT, b"v").unwrap();
        s.set(&w("Var"), &G, 0, b"").unwrap();
        assert_eq!(s.get(&w("Var"), &G), Err(EfiError::NotFound));
    }

    #[test]
    fn secure_boot_variables_are_read_only() {
        let mut s = store(64 * 1024);
        s.define_read_only("SecureBoot", &efi::GLOBAL_VARIABLE, &[0]).unwrap();
        assert_eq!(s.get(&w("SecureBoot"), &efi::GLOBAL_VARIABLE).unwrap().data, [0]);
        for (name, guid) in [
            ("SecureBoot", efi::GLOBAL_VARIABLE),
            ("SetupMode", efi::GLOBAL_VARIABLE),
            ("PK", efi::GLOBAL_VARIABLE),
            ("KEK", efi::GLOBAL_VARIABLE),
            ("db", IMAGE_SECURITY_DATABASE),
            ("dbx", IMAGE_SECURITY_DATABASE),
        ] {
            assert_eq!(s.set(&w(name), &guid, BSRT, &[1]), Err(EfiError::WriteProtected), "{name}");
            assert_eq!(s.set(&w(name), &guid, 0, &[]), Err(EfiError::WriteProtected), "{name} deleted");
        }
        assert_eq!(s.get(&w("SecureBoot"), &efi::GLOBAL_VARIABLE).unwrap().data, [0], "still off");
        s.set(&w("db"), &G, BSRT, &[1]).unwrap();
    }

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
