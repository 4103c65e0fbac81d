//! PSCI through the conduit the device tree names (`hvc` below a hypervisor, `smc` at EL2).

use core::sync::atomic::{AtomicU8, Ordering};

const SYSTEM_OFF: u64 = 0x8400_0008;
const SYSTEM_RESET: u64 = 0x8400_0009;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc = 1,
    Smc = 2,
}

impl Conduit {
    pub fn name(self) -> &'static str {
        match self {
            Conduit::Hvc => "hvc",
            Conduit::Smc => "smc",
        }
    }
}

static CONDUIT: AtomicU8 = AtomicU8::new(Conduit::Hvc as u8);

pub fn set_conduit(c: Conduit) {
    CONDUIT.store(c as u8, Ordering::Relaxed);
}

pub fn conduit() -> Conduit {
    if CONDUIT.load(Ordering::Relaxed) == Conduit::Smc as u8 {
        Conduit::Smc
    } else {
        Conduit::Hvc
    }
}

/// Calls a PSCI function with one argument; returns x0.
fn call(function: u64, arg: u64) -> u64 {
    let mut x0 = function;
    // SAFETY: a PSCI call per SMCCC: x0-x17 may change, memory is not touched by the callee in
    // a way Rust can observe. x18 is not clobbered by SMCCC-compliant firmware.
    unsafe {
        match conduit() {
            Conduit::Hvc => core::arch::asm!("hvc #0", inout("x0") x0, inout("x1") arg => _,
                out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack)),
            Conduit::Smc => core::arch::asm!("smc #0", inout("x0") x0, inout("x1") arg => _,
                out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack)),
        }
    }
    x0
}

/// Powers the machine off; never returns (halts if the firmware refuses).
pub fn system_off() -> ! {
    call(SYSTEM_OFF, 0);
    super::cpu::halt()
}

pub fn system_reset() -> ! {
    call(SYSTEM_RESET, 0);
    super::cpu::halt()
}
