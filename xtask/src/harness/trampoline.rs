//! The hand-off the kexec relocate code (`arm64_relocate_new_kernel`) performs, as a tiny blob
//! QEMU starts the CPU on: mask interrupts, MMU and caches off, (for the VHE case) HCR_EL2.E2H
//! and TGE set like a VHE host kernel runs, x0 = the parameter block, x1..x3 = 0, jump.
//!
//! Hand-assembled so that the harness needs no cross toolchain; the encodings are unit-tested
//! against an assembler's output.

/// The exception level the emulator is entered at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EntryEl {
    /// EL1: QEMU virt without virtualization.
    #[value(name = "1")]
    El1,
    /// EL2 with HCR_EL2.E2H = 0 (nVHE host, after the hyp stub's soft restart).
    #[value(name = "2")]
    El2,
    /// EL2 with HCR_EL2.E2H = 1 (VHE host).
    #[value(name = "2vhe")]
    El2Vhe,
}

impl EntryEl {
    pub fn name(self) -> &'static str {
        match self {
            EntryEl::El1 => "EL1",
            EntryEl::El2 => "EL2 (nVHE, HCR_EL2.E2H=0)",
            EntryEl::El2Vhe => "EL2 (VHE, HCR_EL2.E2H=1)",
        }
    }
}

const fn movz(rd: u32, imm16: u32, hw: u32) -> u32 {
    0xd280_0000 | (hw << 21) | (imm16 << 5) | rd
}
const fn sysreg(op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {
    ((op0 - 2) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5)
}
const fn mrs(rt: u32, reg: u32) -> u32 {
    0xd530_0000 | reg | rt
}
const fn msr(reg: u32, rt: u32) -> u32 {
    0xd510_0000 | reg | rt
}
const fn orr(rd: u32, rn: u32, rm: u32) -> u32 {
    0xaa00_0000 | (rm << 16) | (rn << 5) | rd
}
const fn bic(rd: u32, rn: u32, rm: u32) -> u32 {
    0x8a20_0000 | (rm << 16) | (rn << 5) | rd
}
const fn ldr_literal(rt: u32, byte_offset: u32) -> u32 {
    0x5800_0000 | ((byte_offset / 4) << 5) | rt
}
const fn br(rn: u32) -> u32 {
    0xd61f_0000 | (rn << 5)
}
const ISB: u32 = 0xd503_3fdf;
const DSB_SY: u32 = 0xd503_3f9f;
const MSR_DAIFSET_ALL: u32 = 0xd503_4fdf;
const SCTLR_EL1: u32 = sysreg(3, 0, 1, 0, 0);
const SCTLR_EL2: u32 = sysreg(3, 4, 1, 0, 0);
const HCR_EL2: u32 = sysreg(3, 4, 1, 1, 0);

/// Builds the trampoline for `el` that enters the blob at `entry` with x0 = `param`.
pub fn build(el: EntryEl, param: u64, entry: u64) -> Vec<u8> {
    let mut code: Vec<u32> = vec![MSR_DAIFSET_ALL];
    // MMU, D-cache and I-cache off (SCTLR.M, C, I) at the level we run.
    let sctlr = if el == EntryEl::El1 { SCTLR_EL1 } else { SCTLR_EL2 };
    code.extend([mrs(4, sctlr), movz(5, 0x1005, 0), bic(4, 4, 5), msr(sctlr, 4), ISB]);
    if el == EntryEl::El2Vhe {
        // HCR_EL2.E2H (bit 34) and TGE (bit 27).
        code.extend([mrs(4, HCR_EL2), movz(5, 0x4, 2), movz(6, 0x800, 1), orr(4, 4, 5), orr(4, 4, 6), msr(HCR_EL2, 4), ISB]);
    }
    code.extend([DSB_SY, movz(1, 0, 0), movz(2, 0, 0), movz(3, 0, 0)]);
    // Two literal loads, a branch, then the literals (8-byte aligned).
    let here = code.len() as u32 * 4;
    let literals = (here + 12).next_multiple_of(8);
    code.push(ldr_literal(0, literals - here));
    code.push(ldr_literal(4, literals + 8 - (here + 4)));
    code.push(br(4));
    let mut bytes: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.resize(literals as usize, 0);
    bytes.extend_from_slice(&param.to_le_bytes());
    bytes.extend_from_slice(&entry.to_le_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_assembler() {
        // Values from `aarch64-linux-gnu-as` + objdump.
        assert_eq!(mrs(4, HCR_EL2), 0xd53c_1104); // mrs x4, hcr_el2
        assert_eq!(msr(HCR_EL2, 4), 0xd51c_1104); // msr hcr_el2, x4
        assert_eq!(mrs(4, SCTLR_EL1), 0xd538_1004); // mrs x4, sctlr_el1
        assert_eq!(msr(SCTLR_EL2, 4), 0xd51c_1004); // msr sctlr_el2, x4
        assert_eq!(movz(5, 0x4, 2), 0xd2c0_0085); // mov x5, #0x400000000
        assert_eq!(movz(6, 0x800, 1), 0xd2a1_0006); // mov x6, #0x8000000
        assert_eq!(movz(5, 0x1005, 0), 0xd282_00a5); // mov x5, #0x1005
        assert_eq!(orr(4, 4, 5), 0xaa05_0084); // orr x4, x4, x5
        assert_eq!(bic(4, 4, 5), 0x8a25_0084); // bic x4, x4, x5
        assert_eq!(ldr_literal(0, 8), 0x5800_0040); // ldr x0, .+8
        assert_eq!(br(4), 0xd61f_0080); // br x4
    }

    #[test]
    fn literals_follow_the_code() {
        let t = build(EntryEl::El2Vhe, 0x4123_4000, 0x4100_0000);
        assert_eq!(t.len() % 8, 0);
        let n = t.len();
        assert_eq!(u64::from_le_bytes(t[n - 16..n - 8].try_into().unwrap()), 0x4123_4000);
        assert_eq!(u64::from_le_bytes(t[n - 8..].try_into().unwrap()), 0x4100_0000);
        assert!(t.len() > build(EntryEl::El2, 0, 0).len(), "VHE adds the HCR_EL2 update");
    }
}
