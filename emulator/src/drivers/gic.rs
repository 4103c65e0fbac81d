//! The Arm Generic Interrupt Controller, as far as one private timer interrupt needs it: GICv2
//! (distributor and memory-mapped CPU interface) and GICv3 (distributor, this CPU's
//! redistributor; the CPU interface is system registers, driven by the caller).
//!
//! Only the memory-mapped side is here, so that the host tests check the exact register
//! writes on plain memory. What the emulator changes is recorded and undone by
//! [`Gic::restore`], before the OS takes over.

/// Register access at `base + offset`.
fn read32(base: u64, offset: u64) -> u32 {
    // SAFETY: `base` is the MMIO base the device tree gave for this GIC, mapped as device
    // memory (or, in the host tests, a buffer large enough for the registers used).
    unsafe { core::ptr::read_volatile((base + offset) as *const u32) }
}

fn write32(base: u64, offset: u64, value: u32) {
    // SAFETY: as in read32.
    unsafe { core::ptr::write_volatile((base + offset) as *mut u32, value) }
}

fn read64(base: u64, offset: u64) -> u64 {
    // SAFETY: as in read32.
    unsafe { core::ptr::read_volatile((base + offset) as *const u64) }
}

/// GICv2 and GICv3 distributor registers.
const GICD_CTLR: u64 = 0x000;
/// GICv2 CPU interface registers.
const GICC_CTLR: u64 = 0x000;
const GICC_PMR: u64 = 0x004;
const GICC_IAR: u64 = 0x00c;
const GICC_EOIR: u64 = 0x010;
/// Banked per CPU in a GICv2 distributor, in a GICv3 redistributor's SGI frame.
const IGROUPR0: u64 = 0x080;
const ISENABLER0: u64 = 0x100;
const ICENABLER0: u64 = 0x180;
const IPRIORITYR: u64 = 0x400;
/// GICv3 redistributor registers (RD frame), and where its SGI frame starts.
const GICR_TYPER: u64 = 0x008;
const GICR_WAKER: u64 = 0x014;
const GICR_SGI_FRAME: u64 = 0x1_0000;

/// GICD_CTLR bits: GICv2 Enable (group 0, or group 1 in the non-secure view); GICv3
/// EnableGrp1 (non-secure view) and affinity routing.
const GICD_CTLR_ENABLE: u32 = 1 << 0;
const GICD_CTLR_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_RWP: u32 = 1 << 31;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// INTIDs 1020..1023 are special (1023: nothing pending).
pub const SPURIOUS: u32 = 1020;
/// The priority given to the timer, and the mask that lets it through.
const PRIORITY: u8 = 0x80;
const PRIORITY_MASK: u32 = 0xf0;
/// Bounded waits for the GIC's write-pending and wake bits.
const POLLS: u32 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    V2 {
        dist: u64,
        cpu: u64,
    },
    /// `redist` is this CPU's redistributor (its RD frame).
    V3 {
        dist: u64,
        redist: u64,
    },
}

/// What the emulator found before it changed anything: [`Gic::restore`] puts it back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    gicd_ctlr: u32,
    gicc_ctlr: u32,
    gicc_pmr: u32,
    waker: u32,
    intid: u32,
    was_enabled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// No redistributor in the region has this CPU's affinity.
    NoRedistributor { affinity: u32 },
    /// A bit the GIC should have cleared stayed set.
    Stuck { register: &'static str },
}

impl core::fmt::Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRedistributor { affinity } => write!(f, "no GICv3 redistributor has this CPU's affinity {affinity:#x}"),
            Self::Stuck { register } => write!(f, "the GIC did not clear {register}"),
        }
    }
}

fn wait_clear(base: u64, offset: u64, bit: u32, register: &'static str) -> Result<(), GicError> {
    for _ in 0..POLLS {
        if read32(base, offset) & bit == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(GicError::Stuck { register })
}

/// This CPU's redistributor in the GICv3 region `[base, base + size)`: the frame whose
/// GICR_TYPER.Affinity_Value is `affinity` (Aff3.Aff2.Aff1.Aff0, as in MPIDR), walking frames of
/// 128 KiB (256 KiB when the frame has virtual LPIs) until GICR_TYPER.Last.
pub fn find_redistributor(base: u64, size: u64, affinity: u32) -> Result<u64, GicError> {
    let mut frame = base;
    while frame + 0x2_0000 <= base + size {
        let typer = read64(frame, GICR_TYPER);
        if (typer >> 32) as u32 == affinity {
            return Ok(frame);
        }
        if typer & (1 << 4) != 0 {
            break;
        }
        frame += if typer & (1 << 1) != 0 { 0x4_0000 } else { 0x2_0000 };
    }
    Err(GicError::NoRedistributor { affinity })
}

impl Gic {
    /// Where this CPU's private interrupt registers are.
    fn banked(&self) -> u64 {
        match *self {
            Gic::V2 { dist, .. } => dist,
            Gic::V3 { redist, .. } => redist + GICR_SGI_FRAME,
        }
    }

    /// Enables private interrupt `intid` (a PPI, 16..31) at the distributor (and, for GICv2,
    /// the CPU interface): priority `PRIORITY`, group 1 on GICv3, forwarding on. A GICv3 CPU
    /// interface (system registers) is the caller's to enable.
    pub fn enable_ppi(&self, intid: u32) -> Result<Saved, GicError> {
        debug_assert!((16..32).contains(&intid));
        let bit = 1u32 << intid;
        let banked = self.banked();
        let mut saved = Saved { intid, was_enabled: read32(banked, ISENABLER0) & bit != 0, ..Saved::default() };
        match *self {
            Gic::V2 { dist, cpu } => {
                saved.gicd_ctlr = read32(dist, GICD_CTLR);
                saved.gicc_ctlr = read32(cpu, GICC_CTLR);
                saved.gicc_pmr = read32(cpu, GICC_PMR);
                set_priority(banked, intid);
                write32(banked, ISENABLER0, bit);
                write32(dist, GICD_CTLR, saved.gicd_ctlr | GICD_CTLR_ENABLE);
                write32(cpu, GICC_PMR, PRIORITY_MASK);
                write32(cpu, GICC_CTLR, saved.gicc_ctlr | 1);
            }
            Gic::V3 { dist, redist } => {
                saved.gicd_ctlr = read32(dist, GICD_CTLR);
                saved.waker = read32(redist, GICR_WAKER);
                if saved.waker & WAKER_PROCESSOR_SLEEP != 0 {
                    write32(redist, GICR_WAKER, saved.waker & !WAKER_PROCESSOR_SLEEP);
                    wait_clear(redist, GICR_WAKER, WAKER_CHILDREN_ASLEEP, "GICR_WAKER.ChildrenAsleep")?;
                }
                write32(banked, IGROUPR0, read32(banked, IGROUPR0) | bit);
                set_priority(banked, intid);
                write32(banked, ISENABLER0, bit);
                let want = saved.gicd_ctlr | GICD_CTLR_ARE | GICD_CTLR_GRP1;
                if want != saved.gicd_ctlr {
                    write32(dist, GICD_CTLR, want);
                    wait_clear(dist, GICD_CTLR, GICD_CTLR_RWP, "GICD_CTLR.RWP")?;
                }
            }
        }
        Ok(saved)
    }

    /// GICv2: the pending interrupt with the highest priority, acknowledged (the whole
    /// GICC_IAR value, for [`Gic::end`]). GICv3 acknowledges through ICC_IAR1_EL1.
    pub fn acknowledge(&self) -> u32 {
        match *self {
            Gic::V2 { cpu, .. } => read32(cpu, GICC_IAR),
            Gic::V3 { .. } => SPURIOUS,
        }
    }

    /// GICv2: ends an acknowledged interrupt. GICv3 ends it through ICC_EOIR1_EL1.
    pub fn end(&self, iar: u32) {
        if let Gic::V2 { cpu, .. } = *self {
            write32(cpu, GICC_EOIR, iar);
        }
    }

    /// Stops forwarding `intid` (one this code did not enable and cannot serve).
    pub fn disable(&self, intid: u32) {
        let (Gic::V2 { dist, .. } | Gic::V3 { dist, .. }) = *self;
        if intid < 32 {
            write32(self.banked(), ICENABLER0, 1 << intid);
        } else {
            write32(dist, ICENABLER0 + 4 * (intid as u64 / 32), 1 << (intid % 32));
        }
    }

    /// Undoes [`Gic::enable_ppi`]: the interrupt disabled again unless it was enabled before,
    /// the control and mask registers as they were found.
    pub fn restore(&self, saved: &Saved) {
        if !saved.was_enabled {
            write32(self.banked(), ICENABLER0, 1 << saved.intid);
        }
        match *self {
            Gic::V2 { dist, cpu } => {
                write32(cpu, GICC_CTLR, saved.gicc_ctlr);
                write32(cpu, GICC_PMR, saved.gicc_pmr);
                write32(dist, GICD_CTLR, saved.gicd_ctlr);
            }
            Gic::V3 { .. } => {
                // Distributor routing and the redistributor's wake state stay as they are now:
                // turning affinity routing off again is not allowed once on, and the OS's GIC
                // driver wakes the redistributor anyway.
            }
        }
    }
}

fn set_priority(banked: u64, intid: u32) {
    // Byte-accessible in both versions; written as the word that holds it.
    let word = IPRIORITYR + 4 * (intid as u64 / 4);
    let shift = 8 * (intid % 4);
    let v = read32(banked, word) & !(0xff << shift) | (PRIORITY as u32) << shift;
    write32(banked, word, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain memory standing in for the register frames.
    fn frame(bytes: usize) -> Vec<u64> {
        vec![0u64; bytes / 8]
    }

    fn at(v: &[u64]) -> u64 {
        v.as_ptr() as u64
    }

    #[test]
    fn gicv2_enables_one_ppi_and_restores() {
        let dist = frame(0x1000);
        let cpu = frame(0x100);
        let gic = Gic::V2 { dist: at(&dist), cpu: at(&cpu) };
        write32(at(&cpu), GICC_PMR, 0x10);
        let saved = gic.enable_ppi(27).unwrap();
        assert_eq!(read32(at(&dist), ISENABLER0), 1 << 27);
        assert_eq!(read32(at(&dist), IPRIORITYR + 24) >> 24, PRIORITY as u32, "INTID 27 is byte 3 of IPRIORITYR6");
        assert_eq!(read32(at(&dist), GICD_CTLR), 1);
        assert_eq!((read32(at(&cpu), GICC_CTLR), read32(at(&cpu), GICC_PMR)), (1, PRIORITY_MASK));
        write32(at(&cpu), GICC_IAR, 27);
        assert_eq!(gic.acknowledge(), 27);
        gic.end(27);
        assert_eq!(read32(at(&cpu), GICC_EOIR), 27);
        gic.restore(&saved);
        assert_eq!(read32(at(&dist), ICENABLER0), 1 << 27, "disabled again");
        assert_eq!((read32(at(&dist), GICD_CTLR), read32(at(&cpu), GICC_CTLR), read32(at(&cpu), GICC_PMR)), (0, 0, 0x10), "as found");
    }

    #[test]
    fn gicv3_finds_this_cpus_redistributor_and_wakes_it() {
        // Three redistributors of 128 KiB; the second is this CPU's (affinity 0.0.0.1).
        let region = frame(3 * 0x2_0000);
        let base = at(&region);
        for (i, typer) in [0u64, 1 << 32, (2 << 32) | (1 << 4)].into_iter().enumerate() {
            // SAFETY: inside the buffer.
            unsafe { ((base + i as u64 * 0x2_0000 + GICR_TYPER) as *mut u64).write(typer) };
        }
        assert_eq!(find_redistributor(base, 3 * 0x2_0000, 1), Ok(base + 0x2_0000));
        assert_eq!(find_redistributor(base, 3 * 0x2_0000, 7), Err(GicError::NoRedistributor { affinity: 7 }), "stops at Last");
        let dist = frame(0x1000);
        let redist = base + 0x2_0000;
        write32(redist, GICR_WAKER, WAKER_PROCESSOR_SLEEP);
        let gic = Gic::V3 { dist: at(&dist), redist };
        let saved = gic.enable_ppi(26).unwrap();
        let sgi = redist + GICR_SGI_FRAME;
        assert_eq!(read32(redist, GICR_WAKER), 0, "awake");
        assert_eq!((read32(sgi, IGROUPR0), read32(sgi, ISENABLER0)), (1 << 26, 1 << 26), "group 1, enabled");
        assert_eq!(read32(at(&dist), GICD_CTLR), GICD_CTLR_ARE | GICD_CTLR_GRP1);
        gic.restore(&saved);
        assert_eq!(read32(sgi, ICENABLER0), 1 << 26);
    }

    #[test]
    fn a_redistributor_that_never_wakes_is_named() {
        let region = frame(0x2_0000);
        let redist = at(&region);
        write32(redist, GICR_WAKER, WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP);
        let dist = frame(0x1000);
        assert_eq!(Gic::V3 { dist: at(&dist), redist }.enable_ppi(27), Err(GicError::Stuck { register: "GICR_WAKER.ChildrenAsleep" }));
    }
}
