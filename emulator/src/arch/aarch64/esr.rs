//! Decoding of the Exception Syndrome Register for the fault dump (portable, host-tested).

use core::fmt;

/// The exception class, ESR bits \[31:26\].
pub fn class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

pub fn class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped SVE/SIMD/FP access",
        0x0e => "illegal execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "trapped MSR/MRS/system instruction",
        0x19 => "trapped SVE access",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort from the current EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort from the current EL",
        0x26 => "SP alignment fault",
        0x2c => "floating-point exception",
        0x2f => "SError interrupt",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "reserved exception class",
    }
}

/// The fault status code of an abort (ISS bits \[5:0\]) in words.
pub fn fault_status(fsc: u8) -> (&'static str, Option<u8>) {
    let level = Some(fsc & 3);
    match fsc & 0x3c {
        0x00 => ("address size fault", level),
        0x04 => ("translation fault", level),
        0x08 => ("access flag fault", level),
        0x0c => ("permission fault", level),
        _ => match fsc {
            0x10 => ("synchronous external abort", None),
            0x11 => ("synchronous tag check fault", None),
            0x21 => ("alignment fault", None),
            0x30 => ("TLB conflict abort", None),
            _ => ("other fault", None),
        },
    }
}

/// ESR rendered for a human: the class, and for aborts the fault kind, level and access.
pub struct Decoded(pub u64);

impl fmt::Display for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esr = self.0;
        let ec = class(esr);
        write!(f, "EC {ec:#04x} {}", class_name(ec))?;
        if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
            let fsc = (esr & 0x3f) as u8;
            let (what, level) = fault_status(fsc);
            write!(f, ": {what}")?;
            if let Some(l) = level {
                write!(f, " at level {l}")?;
            }
            write!(f, " (FSC {fsc:#04x})")?;
            if ec >= 0x24 {
                f.write_str(if esr & (1 << 6) != 0 { ", write" } else { ", read" })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn decodes_a_read_translation_fault() {
        assert_eq!(format!("{}", Decoded(0x9600_0004)), "EC 0x25 data abort from the current EL: translation fault at level 0 (FSC 0x04), read");
    }

    #[test]
    fn decodes_a_write_permission_fault_and_other_classes() {
        assert_eq!(format!("{}", Decoded(0x9600_004f)), "EC 0x25 data abort from the current EL: permission fault at level 3 (FSC 0x0f), write");
        assert_eq!(format!("{}", Decoded(0x0200_0000)), "EC 0x00 unknown reason (undefined instruction)");
        assert_eq!(format!("{}", Decoded(0x8600_0021)), "EC 0x21 instruction abort from the current EL: alignment fault (FSC 0x21)");
        assert_eq!(class_name(0x3c), "BRK instruction");
    }
}
