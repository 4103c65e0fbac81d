//! The simulated machine the host tests run the services on: a counter that moves when read,
//! a seeded random generator, page permissions in a map, a console that records, and images
//! that are host functions run on a thread of their own (so Exit can leave them mid-call).

use super::protocols::{memory_attribute, rng};
use super::tables::new_core;
use super::*;
use crate::efi::memory::{MemoryMap, Region};
use crate::efi::platform::{Access, BulkCopy, Clock, ConsoleIo, Entropy, HeapRoom, Images, Power, PowerAction, ProtectError, Protection};
use std::collections::{BTreeMap, VecDeque};
use std::string::String;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::vec;

pub struct HostMachine;

/// Counter ticks per second: one tick per microsecond.
pub const TICKS_PER_SECOND: u64 = 1_000_000;

/// The machine's state, reset by every [`machine`].
#[derive(Default)]
pub struct State {
    pub ticks: u64,
    pub random: Option<u64>,
    pub pages: BTreeMap<u64, Access>,
    pub console_out: String,
    pub console_in: VecDeque<u8>,
    pub power: Option<PowerAction>,
    pub images_loaded: usize,
    pub rtc: Option<u64>,
    /// The emulator's heap: bytes free (`None`: plenty), and the regions it was given.
    pub heap_free: Option<u64>,
    pub heap_grown: Vec<(u64, u64)>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// One service test at a time: the core, the variable store and EXITED are globals.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` with the machine state.
pub fn state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    f(STATE.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(State::default))
}

/// What StartImage saves: where Exit sends the status.
#[derive(Default)]
pub struct ExitContext {
    exit: Option<mpsc::Sender<usize>>,
}

/// A host function posing as an image entry point.
pub type HostEntry = extern "efiapi" fn(efi::Handle, *mut efi::SystemTable) -> Status;

struct SendPtr(*mut efi::SystemTable);
// SAFETY: the image thread runs while the test thread waits for it: never both at once.
unsafe impl Send for SendPtr {}

impl Clock for HostMachine {
    fn ticks() -> u64 {
        state(|s| {
            s.ticks += 1;
            s.ticks
        })
    }

    fn ticks_per_second() -> u64 {
        TICKS_PER_SECOND
    }

    fn micros_since_entry() -> u64 {
        state(|s| s.ticks)
    }

    fn rtc_seconds() -> Option<u64> {
        state(|s| s.rtc)
    }

    fn set_rtc_seconds(seconds: u64) -> Result<(), ProtectError> {
        state(|s| match s.rtc.as_mut() {
            Some(r) if seconds <= u32::MAX as u64 => {
                *r = seconds;
                Ok(())
            }
            _ => Err(ProtectError),
        })
    }

    fn set_interrupts(_enabled: bool) {}
    fn restore_interrupt_mask(_saved: u64) {}
    fn mask_interrupts() {
        // Nothing interrupts a host test.
    }
}

impl Entropy for HostMachine {
    fn random(reseed: bool) -> Option<u64> {
        state(|s| {
            let x = s.random.as_mut()?;
            // xorshift64; a reseed stirs in the counter.
            if reseed {
                *x ^= s.ticks | 1;
            }
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            Some(*x)
        })
    }

    fn has_random() -> bool {
        state(|s| s.random.is_some())
    }
}

impl Protection for HostMachine {
    fn access_of(addr: u64) -> Option<Access> {
        state(|s| s.pages.get(&(addr & !(PAGE_SIZE - 1))).copied())
    }

    fn set_access(base: u64, size: u64, access: Access) -> Result<(), ProtectError> {
        state(|s| {
            let pages = base & !(PAGE_SIZE - 1)..(base + size).next_multiple_of(PAGE_SIZE);
            if pages.clone().step_by(PAGE_SIZE as usize).any(|p| !s.pages.contains_key(&p)) {
                return Err(ProtectError);
            }
            for p in pages.step_by(PAGE_SIZE as usize) {
                s.pages.insert(p, access);
            }
            Ok(())
        })
    }

    fn code_written(_start: u64, _size: u64) {
        // The host runs no code from image memory: there is no instruction cache to sync.
    }
}

impl ConsoleIo for HostMachine {
    fn console_write(text: &str) {
        state(|s| s.console_out.push_str(text));
    }

    fn console_read() -> Option<u8> {
        state(|s| s.console_in.pop_front())
    }

    fn console_has_input() -> bool {
        state(|s| !s.console_in.is_empty())
    }
}

impl Images for HostMachine {
    type ExitContext = ExitContext;

    unsafe fn start_image(entry: u64, handle: usize, systab: *mut efi::SystemTable, _stack_top: u64, ctx: *mut ExitContext) -> usize {
        let (tx, rx) = mpsc::channel();
        // SAFETY: `ctx` is valid for the call (the trait's contract).
        unsafe { (*ctx).exit = Some(tx.clone()) };
        // SAFETY: host tests give images a `HostEntry` as their entry point.
        let entry: HostEntry = unsafe { core::mem::transmute::<usize, HostEntry>(entry as usize) };
        let systab = SendPtr(systab);
        std::thread::spawn(move || {
            let systab = systab;
            let status = entry(handle as efi::Handle, systab.0);
            let _ = tx.send(status.as_usize());
        });
        rx.recv().expect("the image thread ended without a status")
    }

    unsafe fn exit_image(ctx: *mut ExitContext, status: usize) -> ! {
        // SAFETY: the context of a running start_image (the trait's contract).
        let exit = unsafe { (*ctx).exit.take() }.expect("Exit without StartImage");
        let _ = exit.send(status);
        // The image's thread never runs again, as the image's frames never do on the blob.
        loop {
            std::thread::park();
        }
    }

    fn image_loaded(_base: u64, _size: u64, _handle: usize) {
        state(|s| s.images_loaded += 1);
    }
}

impl Power for HostMachine {
    fn power(action: PowerAction) -> ! {
        state(|s| s.power = Some(action));
        loop {
            std::thread::park();
        }
    }

    fn fatal(args: core::fmt::Arguments) -> ! {
        panic!("fatal: {args}")
    }
}

impl BulkCopy for HostMachine {
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy(src, dst, len) }
    }

    unsafe fn fill(dst: *mut u8, value: u8, len: usize) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::write_bytes(dst, value, len) }
    }
}

impl HeapRoom for HostMachine {
    fn heap_free() -> u64 {
        state(|s| s.heap_free.unwrap_or(u64::MAX))
    }

    unsafe fn heap_grow(start: u64, size: u64) -> bool {
        state(|s| {
            s.heap_grown.push((start, size));
            s.heap_free = s.heap_free.map(|f| f + size);
            true
        })
    }
}

/// RAM the simulated machine has.
pub const RAM_BYTES: usize = 16 << 20;

/// A running machine: boot services set up over host RAM. Dropping it ends the test's turn.
pub struct TestMachine {
    pub systab: *mut efi::SystemTable,
    ram: Vec<u8>,
    ram_bytes: usize,
    // Last: the next test may start only once this one's RAM is gone.
    _serial: MutexGuard<'static, ()>,
}

impl TestMachine {
    pub fn bs(&self) -> &efi::BootServices {
        // SAFETY: the system table and its boot services table live in `ram`.
        unsafe { &*(*self.systab).boot_services }
    }

    pub fn rt(&self) -> &efi::RuntimeServices {
        // SAFETY: as above.
        unsafe { &*(*self.systab).runtime_services }
    }

    /// Where host RAM starts and ends.
    pub fn ram(&self) -> (u64, u64) {
        let start = (self.ram.as_ptr() as u64).next_multiple_of(PAGE_SIZE);
        (start, start + self.ram_bytes as u64)
    }
}

/// Boot services over fresh host RAM, with a console, the memory attribute protocol (every page
/// RW+X), an RNG, and one image record (the "kernel") whose handle is returned.
pub fn machine() -> (TestMachine, usize) {
    machine_with_ram(RAM_BYTES)
}

/// [`machine`] with `ram_bytes` of RAM (whole pages; the fuzz target takes less, to run faster).
pub fn machine_with_ram(ram_bytes: usize) -> (TestMachine, usize) {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(State { random: Some(0x9e37_79b9_7f4a_7c15), ..State::default() });
    let ram = vec![0u8; ram_bytes + PAGE_SIZE as usize];
    let start = (ram.as_ptr() as u64).next_multiple_of(PAGE_SIZE);
    state(|s| {
        for p in (start..start + ram_bytes as u64).step_by(PAGE_SIZE as usize) {
            s.pages.insert(p, Access::RAM);
        }
    });
    let map = MemoryMap::new(vec![Region { ty: efi::CONVENTIONAL_MEMORY, start, pages: ram_bytes as u64 / PAGE_SIZE, attr: efi::MEMORY_WB, virt: 0, allocated: false }]);
    super::state::reset_for_test();
    super::runtime::reset_for_test();
    let mut c = new_core(map, None).expect("boot services over host RAM");
    memory_attribute::install(&mut c).unwrap();
    rng::install(&mut c).unwrap();
    let kernel = c.handles.install(None, &efi::protocols::loaded_image::PROTOCOL_GUID, 0x1000).unwrap();
    c.images.push(super::image::Image {
        handle: kernel,
        loaded_image: core::ptr::null_mut(),
        base: 0,
        pages: 0,
        entry: 0,
        application: true,
        started: true,
        exit_context: None,
        exit_data: None,
        owned: Vec::new(),
        refused: false,
        own_initrd: false,
    });
    tables::publish_rt_properties(&mut c, None).unwrap();
    let systab = c.tables.systab;
    install(c);
    (TestMachine { systab, ram, ram_bytes, _serial: serial }, kernel)
}
