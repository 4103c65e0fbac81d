//! A software TPM for the host tests: parses the commands measured boot sends and keeps PCRs
//! (SHA-1/256/384/512 banks, reset values as the PC Client PTP has them), so a test can replay
//! a log against what it holds.

use super::{tpm2, Transport};
use crate::drivers::tpm_tis::TisError;
use crate::efi::event_log::alg_id;
use crate::efi::secure_boot::hash::{Hash, HashAlg};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use std::vec;

/// The software TPM's state, shared with the test that looks at it.
pub struct State {
    pub started: bool,
    /// (bank, active, 24 PCRs).
    pub banks: Vec<(HashAlg, bool, Vec<Hash>)>,
    pub commands: usize,
    /// Answers this many commands, then times out.
    pub dies_after: usize,
    /// What PCR_Extend answers instead of extending, when set.
    pub extend_answers: Option<u32>,
}

pub struct SoftTpm(pub Rc<RefCell<State>>);

fn header(code: u32, body: &[u8]) -> Vec<u8> {
    let mut r = vec![0x80, 0x01];
    r.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    r.extend_from_slice(&code.to_be_bytes());
    r.extend_from_slice(body);
    r
}

impl Transport for SoftTpm {
    fn submit(&mut self, c: &[u8], response: &mut [u8]) -> Result<usize, TisError> {
        let mut s = self.0.borrow_mut();
        s.commands += 1;
        if s.commands > s.dies_after {
            return Err(TisError::Timeout { waiting_for: "a response", microseconds: 1 });
        }
        let be32 = |at: usize| u32::from_be_bytes(c[at..at + 4].try_into().unwrap());
        let code = be32(6);
        let r = match code {
            0x144 if s.started => header(tpm2::RC_INITIALIZE, &[]),
            0x144 => {
                s.started = true;
                header(0, &[])
            }
            _ if !s.started => header(tpm2::RC_INITIALIZE, &[]),
            0x17a if be32(10) == tpm2::CAP_PCRS => {
                let mut b = vec![0];
                b.extend_from_slice(&5u32.to_be_bytes());
                b.extend_from_slice(&(s.banks.len() as u32).to_be_bytes());
                for (alg, on, _) in &s.banks {
                    b.extend_from_slice(&alg_id(*alg).to_be_bytes());
                    b.extend_from_slice(&[3, if *on { 0xff } else { 0 }, if *on { 0xff } else { 0 }, if *on { 0xff } else { 0 }]);
                }
                header(0, &b)
            }
            0x17a => {
                let mut b = vec![0];
                b.extend_from_slice(&6u32.to_be_bytes());
                b.extend_from_slice(&1u32.to_be_bytes());
                b.extend_from_slice(&0x105u32.to_be_bytes());
                b.extend_from_slice(b"IBM\0");
                header(0, &b)
            }
            0x182 if s.extend_answers.is_some() => header(s.extend_answers.unwrap(), &[]),
            0x182 => {
                // Handle, authorization area (size and session), then TPML_DIGEST_VALUES.
                let pcr = be32(10) as usize;
                assert_eq!(be32(14), 9, "one password session");
                assert_eq!(be32(18), 0x4000_0009);
                let count = be32(27);
                let mut at = 31;
                for _ in 0..count {
                    let alg = u16::from_be_bytes([c[at], c[at + 1]]);
                    let bank = s.banks.iter_mut().find(|b| alg_id(b.0) == alg).expect("an implemented bank");
                    let len = bank.0.digest_len();
                    let digest = &c[at + 2..at + 2 + len];
                    bank.2[pcr] = bank.0.digest(&[bank.2[pcr].as_bytes(), digest]);
                    at += 2 + len;
                }
                assert_eq!(at, c.len(), "the command's size covers its digests");
                header(0, &[0, 0, 0, 0])
            }
            // The platform hierarchy is locked, as after firmware.
            0x12b => header(0x185, &[]),
            other => panic!("unexpected command {other:#x}"),
        };
        response[..r.len()].copy_from_slice(&r);
        Ok(r.len())
    }
}

/// A software TPM with `banks` (active or not), started or waiting for TPM2_Startup.
pub fn tpm(banks: &[(HashAlg, bool)], started: bool) -> (Box<dyn Transport>, Rc<RefCell<State>>) {
    // Reset values as the PC Client PTP has them: PCRs 17-22 all ones, the others zero.
    let reset = |a: HashAlg, n: usize| Hash::new(&[if (17..=22).contains(&n) { 0xff } else { 0 }; 64][..a.digest_len()]);
    let banks = banks.iter().map(|&(a, on)| (a, on, (0..24).map(|n| reset(a, n)).collect())).collect();
    let state = Rc::new(RefCell::new(State { started, banks, commands: 0, dies_after: usize::MAX, extend_answers: None }));
    (Box::new(SoftTpm(state.clone())), state)
}
