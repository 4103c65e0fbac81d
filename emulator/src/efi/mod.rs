//! The portable UEFI core: knows UEFI, knows nothing of registers or MMIO.

pub mod collation;
pub mod crc32;
pub mod decompress;
pub mod device_path;
pub mod event_log;
pub mod events;
pub mod fat;
pub mod guids;
pub mod handles;
pub mod image_info;
pub mod image_policy;
pub mod memory;
pub mod pe;
pub mod platform;
pub mod pool;
pub mod secure_boot;
pub mod tcg2;
pub mod time;
pub mod variables;

use r_efi::efi::Status;

/// A UEFI error, as the core returns it; only the service shims turn it into a `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EfiError {
    LoadError,
    InvalidParameter,
    Unsupported,
    BadBufferSize,
    BufferTooSmall,
    NotReady,
    DeviceError,
    Timeout,
    VolumeCorrupted,
    MediaChanged,
    WriteProtected,
    OutOfResources,
    NotFound,
    AccessDenied,
    AlreadyStarted,
    Aborted,
    SecurityViolation,
    VolumeFull,
}

impl EfiError {
    pub fn status(self) -> Status {
        match self {
            Self::LoadError => Status::LOAD_ERROR,
            Self::InvalidParameter => Status::INVALID_PARAMETER,
            Self::Unsupported => Status::UNSUPPORTED,
            Self::BadBufferSize => Status::BAD_BUFFER_SIZE,
            Self::BufferTooSmall => Status::BUFFER_TOO_SMALL,
            Self::NotReady => Status::NOT_READY,
            Self::DeviceError => Status::DEVICE_ERROR,
            Self::VolumeFull => Status::VOLUME_FULL,
            Self::Timeout => Status::TIMEOUT,
            Self::VolumeCorrupted => Status::VOLUME_CORRUPTED,
            Self::MediaChanged => Status::MEDIA_CHANGED,
            Self::WriteProtected => Status::WRITE_PROTECTED,
            Self::OutOfResources => Status::OUT_OF_RESOURCES,
            Self::NotFound => Status::NOT_FOUND,
            Self::AccessDenied => Status::ACCESS_DENIED,
            Self::AlreadyStarted => Status::ALREADY_STARTED,
            Self::Aborted => Status::ABORTED,
            Self::SecurityViolation => Status::SECURITY_VIOLATION,
        }
    }
}

/// `Ok(())` is `EFI_SUCCESS`.
pub fn status_of(r: Result<(), EfiError>) -> Status {
    match r {
        Ok(()) => Status::SUCCESS,
        Err(e) => e.status(),
    }
}
