//! The Secure Boot probe: LoadImage from a buffer on every file of a newc cpio, one line each
//! (`secure-boot-probe: verdict NAME: 0xSTATUS`), UnloadImage of whatever was loaded, then
//! `secure-boot-probe: done` and a shutdown. The same binary runs under EDK2 (the oracle) and
//! under the emulator, so their verdicts can be compared file by file.
//!
//! The cpio is the Linux initrd when one is served through LoadFile2 (the emulator, given the
//! probe and the cpio as a bundle), else `\corpus.cpio` on the probe's own volume (EDK2, which
//! started it from an ESP).
#![cfg_attr(target_os = "uefi", no_std)]
#![cfg_attr(target_os = "uefi", no_main)]

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!("secure-boot-probe is a UEFI application: cargo xtask builds it for aarch64-unknown-uefi");
}

#[cfg(target_os = "uefi")]
#[macro_use]
#[path = "../../common/console.rs"]
mod console;

#[cfg(target_os = "uefi")]
mod app {
    use core::ffi::c_void;
    use core::ptr::null_mut;
    use r_efi::efi::{self, Guid, Handle, Status};
    use r_efi::protocols::{file, load_file2, loaded_image, simple_file_system};

    use crate::console::{print, CON_OUT};

    const INITRD_MEDIA: Guid = Guid::from_fields(0x5568e427, 0x68fc, 0x4f3d, 0xac, 0x74, &[0xca, 0x55, 0x52, 0x31, 0xcc, 0x68]);

    /// The initrd through LoadFile2, as the Linux EFI stub reads it.
    unsafe fn initrd(bs: &efi::BootServices) -> Option<(*mut u8, usize)> {
        // VenMedia(LINUX_EFI_INITRD_MEDIA_GUID)/End.
        let mut path = [0u8; 24];
        path[..4].copy_from_slice(&[4, 3, 20, 0]);
        path[4..20].copy_from_slice(INITRD_MEDIA.as_bytes());
        path[20..].copy_from_slice(&[0x7f, 0xff, 4, 0]);
        let mut dp = path.as_mut_ptr() as *mut efi::protocols::device_path::Protocol;
        let mut handle: Handle = null_mut();
        // SAFETY: the boot services as the specification defines them, with our own buffers.
        unsafe {
            if (bs.locate_device_path)(&load_file2::PROTOCOL_GUID as *const _ as *mut _, &mut dp, &mut handle) != Status::SUCCESS {
                return None;
            }
            let mut lf: *mut c_void = null_mut();
            (bs.handle_protocol)(handle, &load_file2::PROTOCOL_GUID as *const _ as *mut _, &mut lf);
            let lf = lf as *mut load_file2::Protocol;
            let mut size = 0usize;
            ((*lf).load_file)(lf, dp, efi::Boolean::FALSE, &mut size, null_mut());
            let mut buf: *mut c_void = null_mut();
            if (bs.allocate_pool)(efi::LOADER_DATA, size, &mut buf) != Status::SUCCESS {
                return None;
            }
            (((*lf).load_file)(lf, dp, efi::Boolean::FALSE, &mut size, buf) == Status::SUCCESS).then_some((buf as *mut u8, size))
        }
    }

    /// `\corpus.cpio` on the volume the probe was started from.
    unsafe fn corpus_file(bs: &efi::BootServices, image: Handle) -> Option<(*mut u8, usize)> {
        // SAFETY: the boot services and file protocol as the specification defines them.
        unsafe {
            let mut li: *mut c_void = null_mut();
            (bs.handle_protocol)(image, &loaded_image::PROTOCOL_GUID as *const _ as *mut _, &mut li);
            let device = (*(li as *mut loaded_image::Protocol)).device_handle;
            let mut fs: *mut c_void = null_mut();
            if (bs.handle_protocol)(device, &simple_file_system::PROTOCOL_GUID as *const _ as *mut _, &mut fs) != Status::SUCCESS {
                return None;
            }
            let fs = fs as *mut simple_file_system::Protocol;
            let mut root: *mut file::Protocol = null_mut();
            ((*fs).open_volume)(fs, &mut root);
            let mut name: [u16; 13] = [0; 13];
            for (i, u) in "\\corpus.cpio".encode_utf16().enumerate() {
                name[i] = u;
            }
            let mut f: *mut file::Protocol = null_mut();
            if ((*root).open)(root, &mut f, name.as_mut_ptr(), file::MODE_READ, 0) != Status::SUCCESS {
                return None;
            }
            // The size: seek to the end, read the position.
            ((*f).set_position)(f, u64::MAX);
            let mut size = 0u64;
            ((*f).get_position)(f, &mut size);
            ((*f).set_position)(f, 0);
            let mut buf: *mut c_void = null_mut();
            (bs.allocate_pool)(efi::LOADER_DATA, size as usize, &mut buf);
            let mut n = size as usize;
            let s = ((*f).read)(f, &mut n, buf);
            ((*f).close)(f);
            (s == Status::SUCCESS && n == size as usize).then_some((buf as *mut u8, n))
        }
    }

    fn hex(b: &[u8]) -> usize {
        b.iter().fold(0, |a, &c| (a << 4) | (c as char).to_digit(16).unwrap_or(0) as usize)
    }

    #[unsafe(no_mangle)]
    extern "efiapi" fn efi_main(image: Handle, st: *mut efi::SystemTable) -> Status {
        // SAFETY: the firmware passes a valid system table; every call follows the services'
        // signatures.
        unsafe {
            CON_OUT = (*st).con_out;
            let bs = &*(*st).boot_services;
            let Some((buf, size)) = initrd(bs).or_else(|| corpus_file(bs, image)) else {
                say!("secure-boot-probe: no corpus (no LoadFile2 initrd, no \\corpus.cpio)");
                return Status::NOT_FOUND;
            };
            let cpio = core::slice::from_raw_parts(buf, size);
            // newc: 110-byte header ("070701", then 13 eight-digit hex fields), the name, the
            // data, each padded to 4 bytes.
            let mut at = 0;
            while at + 110 <= cpio.len() && &cpio[at..at + 6] == b"070701" {
                let field = |i: usize| hex(&cpio[at + 6 + 8 * i..at + 14 + 8 * i]);
                let (file_size, name_size) = (field(6), field(11));
                let name = core::str::from_utf8(&cpio[at + 110..at + 110 + name_size - 1]).unwrap_or("?");
                if name == "TRAILER!!!" {
                    break;
                }
                let data_at = (at + 110 + name_size).next_multiple_of(4);
                let data = &cpio[data_at..data_at + file_size];
                let mut h: Handle = null_mut();
                let s = (bs.load_image)(efi::Boolean::FALSE, image, null_mut(), data.as_ptr() as *mut c_void, data.len(), &mut h);
                say!("secure-boot-probe: verdict {name}: {:#x}", s.as_usize());
                if !h.is_null() {
                    (bs.unload_image)(h);
                }
                at = (data_at + file_size).next_multiple_of(4);
            }
            say!("secure-boot-probe: done");
            ((*(*st).runtime_services).reset_system)(efi::RESET_SHUTDOWN, Status::SUCCESS, 0, null_mut());
            Status::SUCCESS
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        print("secure-boot-probe: panic");
        loop {}
    }
}
