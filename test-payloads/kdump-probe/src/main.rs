//! The kdump tests' probe, a static arm64 binary in the test initramfs images.
//!
//! - `kdump-probe plant FILE`: fills a locked page with [`pattern`], writes its physical address
//!   (from `/proc/self/pagemap`) to FILE, and sleeps until the panic, so the page stays put.
//! - `kdump-probe check ADDRESS`: in the crash kernel, finds ADDRESS in `/proc/vmcore`'s
//!   PT_LOADs, compares the page with [`pattern`], and prints the vmcoreinfo's OSRELEASE.

use std::io::{Read, Seek, SeekFrom};

const PAGE: usize = 4096;
const PREFIX: &str = "efi-emulator-test: kdump: ";

/// The page's contents: a name, then bytes no allocator or zeroing leaves behind.
fn pattern() -> Vec<u8> {
    let mut p = b"efi-emulator kdump pattern ".to_vec();
    let mut x = 0x9e37_79b9u32;
    while p.len() < PAGE {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        p.push((x >> 24) as u8);
    }
    p
}

fn plant(file: &str) -> Result<(), String> {
    // SAFETY: an anonymous private mapping of one page, ours alone; mlock keeps it resident.
    let page = unsafe {
        let p = libc::mmap(std::ptr::null_mut(), PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE, -1, 0);
        if p == libc::MAP_FAILED {
            return Err("mmap failed".into());
        }
        std::ptr::copy_nonoverlapping(pattern().as_ptr(), p as *mut u8, PAGE);
        if libc::mlock(p, PAGE) != 0 {
            return Err(format!("mlock failed: {}", std::io::Error::last_os_error()));
        }
        p as u64
    };
    let mut pagemap = std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("/proc/self/pagemap: {e}"))?;
    pagemap.seek(SeekFrom::Start(page / PAGE as u64 * 8)).map_err(|e| e.to_string())?;
    let mut entry = [0u8; 8];
    pagemap.read_exact(&mut entry).map_err(|e| e.to_string())?;
    let entry = u64::from_le_bytes(entry);
    if entry >> 63 == 0 || entry & ((1 << 55) - 1) == 0 {
        return Err(format!("pagemap entry {entry:#x}: not present, or no PFN (not root?)"));
    }
    let phys = (entry & ((1 << 55) - 1)) * PAGE as u64;
    std::fs::write(file, format!("{phys:#x}")).map_err(|e| format!("{file}: {e}"))?;
    println!("{PREFIX}planted at {phys:#x}");
    loop {
        // SAFETY: pause has no arguments; the page stays mapped and locked while we wait.
        unsafe { libc::pause() };
    }
}

fn le<const N: usize>(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..N].copy_from_slice(&b[at..at + N]);
    u64::from_le_bytes(v)
}

fn check(address: &str) -> Result<(), String> {
    let addr = u64::from_str_radix(address.trim_start_matches("0x"), 16).map_err(|e| format!("address {address:?}: {e}"))?;
    let mut vmcore = std::fs::File::open("/proc/vmcore").map_err(|e| format!("/proc/vmcore: {e}"))?;
    let mut head = vec![0u8; 64 * 1024];
    let n = vmcore.read(&mut head).map_err(|e| e.to_string())?;
    head.truncate(n);
    if head.get(..5) != Some(b"\x7fELF\x02") {
        return Err("/proc/vmcore is not an ELF64 core".into());
    }
    let (phoff, phnum) = (le::<8>(&head, 32) as usize, le::<2>(&head, 56) as usize);
    let mut found = None;
    let mut osrelease = None;
    for i in 0..phnum {
        let p = phoff + i * 56;
        let (ty, offset, paddr, filesz) = (le::<4>(&head, p), le::<8>(&head, p + 8), le::<8>(&head, p + 24), le::<8>(&head, p + 32));
        if ty == 1 && paddr <= addr && addr + PAGE as u64 <= paddr + filesz {
            found = Some(offset + (addr - paddr));
        }
        if ty == 4 {
            let mut notes = vec![0u8; filesz as usize];
            vmcore.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
            vmcore.read_exact(&mut notes).map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&notes);
            if let Some(at) = text.find("OSRELEASE=") {
                osrelease = Some(text[at + 10..].split('\n').next().unwrap_or("").to_string());
            }
        }
    }
    println!("{PREFIX}vmcoreinfo OSRELEASE: {}", osrelease.as_deref().unwrap_or("(none)"));
    let offset = found.ok_or(format!("no PT_LOAD of /proc/vmcore holds {addr:#x}"))?;
    let mut page = vec![0u8; PAGE];
    vmcore.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    vmcore.read_exact(&mut page).map_err(|e| e.to_string())?;
    let same = page == pattern();
    println!("{PREFIX}pattern at {addr:#x}: {}", if same { "intact" } else { "DIFFERENT" });
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("plant"), Some(file)) => plant(file),
        (Some("check"), Some(addr)) => check(addr),
        _ => Err("usage: kdump-probe plant FILE | check ADDRESS".into()),
    };
    if let Err(e) = result {
        println!("{PREFIX}error: {e}");
        std::process::exit(1);
    }
}
