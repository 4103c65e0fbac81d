//! SHA-256 with the Armv8 Cryptographic Extension (SHA256H, SHA256H2, SHA256SU0, SHA256SU1):
//! four rounds an instruction pair, about a tenth of the portable code's instructions. Offered
//! to the Secure Boot core when ID_AA64ISAR0_EL1.SHA2 says the CPU has them.

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// ID_AA64ISAR0_EL1.SHA2 (bits 15:12): 1 or more, the SHA-256 instructions exist.
pub fn present() -> bool {
    let isar0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { core::arch::asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack)) };
    (isar0 >> 12) & 0xf != 0
}

/// The block function for [`crate::efi::secure_boot::sha256`]; call only where [`present`].
pub fn blocks(state: &mut [u32; 8], data: &[u8]) {
    // SAFETY: installed only after `present()` said the instructions exist.
    unsafe { blocks_with_instructions(state, data) }
}

/// The loop in assembly: with the emulator's `strict-align` target the intrinsics' 16-byte
/// loads become byte loads, and at `opt-level = "z"` the round constants are reloaded every
/// block. Here `ld1` takes the unaligned message, the 64 round constants stay in v4-v19, and a
/// block costs 99 instructions (1.55 per byte).
#[target_feature(enable = "sha2")]
unsafe fn blocks_with_instructions(state: &mut [u32; 8], data: &[u8]) {
    let count = data.len() / 64;
    if count == 0 {
        return;
    }
    // SAFETY: reads `count` whole blocks from `data` and the 256 bytes of `K`, reads and writes
    // the 32 bytes of `state`; uses only the vector registers it declares clobbered (not x18).
    // The caller made sure the SHA-256 instructions exist.
    unsafe {
        core::arch::asm!(
            "ld1 {{v4.4s-v7.4s}}, [{k}], #64",
            "ld1 {{v8.4s-v11.4s}}, [{k}], #64",
            "ld1 {{v12.4s-v15.4s}}, [{k}], #64",
            "ld1 {{v16.4s-v19.4s}}, [{k}]",
            "ld1 {{v20.4s, v21.4s}}, [{state}]",
            "2:",
            "ld1 {{v0.16b-v3.16b}}, [{data}], #64",
            "rev32 v0.16b, v0.16b",
            "rev32 v1.16b, v1.16b",
            "rev32 v2.16b, v2.16b",
            "rev32 v3.16b, v3.16b",
            "mov v22.16b, v20.16b",
            "mov v23.16b, v21.16b",
            // Rounds 0..3.
            "add v24.4s, v0.4s, v4.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v0.4s, v1.4s",
            "sha256su1 v0.4s, v2.4s, v3.4s",
            // Rounds 4..7.
            "add v24.4s, v1.4s, v5.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v1.4s, v2.4s",
            "sha256su1 v1.4s, v3.4s, v0.4s",
            // Rounds 8..11.
            "add v24.4s, v2.4s, v6.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v2.4s, v3.4s",
            "sha256su1 v2.4s, v0.4s, v1.4s",
            // Rounds 12..15.
            "add v24.4s, v3.4s, v7.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v3.4s, v0.4s",
            "sha256su1 v3.4s, v1.4s, v2.4s",
            // Rounds 16..19.
            "add v24.4s, v0.4s, v8.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v0.4s, v1.4s",
            "sha256su1 v0.4s, v2.4s, v3.4s",
            // Rounds 20..23.
            "add v24.4s, v1.4s, v9.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v1.4s, v2.4s",
            "sha256su1 v1.4s, v3.4s, v0.4s",
            // Rounds 24..27.
            "add v24.4s, v2.4s, v10.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v2.4s, v3.4s",
            "sha256su1 v2.4s, v0.4s, v1.4s",
            // Rounds 28..31.
            "add v24.4s, v3.4s, v11.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v3.4s, v0.4s",
            "sha256su1 v3.4s, v1.4s, v2.4s",
            // Rounds 32..35.
            "add v24.4s, v0.4s, v12.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v0.4s, v1.4s",
            "sha256su1 v0.4s, v2.4s, v3.4s",
            // Rounds 36..39.
            "add v24.4s, v1.4s, v13.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v1.4s, v2.4s",
            "sha256su1 v1.4s, v3.4s, v0.4s",
            // Rounds 40..43.
            "add v24.4s, v2.4s, v14.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v2.4s, v3.4s",
            "sha256su1 v2.4s, v0.4s, v1.4s",
            // Rounds 44..47.
            "add v24.4s, v3.4s, v15.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "sha256su0 v3.4s, v0.4s",
            "sha256su1 v3.4s, v1.4s, v2.4s",
            // Rounds 48..51.
            "add v24.4s, v0.4s, v16.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            // Rounds 52..55.
            "add v24.4s, v1.4s, v17.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            // Rounds 56..59.
            "add v24.4s, v2.4s, v18.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            // Rounds 60..63.
            "add v24.4s, v3.4s, v19.4s",
            "mov v25.16b, v20.16b",
            "sha256h q20, q21, v24.4s",
            "sha256h2 q21, q25, v24.4s",
            "add v20.4s, v20.4s, v22.4s",
            "add v21.4s, v21.4s, v23.4s",
            "subs {count}, {count}, #1",
            "b.ne 2b",
            "st1 {{v20.4s, v21.4s}}, [{state}]",
            k = inout(reg) K.as_ptr() => _,
            state = in(reg) state.as_mut_ptr(),
            data = inout(reg) data.as_ptr() => _,
            count = inout(reg) count => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _,
            options(nostack),
        );
    }
}
