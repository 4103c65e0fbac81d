//! The kexec_file bundle a loader hands `kexec_file_load` as its kernel: a newc archive of the PE
//! file and what goes with it (the table is in the emulator's `abi::bundle`, which opens it).

/// The bundle of a PE file, its initrd and its command line (see the module's table).
pub fn make(kernel: &[u8], initrd: Option<&[u8]>, cmdline: Option<&str>) -> Vec<u8> {
    make_with_esp(kernel, initrd, cmdline, None)
}

/// [`make`], with an ESP image and, optionally, where the kernel lies in it.
pub fn make_with_esp(kernel: &[u8], initrd: Option<&[u8]>, cmdline: Option<&str>, esp: Option<(&[u8], Option<&str>)>) -> Vec<u8> {
    let mut c = crate::cpio::Cpio::default();
    c.file("kernel", 0o644, kernel);
    if let Some(i) = initrd {
        c.file("initrd", 0o644, i);
    }
    if let Some(text) = cmdline {
        c.file("cmdline", 0o644, text.as_bytes());
    }
    if let Some((image, path)) = esp {
        c.file("esp", 0o644, image);
        if let Some(p) = path {
            c.file("esp-path", 0o644, p.as_bytes());
        }
    }
    c.finish()
}
