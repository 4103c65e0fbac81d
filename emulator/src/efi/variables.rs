//! The volatile variable store: what GetVariable/SetVariable serve when no firmware is behind
//! the emulator. Nothing survives a reset; QueryVariableInfo says how much room there is.

use super::EfiError;
use alloc::vec::Vec;
use r_efi::efi::{self, Guid};

/// Bytes of names and data the store holds.
pub const CAPACITY: usize = 64 * 1024;
/// Largest single variable (name + data).
pub const MAX_VARIABLE: usize = 32 * 1024;

const SUPPORTED_ATTRIBUTES: u32 = efi::VARIABLE_NON_VOLATILE | efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS | efi::VARIABLE_APPEND_WRITE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// UTF-16 name without its NUL.
    pub name: Vec<u16>,
    pub guid: Guid,
    pub attributes: u32,
    pub data: Vec<u8>,
}

impl Variable {
    fn bytes(&self) -> usize {
        self.name.len() * 2 + 2 + self.data.len()
    }
}

#[derive(Default, Debug)]
pub struct VariableStore {
    vars: Vec<Variable>,
}

impl VariableStore {
    fn used(&self) -> usize {
        self.vars.iter().map(Variable::bytes).sum()
    }

    pub fn get(&self, name: &[u16], guid: &Guid) -> Result<&Variable, EfiError> {
        if name.is_empty() {
            return Err(EfiError::InvalidParameter);
        }
        self.vars.iter().find(|v| v.name == name && v.guid == *guid).ok_or(EfiError::NotFound)
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
        if attributes != 0 && attributes & efi::VARIABLE_BOOTSERVICE_ACCESS == 0 && access != 0 {
            return Err(EfiError::InvalidParameter); // RT without BS
        }
        if attributes & efi::VARIABLE_NON_VOLATILE != 0 && access == 0 {
            return Err(EfiError::InvalidParameter);
        }
        let append = attributes & efi::VARIABLE_APPEND_WRITE != 0;
        let index = self.vars.iter().position(|v| v.name == name && v.guid == *guid);
        let delete = attributes & !efi::VARIABLE_APPEND_WRITE == 0 || (data.is_empty() && !append);
        if delete {
            return match index {
                Some(i) => {
                    self.vars.remove(i);
                    Ok(())
                }
                None => Err(EfiError::NotFound),
            };
        }
        let stored = attributes & !efi::VARIABLE_APPEND_WRITE;
        if let Some(i) = index {
            if self.vars[i].attributes != stored {
                return Err(EfiError::InvalidParameter);
            }
            let new_len = if append { self.vars[i].data.len() + data.len() } else { data.len() };
            if name.len() * 2 + 2 + new_len > MAX_VARIABLE || self.used() - self.vars[i].data.len() + new_len > CAPACITY {
                return Err(EfiError::OutOfResources);
            }
            if append {
                self.vars[i].data.extend_from_slice(data);
            } else {
                self.vars[i].data = data.to_vec();
            }
            return Ok(());
        }
        let v = Variable { name: name.to_vec(), guid: *guid, attributes: stored, data: data.to_vec() };
        if v.bytes() > MAX_VARIABLE || self.used() + v.bytes() > CAPACITY {
            return Err(EfiError::OutOfResources);
        }
        self.vars.push(v);
        Ok(())
    }

    /// GetNextVariableName: the variable after (`name`, `guid`), or the first for an empty name.
    pub fn next(&self, name: &[u16], guid: &Guid) -> Result<&Variable, EfiError> {
        let at = if name.is_empty() {
            0
        } else {
            self.vars.iter().position(|v| v.name == name && v.guid == *guid).ok_or(EfiError::InvalidParameter)? + 1
        };
        self.vars.get(at).ok_or(EfiError::NotFound)
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
        Ok((CAPACITY as u64, (CAPACITY - self.used()) as u64, MAX_VARIABLE as u64))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Variable> {
        self.vars.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }
    const G: Guid = Guid::from_fields(0x4a67b082, 0x0a4c, 0x41cf, 0xb6, 0xc7, &[0x44, 0x0b, 0x29, 0xbb, 0x8c, 0x4f]);
    const BSRT: u32 = efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;

    #[test]
    fn set_get_replace_append_delete() {
        let mut s = VariableStore::default();
        assert_eq!(s.get(&w("StubInfo"), &G), Err(EfiError::NotFound));
        s.set(&w("StubInfo"), &G, BSRT, b"systemd-stub 254").unwrap();
        assert_eq!(s.get(&w("StubInfo"), &G).unwrap().data, b"systemd-stub 254");
        s.set(&w("StubInfo"), &G, BSRT, b"x").unwrap();
        s.set(&w("StubInfo"), &G, BSRT | efi::VARIABLE_APPEND_WRITE, b"y").unwrap();
        assert_eq!(s.get(&w("StubInfo"), &G).unwrap().data, b"xy");
        assert_eq!(s.set(&w("StubInfo"), &G, efi::VARIABLE_BOOTSERVICE_ACCESS, b"z"), Err(EfiError::InvalidParameter), "attributes differ");
        s.set(&w("StubInfo"), &G, BSRT, b"").unwrap();
        assert_eq!(s.get(&w("StubInfo"), &G), Err(EfiError::NotFound));
        assert_eq!(s.set(&w("RandomSeed"), &G, 0, &[]), Err(EfiError::NotFound), "deleting a missing variable");
    }

    #[test]
    fn refuses_bad_attributes_and_names() {
        let mut s = VariableStore::default();
        assert_eq!(s.set(&w(""), &G, BSRT, b"x"), Err(EfiError::InvalidParameter));
        assert_eq!(s.set(&w("A"), &G, efi::VARIABLE_RUNTIME_ACCESS, b"x"), Err(EfiError::InvalidParameter));
        assert_eq!(s.set(&w("A"), &G, efi::VARIABLE_NON_VOLATILE, b"x"), Err(EfiError::InvalidParameter));
        assert_eq!(s.set(&w("A"), &G, BSRT | efi::VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS, b"x"), Err(EfiError::Unsupported));
        assert_eq!(s.set(&w("A"), &G, BSRT, &[0; MAX_VARIABLE]), Err(EfiError::OutOfResources));
        // MOR as the Linux stub writes it: NV|BS|RT is kept (volatile, but readable).
        s.set(&w("MemoryOverwriteRequestControl"), &G, efi::VARIABLE_NON_VOLATILE | BSRT, &[1]).unwrap();
    }

    #[test]
    fn walks_every_name_and_reports_room() {
        let mut s = VariableStore::default();
        for n in ["A", "B", "C"] {
            s.set(&w(n), &G, BSRT, b"1").unwrap();
        }
        let mut names = Vec::new();
        let mut cur = (Vec::new(), G);
        while let Ok(v) = s.next(&cur.0, &cur.1) {
            names.push(String::from_utf16(&v.name).unwrap());
            cur = (v.name.clone(), v.guid);
        }
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(s.next(&w("Nope"), &G).err(), Some(EfiError::InvalidParameter));
        let (max, left, largest) = s.query(BSRT).unwrap();
        assert_eq!((max, left, largest), (CAPACITY as u64, CAPACITY as u64 - 3 * 5, MAX_VARIABLE as u64));
        assert_eq!(s.query(0).err(), Some(EfiError::InvalidParameter));
    }
}
