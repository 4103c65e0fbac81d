//! The TIS protocol against a simulated TIS: a TPM that answers (with small bursts), one that is
//! absent, one that never gets ready, one that never finishes, and ones that break the FIFO rules.

use super::*;
use core::cell::{Cell, RefCell};
use std::vec::Vec;

/// How the simulated TPM misbehaves.
#[derive(Clone, Copy, Default, PartialEq)]
enum Fault {
    #[default]
    None,
    /// The locality is never granted.
    NoLocality,
    /// The command never completes.
    NeverDone,
    /// Expect stays set after the last byte.
    ExpectsMore,
    /// The response header says a size past the buffer.
    HugeResponse,
}

#[derive(Default)]
struct Sim {
    did_vid: u32,
    family: u32,
    burst: u32,
    fault: Fault,
    locality: bool,
    ready: bool,
    command: Vec<u8>,
    executing: bool,
    response: Vec<u8>,
    cancelled: bool,
    commands: Vec<Vec<u8>>,
}

impl Sim {
    fn expected_size(&self) -> Option<usize> {
        (self.command.len() >= 6).then(|| u32::from_be_bytes([self.command[2], self.command[3], self.command[4], self.command[5]]) as usize)
    }
}

/// A TPM that answers every command with a success response carrying the command's code.
fn answer(command: &[u8], fault: Fault) -> Vec<u8> {
    let mut r = std::vec![0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(&command[6..10]);
    let size = if fault == Fault::HugeResponse { 1 << 20 } else { r.len() as u32 };
    r[2..6].copy_from_slice(&size.to_be_bytes());
    r
}

struct SimBus<'a>(&'a RefCell<Sim>);

impl Bus for SimBus<'_> {
    fn read8(&self, offset: usize) -> u8 {
        let mut s = self.0.borrow_mut();
        match offset {
            reg::ACCESS => access::VALID | if s.locality { access::ACTIVE_LOCALITY } else { 0 },
            reg::DATA_FIFO => {
                if s.response.is_empty() {
                    0xff
                } else {
                    s.response.remove(0)
                }
            }
            _ => panic!("read8 of {offset:#x}"),
        }
    }
    fn read32(&self, offset: usize) -> u32 {
        let s = self.0.borrow();
        match offset {
            reg::DID_VID => s.did_vid,
            // A TPM 1.2's TIS has no TPM_INTERFACE_ID: type 0xF.
            reg::INTERFACE_ID if s.family == 0 => u32::MAX,
            reg::INTERFACE_ID => 0,
            // Registers of a locality not taken read all ones (PTP; QEMU's TIS does so).
            reg::STS if !s.locality => u32::MAX,
            reg::STS => {
                let mut v = sts::VALID | s.family << 26;
                if s.ready {
                    v |= sts::COMMAND_READY;
                }
                let receiving = s.ready && s.expected_size().is_none_or(|n| s.command.len() < n);
                if receiving && !s.command.is_empty() || s.fault == Fault::ExpectsMore && !s.command.is_empty() && !s.executing {
                    v |= sts::EXPECT;
                }
                if !s.response.is_empty() {
                    v |= sts::DATA_AVAILABLE;
                }
                let burst = if s.ready || !s.response.is_empty() { s.burst } else { 0 };
                v | burst << 8
            }
            _ => panic!("read32 of {offset:#x}"),
        }
    }
    fn write8(&self, offset: usize, value: u8) {
        let mut s = self.0.borrow_mut();
        match (offset, value) {
            (reg::ACCESS, access::REQUEST_USE) => s.locality = s.fault != Fault::NoLocality,
            (reg::ACCESS, access::ACTIVE_LOCALITY) => s.locality = false,
            (reg::DATA_FIFO, byte) => {
                assert!(s.ready && s.locality, "FIFO written before commandReady in a locality");
                s.command.push(byte);
            }
            _ => panic!("write8 of {value:#x} to {offset:#x}"),
        }
    }
    fn write32(&self, offset: usize, value: u32) {
        let mut s = self.0.borrow_mut();
        assert_eq!(offset, reg::STS);
        match value {
            sts::COMMAND_READY => {
                s.ready = true;
                s.command.clear();
                s.response.clear();
                s.executing = false;
            }
            sts::GO => {
                s.executing = true;
                let command = core::mem::take(&mut s.command);
                s.commands.push(command.clone());
                if s.fault != Fault::NeverDone {
                    s.response = answer(&command, s.fault);
                    s.ready = false;
                }
            }
            sts::CANCEL => s.cancelled = true,
            _ => panic!("STS written with {value:#x}"),
        }
    }
}

/// A TPM2_GetCapability command (tag, size, code; then its parameters).
fn get_capability() -> Vec<u8> {
    let mut c = std::vec![0x80, 0x01, 0, 0, 0, 22, 0x00, 0x00, 0x01, 0x7a];
    c.extend_from_slice(&[0, 0, 0, 6, 0, 0, 1, 0, 0, 0, 0, 1]);
    c
}

fn sim(fault: Fault) -> RefCell<Sim> {
    RefCell::new(Sim { did_vid: 0x0001_1014, family: 1, burst: 3, fault, ..Sim::default() })
}

/// A clock that moves 1 ms each time it is read: every timeout passes in a few hundred reads.
fn clock() -> impl Fn() -> u64 {
    let t = Cell::new(0u64);
    move || {
        t.set(t.get() + 1000);
        t.get()
    }
}

#[test]
fn a_command_goes_out_in_bursts_and_its_response_comes_back() {
    let s = sim(Fault::None);
    let mut tpm = Tis::probe(SimBus(&s), clock()).unwrap();
    assert_eq!(tpm.did_vid(), 0x0001_1014);
    let mut response = [0u8; 64];
    let n = tpm.submit(&get_capability(), &mut response).unwrap();
    assert_eq!(n, 14);
    assert_eq!(&response[..n], &[0x80, 0x01, 0, 0, 0, 14, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x7a]);
    assert_eq!(s.borrow().commands, [get_capability()], "the whole command, once");
    assert!(!s.borrow().locality, "the locality given back");
    // And again: the interface is left ready for the next one.
    assert_eq!(tpm.submit(&get_capability(), &mut response), Ok(14));
}

#[test]
fn no_tpm_and_not_a_tpm_2_are_said_so() {
    let absent = RefCell::new(Sim { did_vid: u32::MAX, family: 1, ..Sim::default() });
    assert!(matches!(Tis::probe(SimBus(&absent), clock()), Err(TisError::NoTpm { did_vid: u32::MAX, .. })));
    let tpm12 = RefCell::new(Sim { did_vid: 0x1234, family: 0, ..Sim::default() });
    assert!(matches!(Tis::probe(SimBus(&tpm12), clock()), Err(TisError::NoTpm { interface: 0xf, .. })));
}

#[test]
fn a_tpm_that_stops_answering_is_a_timeout_not_a_hang() {
    let s = sim(Fault::NoLocality);
    let mut tpm = Tis::probe(SimBus(&s), clock()).unwrap();
    let mut response = [0u8; 64];
    assert_eq!(tpm.submit(&get_capability(), &mut response), Err(TisError::Timeout { waiting_for: "locality 0", microseconds: timeout::A_US }));

    let s = sim(Fault::NeverDone);
    let mut tpm = Tis::probe(SimBus(&s), clock()).unwrap();
    let e = tpm.submit(&get_capability(), &mut response).unwrap_err();
    assert_eq!(e, TisError::Timeout { waiting_for: "a response", microseconds: timeout::COMMAND_US });
    assert!(s.borrow().cancelled, "the command was cancelled");
    assert_eq!(std::format!("{e}"), "the TPM did not signal a response within 120000 ms");
}

#[test]
fn lengths_and_fifo_rules_are_checked() {
    let s = sim(Fault::None);
    let mut tpm = Tis::probe(SimBus(&s), clock()).unwrap();
    let mut response = [0u8; 64];
    assert_eq!(tpm.submit(&[0x80, 0x01, 0, 0], &mut response), Err(TisError::BadLength { what: "a command", length: 4 }));
    assert!(s.borrow().commands.is_empty(), "nothing sent");

    let s = sim(Fault::ExpectsMore);
    let mut tpm = Tis::probe(SimBus(&s), clock()).unwrap();
    assert!(matches!(tpm.submit(&get_capability(), &mut response), Err(TisError::Protocol { .. })));

    let s = sim(Fault::HugeResponse);
    let mut tpm = Tis::probe(SimBus(&s), clock()).unwrap();
    assert_eq!(tpm.submit(&get_capability(), &mut response), Err(TisError::BadLength { what: "a response", length: 1 << 20 }));
    let mut small = [0u8; 12];
    let s = sim(Fault::None);
    let mut tpm = Tis::probe(SimBus(&s), clock()).unwrap();
    assert_eq!(tpm.submit(&get_capability(), &mut small), Err(TisError::BadLength { what: "a response", length: 14 }), "more than the caller's buffer");
}
