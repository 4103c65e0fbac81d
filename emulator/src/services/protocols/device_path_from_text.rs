//! EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL: the inverse of DevicePathToText (every node form of UEFI
//! 2.10 section 10.6, the generic `Path(type,subtype,data)` and its per-type kin, file paths), in
//! pool memory the caller frees. An unknown name or text it cannot read exactly gives NULL.

use crate::efi::device_path as dp;
use crate::services::*;
use efi::protocols::device_path::Protocol as DevicePath;
use efi::protocols::device_path_from_text as dpft;

/// The payload's text, or `None` for NULL, unterminated or not valid UTF-16.
///
/// # Safety
/// `text` is NULL or a NUL-terminated UCS-2 string.
unsafe fn text_arg(text: *const u16) -> Option<alloc::string::String> {
    // SAFETY: per this function's contract.
    let units = unsafe { ucs2_arg(text) }.ok()?;
    alloc::string::String::from_utf16(units).ok()
}

fn to_pool(bytes: Option<Vec<u8>>) -> *mut DevicePath {
    bytes.map_or(core::ptr::null_mut(), |b| pool_copy_for_payload(&b) as *mut DevicePath)
}

efiapi! {
    fn convert_text_to_device_node(text: *const u16) -> *mut DevicePath {
        // SAFETY: the payload's string argument.
        to_pool(unsafe { text_arg(text) }.and_then(|t| dp::node_from_text(&t)))
    }

    fn convert_text_to_device_path(text: *const u16) -> *mut DevicePath {
        // SAFETY: the payload's string argument.
        to_pool(unsafe { text_arg(text) }.and_then(|t| dp::path_from_text(&t)))
    }
}

/// Publishes the protocol on `handle`, DevicePathUtilities' (see its `install`).
pub fn install(c: &mut Core, handle: usize) -> Result<(), EfiError> {
    let protocol = dpft::Protocol { convert_text_to_device_node: convert_text_to_device_node::entry, convert_text_to_device_path: convert_text_to_device_path::entry };
    install_protocol_on(c, Some(handle), &dpft::PROTOCOL_GUID, protocol)?;
    Ok(())
}
