//! Secure Boot in the boot services: the policy read from the platform once, the Security and
//! Security2 architectural protocols (the PI interfaces EDK2's core calls for every image, and
//! which shim and systemd-stub replace to take part), and the check LoadImage and the first
//! image go through, always by way of the installed protocol.

use crate::efi::pe::PeImage;
use crate::efi::platform::Clock;
use crate::efi::secure_boot::verify::{verify, Accepted, Databases};
use crate::services::*;
use core::ffi::c_void;
use efi::protocols::device_path::Protocol as DevicePath;

/// `EFI_SECURITY_ARCH_PROTOCOL_GUID`.
pub const SECURITY_GUID: Guid = Guid::from_fields(0xa46423e3, 0x4617, 0x49f1, 0xb9, 0xff, &[0xd1, 0xbf, 0xa9, 0x11, 0x58, 0x39]);
/// `EFI_SECURITY2_ARCH_PROTOCOL_GUID`.
pub const SECURITY2_GUID: Guid = Guid::from_fields(0x94ab2f58, 0x1438, 0x4ef1, 0x91, 0x52, &[0x18, 0x94, 0x1a, 0x3a, 0x0e, 0x68]);
/// shim's variables (`MokListRT`, `MokListXRT`, `MokSBStateRT`).
pub const SHIM_LOCK_GUID: Guid = Guid::from_fields(0x605dab50, 0xe046, 0x4300, 0xab, 0xb6, &[0x3d, 0xd8, 0x10, 0xdd, 0x8b, 0x23]);

#[repr(C)]
pub struct SecurityProtocol {
    pub file_authentication_state: unsafe extern "efiapi" fn(*mut SecurityProtocol, u32, *const DevicePath) -> Status,
}

#[repr(C)]
pub struct Security2Protocol {
    pub file_authentication: unsafe extern "efiapi" fn(*mut Security2Protocol, *const DevicePath, *mut c_void, usize, efi::Boolean) -> Status,
}

/// What the platform asks for, read once at setup.
#[derive(Default)]
pub struct Policy {
    pub enforcing: bool,
    /// Not enforcing, but verify anyway and say what the verdict would be, and what it cost
    /// (`/chosen/efi-emulator,secure-boot-audit`).
    pub audit: bool,
    pub db: Vec<u8>,
    pub dbx: Vec<u8>,
    pub mok: Vec<u8>,
    pub mokx: Vec<u8>,
}

/// A variable's value from the platform, for the policy: `Ok(None)` when it does not exist.
pub type ReadVariable<'a> = &'a mut dyn FnMut(&str, &Guid) -> Result<Option<Vec<u8>>, Status>;

impl Policy {
    /// The policy of a platform whose variables `read` returns (`None`: no firmware). Secure
    /// Boot is enforced only when the firmware says `SecureBoot` = 1; the banner says which.
    pub fn from_platform(read: Option<ReadVariable>) -> Policy {
        let Some(read) = read else {
            log::info!("Secure Boot: not enforced: no firmware (SecureBoot = 0, nothing to verify against)");
            return Policy::default();
        };
        match read("SecureBoot", &efi::GLOBAL_VARIABLE) {
            Ok(Some(v)) if v == [1] => {}
            Ok(Some(v)) => {
                log::info!("Secure Boot: not enforced: the firmware's SecureBoot is {v:02x?}");
                return Policy::default();
            }
            Ok(None) => {
                log::info!("Secure Boot: not enforced: the firmware has no SecureBoot variable");
                return Policy::default();
            }
            Err(s) => {
                log::warn!("Secure Boot: not enforced: reading the firmware's SecureBoot failed with {:#x}", s.as_usize());
                return Policy::default();
            }
        }
        let mut list = |name: &str, guid: &Guid, forbids: bool| match read(name, guid) {
            Ok(v) => v.unwrap_or_default(),
            Err(s) if forbids => {
                // An unreadable revocation list revokes everything rather than nothing.
                log::error!("Secure Boot: reading {name} failed with {:#x}: every image will be refused", s.as_usize());
                alloc::vec![0]
            }
            Err(s) => {
                log::warn!("Secure Boot: reading {name} failed with {:#x}: it allows nothing", s.as_usize());
                Vec::new()
            }
        };
        use crate::efi::variables::IMAGE_SECURITY_DATABASE as DB;
        let p = Policy {
            enforcing: true,
            audit: false,
            db: list("db", &DB, false),
            dbx: list("dbx", &DB, true),
            mok: list("MokListRT", &SHIM_LOCK_GUID, false),
            mokx: list("MokListXRT", &SHIM_LOCK_GUID, true),
        };
        let count = |b: &[u8]| crate::efi::secure_boot::signature_list::entries(b).count();
        log::info!(
            "Secure Boot: enforced (the firmware's SecureBoot is 1): db {} entries, dbx {}, MokListRT {}, MokListXRT {}",
            count(&p.db),
            count(&p.dbx),
            count(&p.mok),
            count(&p.mokx)
        );
        p
    }

    fn databases(&self) -> Databases<'_> {
        Databases { db: &self.db, dbx: &self.dbx, mok: &self.mok, mokx: &self.mokx }
    }

    /// The verdict on `file` (named `name` in the log): SUCCESS, or ACCESS_DENIED with the
    /// image, the certificate and the reason logged. ACCESS_DENIED, not SECURITY_VIOLATION, is
    /// what EDK2 (Debian's 2022.11, the tests' oracle) returns for every refused image: LoadImage
    /// then loads nothing.
    pub fn check(&self, file: &[u8], name: &dyn core::fmt::Display) -> Status {
        if !self.enforcing && !self.audit {
            return Status::SUCCESS;
        }
        let start = Machine::ticks();
        let verdict = PeImage::parse(file).map_err(|_| None).and_then(|pe| verify(&pe, &self.databases()).map_err(Some));
        let us = (Machine::ticks() - start) as u128 * 1_000_000 / Machine::ticks_per_second().max(1) as u128;
        let cost = Cost { us: us as u64, accelerated: crate::efi::secure_boot::sha256::accelerated() };
        let (refused, prefix) = if self.enforcing { ("refused", "Secure Boot:") } else { ("would refuse", "Secure Boot audit (not enforced):") };
        match verdict {
            Ok(Accepted::Signed { signer, anchor }) => log::info!("{prefix} {name} accepted: signed by \"{signer}\", trusted through \"{anchor}\" {cost}"),
            Ok(Accepted::HashListed(alg)) => log::info!("{prefix} {name} accepted: its {} hash is in db {cost}", alg.name()),
            Err(None) => log::error!("{prefix} {refused} {name}: not a PE image {cost}"),
            Err(Some(r)) => match r.certificate {
                Some((subject, issuer)) => log::error!("{prefix} {refused} {name}: {}; certificate \"{subject}\" issued by \"{issuer}\" {cost}", r.reason),
                None => log::error!("{prefix} {refused} {name}: {} {cost}", r.reason),
            },
        }
        if verdict.is_err() && self.enforcing {
            Status::ACCESS_DENIED
        } else {
            Status::SUCCESS
        }
    }
}

/// What a verdict took, as the log shows it: `(verified in 12.345 ms, SHA-256 instructions)`.
struct Cost {
    us: u64,
    accelerated: bool,
}

impl core::fmt::Display for Cost {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let how = if self.accelerated { "SHA-256 instructions" } else { "portable SHA-256" };
        write!(f, "(verified in {}.{:03} ms, {how})", self.us / 1000, self.us % 1000)
    }
}

/// A device path shown in the log, or the image's size when there is none.
struct ImageName<'a>(Option<&'a [u8]>, usize);

impl core::fmt::Display for ImageName<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(path) => f.write_str(&crate::efi::device_path::path_text(path)),
            None => write!(f, "the {}-byte image", self.1),
        }
    }
}

efiapi! {
    fn file_authentication(this: *mut Security2Protocol, path: *const DevicePath, buffer: *mut c_void, size: usize, boot_policy: efi::Boolean) -> Status {
        let _ = (this, boot_policy);
        if buffer.is_null() || size == 0 {
            // Nothing to verify: refused when enforcing.
            return if with_core(|c| c.security.enforcing) { Status::ACCESS_DENIED } else { Status::SUCCESS };
        }
        // SAFETY: the caller's file buffer, `size` readable bytes.
        let Ok(file) = (unsafe { bytes_arg(buffer as *const u8, size) }) else { return Status::INVALID_PARAMETER };
        // SAFETY: an optional device path from the caller.
        let path = unsafe { crate::efi::device_path::read(path as *const u8) };
        with_core(|c| c.security.check(file, &ImageName(path, size)))
    }

    fn file_authentication_state(this: *mut SecurityProtocol, status: u32, path: *const DevicePath) -> Status {
        // The authentication status of firmware-volume sections: there are none here, and the
        // file itself is checked through Security2.
        let _ = (this, status, path);
        Status::SUCCESS
    }
}

/// Installs both protocols on one handle, as EDK2's SecurityStubDxe does.
pub fn install(c: &mut Core, policy: Policy) -> Result<(), EfiError> {
    c.security = policy;
    let v1 = publish(c, efi::BOOT_SERVICES_DATA, SecurityProtocol { file_authentication_state: file_authentication_state::entry })?;
    let v2 = publish(c, efi::BOOT_SERVICES_DATA, Security2Protocol { file_authentication: file_authentication::entry })?;
    let handle = c.handles.install(None, &SECURITY_GUID, v1 as usize)?;
    c.handles.install(Some(handle), &SECURITY2_GUID, v2 as usize)?;
    Ok(())
}

/// Asks the installed Security2 protocol (ours, or whatever a payload put in its place) about
/// an image, as EDK2's LoadImage does; without one, the Security protocol. Called with the core
/// free: a replacement may call boot services.
pub fn authenticate(file: &[u8], path: Option<&[u8]>, boot_policy: bool) -> Status {
    // Counted as a service call, so that the protocol's entry, returning, does not take itself
    // for the payload's outermost call and let the tick in while the emulator (starting the
    // first image) is about to hold the core.
    crate::services::SERVICE_DEPTH.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let status = ask_security_protocols(file, path, boot_policy);
    crate::services::SERVICE_DEPTH.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
    status
}

fn ask_security_protocols(file: &[u8], path: Option<&[u8]>, boot_policy: bool) -> Status {
    let (v2, v1) = with_core(|c| (c.handles.locate_protocol(&SECURITY2_GUID).ok(), c.handles.locate_protocol(&SECURITY_GUID).ok()));
    let path = path.map_or(core::ptr::null(), |p| p.as_ptr() as *const DevicePath);
    let policy = if boot_policy { efi::Boolean::TRUE } else { efi::Boolean::FALSE };
    match (v2, v1) {
        (Some(p), _) => {
            let p = p as *mut Security2Protocol;
            // SAFETY: the protocol instance installed under SECURITY2_GUID, with its function
            // (ours or a payload's replacement); the buffer and path outlive the call.
            unsafe { ((*p).file_authentication)(p, path, file.as_ptr() as *mut c_void, file.len(), policy) }
        }
        (None, Some(p)) => {
            let p = p as *mut SecurityProtocol;
            // SAFETY: as above, for the Security protocol.
            unsafe { ((*p).file_authentication_state)(p, 0, path) }
        }
        (None, None) => with_core(|c| c.security.check(file, &ImageName(None, file.len()))),
    }
}
