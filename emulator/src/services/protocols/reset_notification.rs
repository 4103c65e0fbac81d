//! EFI_RESET_NOTIFICATION_PROTOCOL: functions a payload registers run, in order, when
//! ResetSystem is called during boot services, before the machine resets or powers off.

use crate::services::*;

/// `EFI_RESET_NOTIFICATION_PROTOCOL_GUID`.
pub const PROTOCOL_GUID: Guid = Guid::from_fields(0x9da34ae0, 0xeaf9, 0x4bbf, 0x8e, 0xc3, &[0xfd, 0x60, 0x22, 0x6c, 0x44, 0xbe]);

/// This protocol's part of the core: the functions registered, in order.
#[derive(Default)]
pub struct ResetNotifications(pub Vec<efi::RuntimeResetSystem>);

/// The function type registered: ResetSystem's own.
pub type ResetFunction = Option<efi::RuntimeResetSystem>;

#[repr(C)]
pub struct Protocol {
    pub register_reset_notify: unsafe extern "efiapi" fn(*mut Protocol, ResetFunction) -> Status,
    pub unregister_reset_notify: unsafe extern "efiapi" fn(*mut Protocol, ResetFunction) -> Status,
}

efiapi! {
    fn register_reset_notify(this: *mut Protocol, function: ResetFunction) -> Status {
        guarded(|| {
            let f = function.filter(|_| !this.is_null()).ok_or(EfiError::InvalidParameter)?;
            with_core(|c| {
                if c.reset_notifications.0.iter().any(|&g| core::ptr::fn_addr_eq(g, f)) {
                    return Err(EfiError::AlreadyStarted);
                }
                c.reset_notifications.0.push(f);
                Ok(())
            })
        })
    }

    fn unregister_reset_notify(this: *mut Protocol, function: ResetFunction) -> Status {
        guarded(|| {
            let f = function.filter(|_| !this.is_null()).ok_or(EfiError::InvalidParameter)?;
            with_core(|c| {
                let i = c.reset_notifications.0.iter().position(|&g| core::ptr::fn_addr_eq(g, f)).ok_or(EfiError::InvalidParameter)?;
                c.reset_notifications.0.remove(i);
                Ok(())
            })
        })
    }
}

/// Runs the registered functions with ResetSystem's arguments (during boot services only: the
/// functions live in boot-services memory).
///
/// # Safety
/// `size` and `data` are ResetSystem's, passed through as its caller gave them.
pub unsafe fn notify(kind: efi::ResetType, status: Status, size: usize, data: *mut core::ffi::c_void) {
    if exited() {
        return;
    }
    for f in with_core(|c| c.reset_notifications.0.clone()) {
        // SAFETY: a function the payload registered to be called with ResetSystem's arguments.
        unsafe { f(kind, status, size, data) };
    }
}

pub fn install(c: &mut Core) -> Result<(), EfiError> {
    install_protocol(c, &PROTOCOL_GUID, Protocol { register_reset_notify: register_reset_notify::entry, unregister_reset_notify: unregister_reset_notify::entry })?;
    Ok(())
}
