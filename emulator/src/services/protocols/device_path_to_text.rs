//! EFI_DEVICE_PATH_TO_TEXT_PROTOCOL: device paths and nodes as text (UEFI 2.10 section 10.6),
//! in pool memory the caller frees. Every node form of the section by name, in EDK2's full form
//! whatever DisplayOnly and AllowShortcuts say; a node no form carries exactly uses the generic
//! `Path(type,subtype,data)` form, so the text always parses back to the same bytes.

use crate::efi::device_path as dp;
use crate::services::*;
use efi::protocols::device_path::Protocol as DevicePath;
use efi::protocols::device_path_to_text as dptt;

/// `text` as a NUL-terminated UCS-2 string in pool memory.
fn to_pool(text: &str) -> *mut u16 {
    let units: Vec<u8> = text.encode_utf16().chain(core::iter::once(0)).flat_map(|u| u.to_le_bytes()).collect();
    pool_copy_for_payload(&units) as *mut u16
}

efiapi! {
    fn convert_device_node_to_text(node: *mut DevicePath, display_only: efi::Boolean, allow_shortcuts: efi::Boolean) -> *mut u16 {
        let _ = (display_only, allow_shortcuts);
        // SAFETY: the payload's node: its 4-byte header, then the length that header gives.
        match unsafe { dp::read_node(node as *const u8) } {
            Some(bytes) => to_pool(&dp::node_text(bytes)),
            None => core::ptr::null_mut(),
        }
    }

    fn convert_device_path_to_text(path: *mut DevicePath, display_only: efi::Boolean, allow_shortcuts: efi::Boolean) -> *mut u16 {
        let _ = (display_only, allow_shortcuts);
        // SAFETY: the payload's device path (NULL and malformed paths give NULL).
        match unsafe { dp::read(path as *const u8) } {
            Some(bytes) => to_pool(&dp::path_text(bytes)),
            None => core::ptr::null_mut(),
        }
    }
}

/// Publishes the protocol on `handle`, DevicePathUtilities' (see its `install`).
pub fn install(c: &mut Core, handle: usize) -> Result<(), EfiError> {
    let protocol = dptt::Protocol { convert_device_node_to_text: convert_device_node_to_text::entry, convert_device_path_to_text: convert_device_path_to_text::entry };
    install_protocol_on(c, Some(handle), &dptt::PROTOCOL_GUID, protocol)?;
    Ok(())
}
