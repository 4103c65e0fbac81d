//! The boot flow on the target: entry -> console -> validation -> banner -> MMU -> payload.

use crate::abi::memory_type_name;
use crate::abi::options::Options;
use crate::abi::validate::{self, BlobPlacement, PhysMemory, Validated};
use crate::arch::aarch64::cpu::{self, ExceptionLevel};
use crate::arch::aarch64::memory_plan::{self, BlobLayout, PlanNote};
use crate::arch::aarch64::mmu::{self, BumpFrames};
use crate::arch::aarch64::page_table::{Attributes, PageTables};
use crate::arch::aarch64::{entry, exceptions, psci};
use crate::drivers::fdt::Fdt;
use crate::efi::pe::PeImage;
use crate::mem::{Extent, PAGE_SIZE};
use crate::services::diagnostics::timeline::{self, Milestone};
use crate::services::{self};
use crate::{console, fatal, println};
use log::{info, warn};
use setup::{EspInput, Reserved};

pub mod setup;

/// Physical memory read in place: the MMU is off or RAM is identity-mapped.
pub(super) struct RawMemory;

impl PhysMemory for RawMemory {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        if addr == 0 || addr.checked_add(len as u64).is_none() {
            return None;
        }
        // SAFETY: the validator only asks for ranges it has established to be RAM from the
        // memory map (or the parameter block's own first bytes at x0, which the ABI promises);
        // nothing writes them while the slice lives.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }
}

/// Page-table frames the emulator may take from the start of the mempool: a base for the
/// blocks of RAM and the devices, and two frames for each descriptor, whose edges may each
/// split a 2 MiB block (reserved memory stays unmapped).
fn table_budget(v: &Validated) -> u64 {
    (512 * 1024 + v.map.len() as u64 * 2 * PAGE_SIZE).min(v.mempool.size / 2)
}

#[unsafe(no_mangle)]
extern "C" fn efi_emulator_main(param_addr: u64, _base: u64, entry_ticks: u64) -> ! {
    cpu::set_entry_ticks(entry_ticks);
    let el = ExceptionLevel::current();
    psci::set_conduit(match el {
        ExceptionLevel::El1 => psci::Conduit::Hvc,
        ExceptionLevel::El2 { .. } => psci::Conduit::Smc,
    });
    let blob = entry::blob_layout();
    exceptions::set_known_images((blob.base, blob.base + blob.mem_end), (0, 0));
    if let Some(dtb) = device_tree_at(param_addr) {
        let (param, sp) = enter_from_device_tree(dtb, &blob);
        KEXEC_FILE_ENTRY.store(true, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: `param` is a block written just now, in RAM the plan keeps for it, with its
        // stack below `sp`; the boot restarts from the top and never returns here.
        unsafe { entry::efi_emulator_restart(param, blob.base, entry_ticks, sp) }
    }
    start_console(param_addr);

    let placement = BlobPlacement { start: blob.base, mem_size: blob.mem_end };
    let mut v = match validate::validate_with(&RawMemory, param_addr, placement, &mut |w| warn!("{w}"), true) {
        Ok(v) => v,
        Err(e) => fatal!("{e}"),
    };
    if v.derive_firmware {
        derive_firmware(&v);
        v = validate::validate(&RawMemory, param_addr, placement, &mut |_| ()).unwrap_or_else(|e| fatal!("{e} (after taking rt_info from the firmware)"));
    }
    exceptions::set_known_images((blob.base, blob.base + blob.mem_end), (v.kernel.start, v.kernel.end()));
    let rtc = if v.runtime_phys.is_none() { claim_rtc(&v) } else { None };
    let dtb = RawMemory.bytes(v.dtb.start, v.dtb.size as usize).unwrap();
    let fdt = Fdt::new(dtb).unwrap_or_else(|e| fatal!("dtb at {:#x}: {e}", v.dtb.start));
    match fdt.psci_method() {
        Some("hvc") => psci::set_conduit(psci::Conduit::Hvc),
        Some("smc") => psci::set_conduit(psci::Conduit::Smc),
        other => warn!("/psci method is \"{}\", neither \"hvc\" nor \"smc\"; keeping {}", other.unwrap_or("(none)"), psci::conduit().name()),
    }

    banner(el, &blob, &v, &fdt);
    // The ESP a kexec_load loader named in /chosen, or the one a kexec_file bundle brought.
    let esp = EspInput::from_fdt(&fdt).or_else(|| BUNDLE_ESP.with(|e| *e));
    let samples = crash_boot(&v, &blob, &fdt, esp.map(|e| e.image));
    let tables = enable_mmu(el, &blob, &v, &fdt, samples.as_ref().map_or(&[][..], |s| s.pages()));
    timeline::mark(Milestone::MmuOn);
    info!("mmu: identity map on, caches on ({} translation tables, {} KiB at {:#x})", tables.1, tables.1 * 4, tables.0);
    let options = Options::from_fdt(&fdt);
    if options.integrity {
        let initrd = fdt.initrd().map(|(s, e)| (s, e - s)).unwrap_or((0, 0));
        services::diagnostics::integrity::record([(v.kernel.start, v.kernel.size), initrd, (v.dtb.start, v.dtb.size)]);
        crate::console::set_fatal_hook(|| services::diagnostics::integrity::verify("power-off"));
    }
    if options.timeline {
        timeline::always_print();
    }
    #[cfg(feature = "test-hooks")]
    debug_fault(options.debug_fault);
    kernel_summary(&v);
    choose_sha256(&options);

    // The emulator's own heap follows the page-table area at the start of the mempool.
    let page_tables = Extent::new(v.mempool.start, table_budget(&v));
    let heap = Extent::new(page_tables.end(), HEAP_SIZE);
    if heap.end() > v.mempool.end() {
        fatal!("mempool of {} KiB is too small for the page tables and the emulator's heap", v.mempool.size / 1024);
    }
    // SAFETY: the heap range lies in the validated mempool, which nothing else uses yet; it is
    // the heap's first region, given before the first allocation.
    unsafe { crate::heap::add(heap.start, heap.size) };
    let reserved = Reserved { page_tables, heap };
    #[cfg(feature = "test-hooks")]
    if options.debug_stale_map_key {
        services::misc::DEBUG_STALE_KEY.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    let core = setup::build(&v, &blob, &fdt, &reserved, esp, rtc, &options).unwrap_or_else(|e| fatal!("setting up boot services: {e:?}"));
    services::install(core);
    timeline::mark(Milestone::ServicesReady);
    let us = cpu::micros_since_entry();
    info!("boot services ready: {}.{:03} ms after entry (CNTPCT at {} Hz)", us / 1000, us % 1000, cpu::ticks_per_second());
    // A command line longer than the block holds: from a kexec_load loader in /chosen, or kept
    // from the kexec_file entry.
    let long_cmdline = options.cmdline.or_else(|| LONG_CMDLINE.with(|c| *c));
    let (status, exit_data) = match setup::start_kernel(&v, &fdt, &blob, esp, long_cmdline) {
        Ok(done) => done,
        Err(crate::efi::EfiError::SecurityViolation) => {
            // Secure Boot refused it (the image, certificate and reason are above): it never runs,
            // and the machine resets through the firmware, or PSCI.
            log::error!("Secure Boot: the kernel image is not started; resetting");
            services::runtime::reset_system::inner(r_efi::efi::RESET_COLD, r_efi::efi::Status::SECURITY_VIOLATION, 0, core::ptr::null_mut());
            fatal!("ResetSystem returned")
        }
        Err(e) => fatal!("loading the kernel image failed with {} (the reason is above)", status_name(e.status())),
    };
    if services::exited() {
        fatal!("the payload returned {:#x} after ExitBootServices", status.as_usize());
    }
    match exit_data {
        Some(text) => fatal!("the payload returned {} ({:#x}) with exit data \"{text}\"", status_name(status), status.as_usize()),
        None => fatal!("the payload returned {} ({:#x})", status_name(status), status.as_usize()),
    }
}

/// Secure Boot hashes whole images: with the CPU's SHA-256 instructions where it has them (and
/// they pass a self-test), unless `/chosen/efi-emulator,generic-sha256` asks for the portable
/// code (for comparing the two).
fn choose_sha256(options: &Options) {
    use crate::arch::aarch64::sha256;
    use crate::efi::secure_boot::sha256 as core_sha256;
    if options.generic_sha256 {
        info!("SHA-256: portable code (/chosen/efi-emulator,generic-sha256)");
    } else if !sha256::present() {
        info!("SHA-256: portable code (ID_AA64ISAR0_EL1 lists no SHA-256 instructions)");
    } else if core_sha256::block_function_works(sha256::blocks) {
        core_sha256::use_block_function(Some(sha256::blocks));
        info!("SHA-256: the CPU's SHA-256 instructions");
    } else {
        log::error!("SHA-256: the CPU's SHA-256 instructions fail the self-test: portable code instead");
    }
}

/// The device tree at `x0`, when it is one (arm64 `kexec_file_load` enters so): its extent.
fn device_tree_at(addr: u64) -> Option<Extent> {
    if addr == 0 || !addr.is_multiple_of(8) {
        return None;
    }
    let header = RawMemory.bytes(addr, crate::drivers::fdt::HEADER_SIZE)?;
    if header[..4] != crate::drivers::fdt::MAGIC.to_be_bytes() {
        return None;
    }
    Some(Extent::new(addr, crate::drivers::fdt::total_size(header).unwrap_or(crate::drivers::fdt::HEADER_SIZE) as u64))
}

/// Entry with a device tree (the Image form, started by `kexec_file_load`): makes the parameter
/// block a loader would have made (see `abi::dtb_entry`), points the DTB's initrd at the
/// bundle's own (or removes it), and returns the block and its stack.
fn enter_from_device_tree(dtb: Extent, blob: &BlobLayout) -> (u64, u64) {
    use crate::abi::{
        bundle,
        dtb_entry::{self, Inputs, PARAM_REGION},
    };
    let bytes = RawMemory.bytes(dtb.start, dtb.size as usize).unwrap();
    let fdt = match Fdt::new(bytes) {
        Ok(f) => f,
        Err(e) => fatal!("entered with a device tree at {:#x}: {e}", dtb.start),
    };
    // Before the plan, for its errors: the device tree's console, if it is one we can drive.
    if let Some((base, _)) = dtb_entry::pl011_console(&fdt) {
        console::init(base, true);
    }
    let footprint = crate::abi::image::footprint(blob.base, blob.file_end, blob.mem_end);
    let inputs = Inputs { fdt, dtb, footprint, blob_start: blob.base, mem: &RawMemory };
    let plan = dtb_entry::plan(&inputs).unwrap_or_else(|e| fatal!("{e}"));
    // The plan's console: the device tree's, or the one ACPI's SPCR names.
    console::init(plan.uart.0, true);
    let payload = RawMemory.bytes(plan.payload.start, plan.payload.size as usize).unwrap();
    let slots = (PARAM_REGION as usize - crate::abi::PARAM_SIZE) / core::mem::size_of::<r_efi::efi::MemoryDescriptor>();
    // SAFETY: the plan put the block's region in free RAM (clear of the Image, the DTB, the
    // payload and every reservation) that nothing else uses; the block is page aligned and the
    // descriptors follow it at an 8-byte-aligned offset (1680), inside the region.
    let (param, map) = unsafe {
        let param = &mut *(plan.param_addr as *mut crate::abi::EfiEmulatorParam);
        let map = core::slice::from_raw_parts_mut((plan.param_addr + crate::abi::PARAM_SIZE as u64) as *mut r_efi::efi::MemoryDescriptor, slots);
        (param, map)
    };
    let descriptors = dtb_entry::write(&inputs, &plan, payload, param, map).unwrap_or_else(|e| fatal!("{e}"));
    if param.sz_in_byte == 0 {
        let text = dtb_entry::command_line(&inputs, &plan, payload);
        if !text.is_empty() {
            info!(
                "  the command line ({} bytes) is longer than the block holds: LoadOptions take it from the {}",
                text.len(),
                if plan.contents.bundle { "bundle" } else { "device tree" }
            );
            // SAFETY: the text lies in the payload segment or the kernel's DTB, which the map
            // keeps out of every allocation, and LoadOptions copy it to pool memory before
            // ExitBootServices; 'static as far as boot services go.
            LONG_CMDLINE.set(unsafe { &*(text as *const str) });
        }
    }
    // SAFETY: the DTB is the kernel's segment for this boot, ours until ExitBootServices; its
    // size does not change (values are overwritten or become NOPs in place).
    let dtb_bytes = unsafe { core::slice::from_raw_parts_mut(dtb.start as *mut u8, dtb.size as usize) };
    match plan.initrd() {
        Some(i) => {
            let ok = crate::drivers::fdt::set_uint_in_place(dtb_bytes, "/chosen", "linux,initrd-start", i.start)
                && crate::drivers::fdt::set_uint_in_place(dtb_bytes, "/chosen", "linux,initrd-end", i.end());
            if !ok {
                fatal!("cannot point /chosen/linux,initrd-* at the bundle's initrd {:#x}..{:#x}", i.start, i.end());
            }
        }
        None => {
            crate::drivers::fdt::nop_property(dtb_bytes, "/chosen", "linux,initrd-start");
            crate::drivers::fdt::nop_property(dtb_bytes, "/chosen", "linux,initrd-end");
        }
    }
    // No heap yet: nothing here may allocate, formatting included.
    let k = plan.kernel();
    info!(
        "entered with a device tree at {:#x} (kexec_file_load): the payload at {:#x} is {}, the PE file {} B at {:#x}",
        dtb.start,
        plan.payload.start,
        if plan.contents.bundle { "a bundle" } else { "one PE file" },
        k.size,
        k.start
    );
    if let Some(i) = plan.initrd() {
        info!("  the bundle's initrd: {} B at {:#x}, now /chosen/linux,initrd-*", i.size, i.start);
    }
    if let Some(image) = plan.esp() {
        let kernel_path = bundle::esp_path(payload, &plan.contents);
        info!("  the bundle's ESP: {} B at {:#x}{}{}", image.size, image.start, if kernel_path.is_some() { ", the PE file is its " } else { "" }, kernel_path.unwrap_or(""));
        BUNDLE_ESP.set(EspInput { image, kernel_path });
    }
    info!(
        "  made a parameter block at {:#x}: {descriptors} descriptors, mempool {} MiB at {:#x}{}",
        plan.param_addr,
        mib(plan.mempool.size),
        plan.mempool.start,
        if plan.crash.is_some() { ", a crash boot" } else { "" }
    );
    (plan.param_addr, plan.sp())
}

/// A command line from a kexec_file_load boot longer than the block holds, kept across the
/// restart like [`BUNDLE_ESP`].
static LONG_CMDLINE: crate::cell::BootCell<&'static str> = crate::cell::BootCell::empty();

/// Set when the boot came in through the device-tree entry (kexec_file_load): kept across the
/// restart like [`BUNDLE_ESP`], for the event log's note of how the emulator was entered.
static KEXEC_FILE_ENTRY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

pub(super) fn entered_by_kexec_file() -> bool {
    KEXEC_FILE_ENTRY.load(core::sync::atomic::Ordering::Relaxed)
}

/// The ESP a kexec_file_load bundle brought, found before the restart and served after it (the
/// restart keeps `.bss`).
static BUNDLE_ESP: crate::cell::BootCell<EspInput> = crate::cell::BootCell::empty();

/// Fills `rt_info` from the firmware the running kernel's stub recorded in `/chosen` (see
/// The PL031 the emulator's GetTime/SetTime will drive, taken from the OS: its `compatible`
/// becomes NOP words in the device tree, so Linux binds rtc-efi alone and not rtc-pl031 to the
/// same clock too (EDK2 marks the node disabled). Its (base, size).
fn claim_rtc(v: &Validated) -> Option<(u64, u64)> {
    let mut path = [0u8; 64];
    let (len, base, size) = {
        let dtb = RawMemory.bytes(v.dtb.start, v.dtb.size as usize)?;
        let (node, base, size) = Fdt::new(dtb).ok()?.pl031()?;
        let name = node.name.as_bytes();
        let len = name.len() + 1;
        path.get_mut(1..len)?.copy_from_slice(name);
        (len, base, size)
    };
    path[0] = b'/';
    let path = core::str::from_utf8(&path[..len]).ok()?;
    // SAFETY: the DTB is the loader's segment for this boot, the emulator's until
    // ExitBootServices; no reference to it is alive here (the one above is gone), and its size
    // does not change (a property becomes NOP words in place).
    let dtb = unsafe { core::slice::from_raw_parts_mut(v.dtb.start as *mut u8, v.dtb.size as usize) };
    crate::drivers::fdt::nop_property(dtb, path, "compatible").then_some((base, size))
}

/// `abi::firmware`): merges its memory map into the block's and reads its system table.
fn derive_firmware(v: &Validated) {
    use crate::abi::firmware;
    let dtb = RawMemory.bytes(v.dtb.start, v.dtb.size as usize).unwrap();
    let fdt = Fdt::new(dtb).unwrap_or_else(|e| fatal!("dtb at {:#x}: {e}", v.dtb.start));
    let facts = match firmware::stub_facts(&fdt) {
        Some(Ok(f)) => f,
        Some(Err(e)) => fatal!("{e}"),
        None => fatal!("{}", validate::no_runtime_table()),
    };
    let mut p = v.param;
    let buffer = firmware::map_buffer(&p, v.param_addr).unwrap_or_else(|e| fatal!("{e}"));
    if facts.mmap.overlaps(&buffer) || buffer.overlaps(&Extent::new(facts.system_table, firmware::SYSTAB_SIZE as u64)) {
        fatal!("the firmware's memory map {:#x} (+{:#x}) or system table {:#x} lies in the parameter block's map buffer", facts.mmap.start, facts.mmap.size, facts.system_table);
    }
    let firmware_map = RawMemory.bytes(facts.mmap.start, facts.mmap.size as usize).unwrap();
    // SAFETY: the buffer lies inside the validated block, below its stack, and overlaps neither
    // the firmware's map nor its system table (checked above); nothing else refers to it.
    let out = unsafe { core::slice::from_raw_parts_mut(buffer.start as *mut u8, buffer.size as usize) };
    let done = firmware::complete(&mut p, out, firmware_map, &facts, &RawMemory).unwrap_or_else(|e| fatal!("{e}"));
    // SAFETY: the block's fixed part, validated, page aligned; written back whole.
    unsafe { core::ptr::write_unaligned(v.param_addr as *mut crate::abi::EfiEmulatorParam, p) };
    if done.previous_emulator {
        info!(
            "firmware: system table {:#x} is an earlier efi-emulator's (a kexec chain): the payload gets this one's services; {} of its {} configuration tables pass on, {} of its ranges (ACPI, reserved) joined the map",
            facts.system_table, done.passed_on, done.config_tables, done.firmware_descriptors
        );
        return;
    }
    info!(
        "firmware: system table {:#x} (revision {}.{}), memory map {:#x} ({} descriptors of {} B): {} firmware ranges joined the map, {} of {} configuration tables pass on, runtime services at {:#x}",
        facts.system_table,
        done.revision >> 16,
        (done.revision & 0xffff) / 10,
        facts.mmap.start,
        facts.mmap.size / facts.desc_size,
        facts.desc_size,
        done.firmware_descriptors,
        done.passed_on,
        done.config_tables,
        p.rt_info.runtime
    );
}

/// Bytes of heap for the emulator's own data (memory map, handles, events, variables).
const HEAP_SIZE: u64 = 4 << 20;

fn status_name(s: r_efi::efi::Status) -> &'static str {
    use r_efi::efi::Status as S;
    match s {
        S::SUCCESS => "EFI_SUCCESS",
        S::LOAD_ERROR => "EFI_LOAD_ERROR",
        S::INVALID_PARAMETER => "EFI_INVALID_PARAMETER",
        S::UNSUPPORTED => "EFI_UNSUPPORTED",
        S::BUFFER_TOO_SMALL => "EFI_BUFFER_TOO_SMALL",
        S::NOT_READY => "EFI_NOT_READY",
        S::DEVICE_ERROR => "EFI_DEVICE_ERROR",
        S::OUT_OF_RESOURCES => "EFI_OUT_OF_RESOURCES",
        S::NOT_FOUND => "EFI_NOT_FOUND",
        S::ACCESS_DENIED => "EFI_ACCESS_DENIED",
        S::ABORTED => "EFI_ABORTED",
        S::SECURITY_VIOLATION => "EFI_SECURITY_VIOLATION",
        _ => "a status",
    }
}

/// Points the console at the earlycon UART, before anything is validated: fatal errors need it.
/// When the block names no UART, the DTB's `/chosen/stdout-path` is tried, so that even that
/// error can be reported.
fn start_console(param_addr: u64) {
    let Ok(p) = validate::peek_param(&RawMemory, param_addr) else {
        return; // No block at all: nowhere to print. fatal!() below powers off.
    };
    let print = p.print_enabled == 1;
    if p.earlycon_reg_base != 0 {
        console::init(p.earlycon_reg_base, print);
        return;
    }
    let uart = (p.dtb != 0 && p.dtb % 8 == 0)
        .then(|| RawMemory.bytes(p.dtb, crate::drivers::fdt::HEADER_SIZE))
        .flatten()
        .and_then(|h| crate::drivers::fdt::total_size(h).ok())
        .and_then(|total| Fdt::new(RawMemory.bytes(p.dtb, total)?).ok())
        .and_then(|fdt| fdt.stdout_uart().ok().map(|(base, _)| base));
    if let Some(base) = uart {
        console::init(base, print);
    }
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn banner(el: ExceptionLevel, blob: &BlobLayout, v: &Validated, fdt: &Fdt) {
    let midr = cpu::midr();
    println!();
    info!("efi-emulator {} (ABI {}), running at {el}", crate::VERSION, crate::abi::ABI_VERSION);
    info!("cpu: MIDR {midr:#010x} ({}), PSCI via {}", cpu::cpu_name(midr), psci::conduit().name());
    info!("blob: {:#x}..{:#x} (file {} B, footprint {} KiB)", blob.base, blob.base + blob.mem_end, blob.file_end, blob.mem_end / 1024);
    let p = &v.param;
    let map_end = v.param_addr + crate::abi::PARAM_SIZE as u64 + p.rt_info.memmap.map_size;
    info!("param: {:#x}, sp {:#x} ({} KiB of stack above the map), load_address {:#x}", v.param_addr, p.sp, (p.sp - map_end) / 1024, p.load_address);
    info!("  kernel image {:#x}..{:#x} ({} B)", v.kernel.start, v.kernel.end(), v.kernel.size);
    info!("  dtb          {:#x}..{:#x} ({} B)", v.dtb.start, v.dtb.end(), v.dtb.size);
    info!("  mempool      {:#x}..{:#x} ({} MiB)", v.mempool.start, v.mempool.end(), mib(v.mempool.size));
    if let Some((start, end)) = fdt.initrd() {
        info!("  initrd       {start:#x}..{end:#x} ({} B, from /chosen)", end - start);
    }
    info!("  noefi_boot {}, print_enabled {}, earlycon {} at {:#x} (+{:#x})", p.noefi_boot, p.print_enabled, v.earlycon_name(), p.earlycon_reg_base, v.uart.size);
    match v.runtime_phys {
        Some(phys) => info!(
            "  firmware runtime services at {:#x} (physical {phys:#x}), revision {:#x}, supported mask {:#x}",
            p.rt_info.runtime, p.rt_info.runtime_version, p.rt_info.runtime_supported_mask
        ),
        None => info!("  no firmware: runtime services will be the emulator's own"),
    }
    info!("  {} configuration tables to re-publish", p.rt_info.systab_nr_tables);
    let mut cmdline = [0u8; 1536];
    let mut n = 0;
    for c in char::decode_utf16(v.cmdline_utf16().iter().copied()).map(|c| c.unwrap_or('?')) {
        if n + c.len_utf8() > cmdline.len() {
            break;
        }
        n += c.encode_utf8(&mut cmdline[n..]).len();
    }
    info!("  cmdline ({} B UTF-16): \"{}\"", p.sz_in_byte, core::str::from_utf8(&cmdline[..n]).unwrap_or("?"));

    let mm = &p.rt_info.memmap;
    info!("memory map: {} descriptors, desc_size {}, version {}", v.map.len(), mm.desc_size, mm.desc_ver);
    info!("  {:>3}  {:<20} {:>18} {:>18} {:>10}  {:>18}  {}", "#", "type", "start", "end", "pages", "attributes", "virtual");
    for (i, d) in v.map.iter().enumerate() {
        let end = d.physical_start + d.number_of_pages * PAGE_SIZE;
        info!("  {i:>3}  {:<20} {:>#18x} {:>#18x} {:>10}  {:>#18x}  {:#x}", memory_type_name(d.r#type), d.physical_start, end, d.number_of_pages, d.attribute, d.virtual_start);
    }
}

fn kernel_summary(v: &Validated) {
    let file = RawMemory.bytes(v.kernel.start, v.kernel.size as usize).unwrap();
    let pe = match PeImage::parse(file) {
        Ok(pe) => pe,
        Err(e) => fatal!("kernel image at {:#x}: {e}", v.kernel.start),
    };
    match pe.linux_image_size {
        Some(size) => info!("kernel image: Linux arm64 Image with EFI stub {}.{}, image_size {size:#x}", pe.major_image_version, pe.minor_image_version),
        None => info!("kernel image: PE32+ AArch64 EFI application"),
    }
    info!(
        "  machine {:#06x}, entry {:#x}, SizeOfImage {:#x}, SectionAlignment {:#x}, FileAlignment {:#x}, ImageBase {:#x}",
        pe.machine, pe.entry_point, pe.size_of_image, pe.section_alignment, pe.file_alignment, pe.image_base
    );
    for s in pe.sections() {
        let perm = s.permissions();
        info!(
            "  section {:<8} rva {:#010x} size {:#010x} file {:#010x}+{:#010x} {}",
            s.name(),
            s.virtual_address,
            s.virtual_size,
            s.raw_offset,
            s.raw_size,
            core::str::from_utf8(&perm).unwrap_or("???")
        );
    }
}

/// A crash kernel's boot (`/chosen/linux,elfcorehdr`): checks that everything it uses lies in
/// the usable memory, and takes the CRCs of a sample of the crashed kernel's RAM (the MMU is
/// still off). Returns the sampled pages, which the tables map read-only for the check at
/// ExitBootServices; nothing else of that RAM is mapped.
fn crash_boot(v: &Validated, blob: &BlobLayout, fdt: &Fdt, esp: Option<Extent>) -> Option<crate::abi::crash::Samples> {
    use crate::abi::crash;
    let c = crash::from_fdt(fdt).unwrap_or_else(|e| fatal!("{e}"))?;
    let extent = |r: Option<(u64, u64)>| r.map(|(s, e)| Extent::new(s, e - s));
    if let Err(e) = c.check(v, Extent::new(blob.base, blob.mem_end), extent(fdt.initrd()), esp) {
        fatal!("{e}");
    }
    // The crashed kernel's RAM: the reserved descriptors outside the usable memory.
    let preserved = || {
        v.map
            .iter()
            .filter(|d| d.r#type == r_efi::efi::RESERVED_MEMORY_TYPE)
            .map(|d| Extent::new(d.physical_start, d.number_of_pages * PAGE_SIZE))
            .filter(|e| !c.usable().iter().any(|u| u.overlaps(e)))
    };
    let samples = c.sample_pages(preserved);
    services::diagnostics::integrity::record_preserved(samples.pages());
    let mib = |e: Extent| e.size >> 20;
    info!(
        "crash kernel: confined to {} MiB at {:#x} (linux,usable-memory-range), ELF core header at {:#x}; {} MiB of the crashed kernel's RAM left unmapped but for {} sample pages, checked at ExitBootServices",
        c.usable().iter().copied().map(mib).sum::<u64>(),
        c.usable().first().map_or(0, |u| u.start),
        c.elfcorehdr.start,
        preserved().map(mib).sum::<u64>(),
        samples.pages().len()
    );
    Some(samples)
}

fn enable_mmu(el: ExceptionLevel, blob: &BlobLayout, v: &Validated, fdt: &Fdt, read_only: &[u64]) -> (u64, u64) {
    let table_area = (v.mempool.start, table_budget(v));
    let frames = BumpFrames { start: table_area.0, next: table_area.0, end: table_area.0 + table_area.1 };
    let mut tables = PageTables::new(mmu::regime_for(el), frames).unwrap_or_else(|e| fatal!("page tables: {e}"));
    let mut note = |n: PlanNote| match n {
        PlanNote::AliasCollides { index, virt } => {
            warn!("memmap[{index}]: runtime virtual address {virt:#x} is already mapped; no alias for it")
        }
        PlanNote::DeviceInRam { base } => warn!("device tree node at {base:#x} overlaps RAM; left as RAM"),
    };
    if let Err(e) = memory_plan::build(&mut tables, v, fdt, blob, &mut note) {
        fatal!("page tables: {e}");
    }
    // The frames by pages: a later split never breaks the block that holds the entry it writes.
    if let Err(e) = tables.map(table_area.0, table_area.0, table_area.1, Attributes::RAM) {
        fatal!("page tables: {e}");
    }
    for &page in read_only {
        if let Err(e) = tables.map(page, page, PAGE_SIZE, Attributes::RODATA) {
            fatal!("page tables: {e}");
        }
    }
    let written = [(blob.base, blob.mem_end), (v.stack.start, v.stack.size), table_area];
    mmu::enable(el, &tables, &written);
    mmu::keep_live(el, tables);
    mmu::table_frames()
}

/// Test hook (only in blobs built with the `test-hooks` feature):
/// `/chosen/efi-emulator,debug-fault` = "data-abort" or "undefined" makes the emulator fault on
/// purpose, so the harness can check the fault dump.
#[cfg(feature = "test-hooks")]
fn debug_fault(kind: Option<&str>) {
    let Some(kind) = kind else {
        return;
    };
    warn!("faulting on purpose: /chosen/efi-emulator,debug-fault = \"{kind}\"");
    match kind {
        // SAFETY: deliberately not sound: this address is outside the identity map, so the read
        // takes a translation fault, which is the point of the hook.
        "data-abort" => unsafe {
            core::ptr::read_volatile(0x0000_dead_0000_0000 as *const u64);
        },
        // SAFETY: UDF raises an undefined-instruction exception, which the vectors report.
        "undefined" => unsafe { core::arch::asm!("udf #0") },
        other => warn!("unknown debug fault \"{other}\"; ignored"),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fatal!("panic: {info}")
}
