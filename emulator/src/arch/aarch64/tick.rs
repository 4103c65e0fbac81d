//! The boot-services tick: this CPU's own timer interrupts every [`PERIOD_US`] through the GIC
//! while a payload runs, so timer events fire and the watchdog counts while it idles (`wfi`)
//! instead of calling a service. EL1 uses the virtual timer, EL2 (VHE or not) the EL2 physical
//! timer, with the private interrupt numbers the device tree's timer node gives.
//!
//! Interrupts are taken only while payload code runs below TPL_HIGH_LEVEL: every service entry
//! masks them (`efiapi!`), and only the outermost return unmasks them again, so a tick never
//! meets the core in the middle of a change. ExitBootServices stops the tick and puts the GIC
//! back as it was found.

use super::cpu::ExceptionLevel;
use crate::cell::BootCell;
use crate::drivers::gic::{Gic, Saved, SPURIOUS};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, Writeable, HCR_EL2};
use core::sync::atomic::{AtomicBool, Ordering};

/// HCR_EL2.IMO: physical IRQs go to EL2.
const HCR_IMO: u64 = 1 << 4;

/// The tick period: EDK2's default timer period.
pub const PERIOD_US: u64 = 10_000;

struct Tick {
    /// HCR_EL2 as found, when the tick had to route IRQs to EL2 (nVHE).
    hcr_el2: Option<u64>,
    gic: Gic,
    intid: u32,
    saved: Saved,
    el2: bool,
    period_ticks: u64,
    on_tick: fn(),
}

static TICK: BootCell<Tick> = BootCell::empty();
/// Whether the tick runs (interrupts may be unmasked for payloads).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// GICv3 CPU interface registers (ICC_*), by encoding: the assembler may not know the names.
macro_rules! icc {
    (read $enc:literal) => {{
        let v: u64;
        // SAFETY: a GICv3 CPU interface register read; only called with a GICv3 present.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nomem, nostack)) };
        v
    }};
    (write $enc:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: a GICv3 CPU interface register write; only called with a GICv3 present.
        unsafe { core::arch::asm!(concat!("msr ", $enc, ", {}"), "isb", in(reg) v, options(nomem, nostack)) };
    }};
}

/// Programs the timer to fire `ticks` from now, interrupt unmasked.
fn arm(el2: bool, ticks: u64) {
    let ticks = ticks.min(i32::MAX as u64);
    // SAFETY: this EL's own timer registers (EL1: the virtual timer; EL2: CNTHP), written only
    // by the tick.
    unsafe {
        if el2 {
            core::arch::asm!("msr cnthp_tval_el2, {t}", "msr cnthp_ctl_el2, {on}", "isb", t = in(reg) ticks, on = in(reg) 1u64, options(nomem, nostack));
        } else {
            core::arch::asm!("msr cntv_tval_el0, {t}", "msr cntv_ctl_el0, {on}", "isb", t = in(reg) ticks, on = in(reg) 1u64, options(nomem, nostack));
        }
    }
}

/// Turns the timer off (its interrupt line drops).
fn disarm(el2: bool) {
    // SAFETY: as in arm.
    unsafe {
        if el2 {
            core::arch::asm!("msr cnthp_ctl_el2, xzr", "isb", options(nomem, nostack));
        } else {
            core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack));
        }
    }
}

/// Starts the tick: `timer_intids` are the device tree's (virtual, EL2 physical) timer PPIs;
/// `on_tick` runs on each tick, with interrupts masked, on the interrupted payload's stack.
pub fn start(gic: Gic, timer_intids: (u32, u32), on_tick: fn()) -> Result<(), crate::drivers::gic::GicError> {
    let el2 = matches!(ExceptionLevel::current(), ExceptionLevel::El2 { .. });
    let intid = if el2 { timer_intids.1 } else { timer_intids.0 };
    let saved = gic.enable_ppi(intid)?;
    if let Gic::V3 { .. } = gic {
        // System-register access to the CPU interface (SRE; at EL2 also for EL1), every
        // priority through, group 1 on.
        if el2 {
            icc!(write "s3_4_c12_c9_5", icc!(read "s3_4_c12_c9_5") | 0b1001);
        } else {
            icc!(write "s3_0_c12_c12_5", icc!(read "s3_0_c12_c12_5") | 1);
        }
        icc!(write "s3_0_c4_c6_0", 0xf0);
        icc!(write "s3_0_c12_c12_7", 1);
    }
    // At EL2 without VHE (TGE clear), a physical IRQ targets EL1 unless HCR_EL2.IMO routes it
    // here, and an exception for a lower EL is never taken at EL2.
    let hcr_el2 = matches!(ExceptionLevel::current(), ExceptionLevel::El2 { vhe: false }).then(|| {
        let hcr = HCR_EL2.get();
        HCR_EL2.set(hcr | HCR_IMO);
        barrier::isb(barrier::SY);
        hcr
    });
    let period_ticks = super::cpu::ticks_per_second() * PERIOD_US / 1_000_000;
    TICK.set(Tick { hcr_el2, gic, intid, saved, el2, period_ticks, on_tick });
    arm(el2, period_ticks);
    RUNNING.store(true, Ordering::Release);
    log::info!(
        "tick: every {} ms on INTID {intid} ({}), GIC{}",
        PERIOD_US / 1000,
        if el2 { "EL2 physical timer" } else { "virtual timer" },
        if matches!(gic, Gic::V2 { .. }) { "v2" } else { "v3" }
    );
    Ok(())
}

/// Stops the tick for good and leaves the GIC as it was found (ExitBootServices).
pub fn stop() {
    if !RUNNING.swap(false, Ordering::AcqRel) {
        return;
    }
    set_enabled(false);
    TICK.with(|t| {
        disarm(t.el2);
        if let Gic::V3 { .. } = t.gic {
            icc!(write "s3_0_c12_c12_7", 0);
        }
        t.gic.restore(&t.saved);
        if let Some(hcr) = t.hcr_el2 {
            HCR_EL2.set(hcr);
            barrier::isb(barrier::SY);
        }
    });
}

/// Unmasks (or masks) IRQs at the CPU, when the tick runs.
pub fn set_enabled(on: bool) {
    // SAFETY: DAIF.I only; no memory effects.
    unsafe {
        if on && RUNNING.load(Ordering::Acquire) {
            core::arch::asm!("msr daifclr, #2", options(nomem, nostack));
        } else {
            core::arch::asm!("msr daifset, #2", options(nomem, nostack));
        }
    }
}

/// The IRQ handler (from the vectors, IRQs masked, the interrupted state saved).
#[unsafe(no_mangle)]
extern "C" fn efi_emulator_irq() {
    let Some((gic, intid, el2, period, on_tick)) = TICK.with(|t| (t.gic, t.intid, t.el2, t.period_ticks, t.on_tick)) else {
        return;
    };
    let v3 = matches!(gic, Gic::V3 { .. });
    let iar = if v3 { icc!(read "s3_0_c12_c12_0") as u32 } else { gic.acknowledge() };
    let id = iar & 0xff_ffff;
    if id >= SPURIOUS {
        return;
    }
    if id == intid {
        // Re-armed first: the line drops, and the next period counts from now.
        arm(el2, period);
    } else {
        // Left enabled by whoever ran before (kexec masks its own): not ours to serve.
        log::warn!("tick: unexpected interrupt INTID {id}: disabled");
        gic.disable(id);
    }
    if v3 {
        icc!(write "s3_0_c12_c12_1", iar as u64);
    } else {
        gic.end(iar);
    }
    if id == intid {
        on_tick();
    }
}
