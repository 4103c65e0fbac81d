//! Secure Boot: what the emulator checks before it runs a PE image, as EDK2's
//! DxeImageVerificationLib does (UEFI 2.10 §32).

pub mod authenticode;
pub mod der;
pub mod hash;
pub mod pkcs7;
pub mod rsa;
pub mod sha1;
pub mod sha256;
pub mod signature_list;
pub mod verify;
pub mod x509;
