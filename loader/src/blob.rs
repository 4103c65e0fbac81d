//! Patching a built blob for one boot.

use efi_emulator::abi::{BlobHeader, BlobHeaderError, BLOB_FLAG_PARAM_SLOT, PARAM_SLOT_OFFSET};

/// A copy of `blob` that finds its parameter block at `param_addr` when entered with `x0 = 0`
/// (see [`BLOB_FLAG_PARAM_SLOT`]).
pub fn with_param_slot(blob: &[u8], param_addr: u64) -> Result<Vec<u8>, BlobHeaderError> {
    let header = BlobHeader::parse(blob)?;
    if header.flags & BLOB_FLAG_PARAM_SLOT == 0 {
        return Err(BlobHeaderError::NoParamSlot);
    }
    let mut copy = blob.to_vec();
    copy[PARAM_SLOT_OFFSET..PARAM_SLOT_OFFSET + 8].copy_from_slice(&param_addr.to_le_bytes());
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::fake_blob;
    use efi_emulator::abi::BLOB_FLAG_POSITION_INDEPENDENT;

    #[test]
    fn param_slot_is_written_only_into_the_copy() {
        let b = fake_blob(0x2_0000);
        let slotted = with_param_slot(&b, 0x4321_0000).unwrap();
        assert_eq!(BlobHeader::parse(&slotted).unwrap().param_slot, 0x4321_0000);
        assert_eq!(&slotted[..64], &b[..64]);
        let mut no_slot = b;
        no_slot[56] = BLOB_FLAG_POSITION_INDEPENDENT as u8;
        assert_eq!(with_param_slot(&no_slot, 0x1000), Err(BlobHeaderError::NoParamSlot));
    }
}
