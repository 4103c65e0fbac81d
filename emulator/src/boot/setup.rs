//! Setting boot services up from a validated hand-off, and starting the kernel image.

use crate::abi::validate::Validated;
use crate::arch::aarch64::memory_plan::BlobLayout;
use crate::drivers::fdt::Fdt;
use crate::efi::guids;
use crate::efi::pe::PeImage;
use crate::efi::platform::Clock;
use crate::efi::EfiError;
use crate::mem::{Extent, PAGE_SIZE};
use crate::services::diagnostics::timeline;
use crate::services::protocols::{esp, initrd, memory_attribute, rng, security};
use crate::services::tables::{new_core, publish_rt_properties};
use crate::services::*;
use alloc::vec::Vec;
use r_efi::efi::{self, Status};

/// The ESP to serve: its image in RAM, and where the kernel lies in it (then started from it).
/// From `/chosen/efi-emulator,esp{,-path}` (kexec_load), or the bundle (kexec_file_load).
#[derive(Clone, Copy, Debug)]
pub struct EspInput {
    pub image: Extent,
    pub kernel_path: Option<&'static str>,
}

impl EspInput {
    pub fn from_fdt(fdt: &Fdt<'static>) -> Option<EspInput> {
        fdt.esp().map(|(start, size)| EspInput { image: Extent::new(start, size), kernel_path: fdt.esp_path() })
    }
}

/// Memory the emulator took for itself before the core existed.
pub struct Reserved {
    pub page_tables: Extent,
    pub heap: Extent,
}

/// Builds the core from the hand-off: memory map, tables, console, RNG, initrd, configuration
/// tables.
pub fn build(
    v: &Validated,
    blob: &BlobLayout,
    fdt: &Fdt,
    reserved: &Reserved,
    esp: Option<EspInput>,
    rtc: Option<(u64, u64)>,
    options: &crate::abi::options::Options,
) -> Result<Core, EfiError> {
    let mut memory = initial_map(v);
    let pages = |e: &Extent| e.size.div_ceil(PAGE_SIZE);
    memory.retype(reserved.page_tables.start, pages(&reserved.page_tables), efi::BOOT_SERVICES_DATA, false)?;
    memory.retype(reserved.heap.start, pages(&reserved.heap), efi::BOOT_SERVICES_DATA, false)?;
    // The blob stays after ExitBootServices: runtime services run from it.
    let ([code, data], granular) = crate::efi::memory::blob_runtime_ranges(blob.base, blob.text_end, blob.mem_end);
    if !granular {
        log::warn!("the blob at {:#x} is not on a 64 KiB boundary: an OS with 64 KiB pages maps its runtime services writable and executable", blob.base);
    }
    memory.retype(code.start, pages(&code), efi::RUNTIME_SERVICES_CODE, false)?;
    memory.retype(data.start, pages(&data), efi::RUNTIME_SERVICES_DATA, false)?;
    let mut c = new_core(memory, v.runtime_phys)?;
    let mut policy = match v.runtime_phys {
        Some(_) => security::Policy::from_platform(Some(&mut runtime::read_firmware_variable)),
        None => security::Policy::from_platform(None),
    };
    if !policy.enforcing && options.secure_boot_audit {
        log::info!("Secure Boot audit (/chosen/efi-emulator,secure-boot-audit): images are verified and the verdict shown, never enforced");
        policy.audit = true;
    }
    security::install(&mut c, policy)?;
    measured_boot(&mut c, v, fdt)?;
    if v.runtime_phys.is_some() {
        let moved = v.map.iter().filter(|d| d.attribute & efi::MEMORY_RUNTIME != 0 && d.virtual_start != 0 && d.virtual_start != d.physical_start);
        if !runtime::record_firmware_ranges(moved.map(|d| runtime::FirmwareRange { phys: d.physical_start, virt: d.virtual_start, size: d.number_of_pages * PAGE_SIZE })) {
            log::warn!("the firmware has more runtime ranges than SetVirtualAddressMap can check; it will refuse every map");
        }
    }

    if let Some((base, size)) = rtc {
        serve_rtc(&mut c, base, size);
    }
    start_tick(fdt);
    let firmware_counts = v.runtime_phys.is_some() && v.param.rt_info.runtime_supported_mask & guids::rt_supported::GET_NEXT_HIGH_MONOTONIC_COUNT != 0;
    let high = misc::MonotonicHigh::choose(firmware_counts.then(runtime::firmware_high_monotonic).flatten(), Machine::rtc_seconds());
    c.misc.monotonic = high.start();

    if options.no_memory_attribute {
        log::info!("EFI_MEMORY_ATTRIBUTE_PROTOCOL hidden (/chosen/efi-emulator,no-memory-attribute)");
    } else {
        memory_attribute::install(&mut c)?;
    }
    if rng::install(&mut c)? {
        log::info!("EFI_RNG_PROTOCOL from RNDR/RNDRRS");
    }
    if let Some((start, end)) = fdt.initrd() {
        if carries_initrd(v) {
            // systemd-stub aborts the boot when an initrd LoadFile2 is already registered.
            log::info!("initrd {start:#x}..{end:#x} from /chosen not published: the image is a UKI with its own .initrd");
        } else {
            initrd::install(&mut c, start, end)?;
            log::info!("initrd {start:#x}..{end:#x} served through LoadFile2 (LINUX_EFI_INITRD_MEDIA_GUID)");
        }
    }

    if let Some(EspInput { image: extent, .. }) = esp {
        // The loader's image: RAM it placed (occupied in the map), whole 512-byte blocks.
        let (start, size) = (extent.start, extent.size);
        if size >= 512 && size.is_multiple_of(512) && v.map.covers(extent, crate::abi::validate::is_os_ram) {
            esp::install(&mut c, start, size)?;
        } else {
            log::warn!("/chosen/efi-emulator,esp {start:#x}+{size:#x} is not whole 512-byte blocks of the loader's RAM: no ESP served");
        }
    }

    c.config.push((guids::DEVICE_TREE, v.dtb.start as usize));
    let rt = &v.param.rt_info;
    for t in &rt.systab_tables[..rt.systab_nr_tables as usize] {
        // With measured boot on, the earlier boot's logs live on in the emulator's own.
        let continued = [guids::LINUX_EFI_TPM_EVENT_LOG, guids::LINUX_EFI_TPM_FINAL_LOG].contains(&t.guid) && c.measurements.is_some();
        if !continued {
            c.config.push((t.guid, t.table as usize));
        }
    }
    let firmware_mask = v.runtime_phys.map(|_| rt.runtime_supported_mask);
    let supported = publish_rt_properties(&mut c, firmware_mask)?;
    log::info!("runtime services supported after ExitBootServices: mask {supported:#06x}");
    Ok(c)
}

/// EFI_TCG2_PROTOCOL on the device tree's TIS TPM, continuing the earlier boot's log when the
/// configuration tables passed on carry one. A TPM that is absent or does not answer leaves the
/// boot unmeasured, said on the console.
fn measured_boot(c: &mut Core, v: &Validated, fdt: &Fdt) -> Result<(), EfiError> {
    use crate::abi::validate::is_ram;
    use crate::drivers::tpm_tis::{Mmio, Tis};
    let Some((base, _)) = fdt.tpm_tis() else { return Ok(()) };
    let tpm = match Tis::probe(Mmio(base as usize), Machine::micros_since_entry) {
        Ok(tpm) => tpm,
        Err(e) => {
            log::warn!("TPM at {base:#x}: {e}; nothing is measured this boot");
            return Ok(());
        }
    };
    // Occupied RAM, without a gap, from `at` on: where an earlier log may be read.
    let kept = |at: u64| {
        let mut cursor = at;
        while let Some(e) =
            v.map.iter().filter(|d| is_ram(d.r#type) && d.r#type != efi::CONVENTIONAL_MEMORY).map(|d| crate::mem::desc_extent(&d)).find(|e| e.start <= cursor && cursor < e.end())
        {
            cursor = e.end();
        }
        cursor - at
    };
    let rt = &v.param.rt_info;
    let previous = crate::abi::tpm_log::previous_log(&rt.systab_tables[..rt.systab_nr_tables as usize], &kept, &super::RawMemory).unwrap_or_else(|e| {
        log::warn!("the earlier boot's TPM event log is not continued: {e}");
        None
    });
    let door = if super::entered_by_kexec_file() { "kexec_file_load" } else { "a parameter block (kexec_load)" };
    let identity = alloc::format!("efi-emulator {} via {door}", crate::VERSION);
    protocols::tcg2::install(c, alloc::boxed::Box::new(tpm), previous.as_deref(), &identity)?;
    Ok(())
}

/// GetTime/SetTime on the PL031 the boot flow claimed (`boot::claim_rtc`), which the memory map
/// then lists as runtime MMIO so the OS maps it for runtime calls.
fn serve_rtc(c: &mut Core, base: u64, size: u64) {
    match c.memory.add(crate::efi::memory::runtime_mmio(base, size)) {
        Ok(()) => {
            crate::arch::aarch64::platform::set_rtc(base);
            log::info!("GetTime/SetTime on the PL031 at {base:#x}");
        }
        Err(_) => log::warn!("PL031 at {base:#x} overlaps the memory map: GetTime stays unsupported"),
    }
}

/// The boot-services tick on the device tree's GIC (a top-level node, which the memory plan
/// maps) and the architected timer's private interrupts.
fn start_tick(fdt: &Fdt) {
    use crate::drivers::gic::{find_redistributor, Gic};
    let root = fdt.root();
    let cells = root.cells();
    let gic = root.children().filter(|n| n.is_enabled() && n.property("interrupt-controller").is_some()).find_map(|n| {
        let mut reg = n.reg(cells);
        if n.compatible_with("arm,gic-v3") {
            let (dist, _) = reg.next()?;
            let (rd_base, rd_size) = reg.next()?;
            let mpidr = crate::arch::aarch64::cpu::mpidr();
            let affinity = ((mpidr >> 8) & 0xff00_0000) as u32 | (mpidr & 0xff_ffff) as u32;
            match find_redistributor(rd_base, rd_size, affinity) {
                Ok(redist) => Some(Gic::V3 { dist, redist }),
                Err(e) => {
                    log::warn!("GICv3 at {dist:#x}: {e}");
                    None
                }
            }
        } else if ["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic", "arm,cortex-a7-gic", "arm,pl390"].iter().any(|c| n.compatible_with(c)) {
            let (dist, _) = reg.next()?;
            let (cpu, _) = reg.next()?;
            Some(Gic::V2 { dist, cpu })
        } else {
            None
        }
    });
    let Some(gic) = gic else {
        log::warn!("no GICv2/v3 at the device tree's top level: timer events fire only while a payload calls boot services");
        return;
    };
    // interrupts = <secure phys>, <non-secure phys>, <virtual>, <EL2 phys>: 3 cells each, PPIs.
    let ppi = |index: usize, default: u32| {
        let timer = root.children().find(|n| n.is_enabled() && (n.compatible_with("arm,armv8-timer") || n.compatible_with("arm,armv7-timer")));
        let cell = |i: usize| timer.and_then(|t| t.property("interrupts")).and_then(|p| p.get(4 * i..4 * i + 4)).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match (cell(3 * index), cell(3 * index + 1)) {
            (Some(1), Some(n)) if n < 16 => n + 16,
            _ => default,
        }
    };
    if let Err(e) = crate::arch::aarch64::tick::start(gic, (ppi(2, 27), ppi(3, 26)), events::timer_tick) {
        log::warn!("tick: {e}: timer events fire only while a payload calls boot services");
    }
}

fn kernel_file(v: &Validated) -> &'static [u8] {
    // SAFETY: the validated kernel image lies in RAM the loader placed; nothing else writes it
    // before it is loaded.
    unsafe { core::slice::from_raw_parts(v.kernel.start as *const u8, v.kernel.size as usize) }
}

fn carries_initrd(v: &Validated) -> bool {
    PeImage::parse(kernel_file(v)).is_ok_and(|pe| crate::efi::image_policy::carries_initrd(&pe))
}

/// Whether the kernel file can run where the loader put it: memory layout equal to file
/// layout, aligned, and SizeOfImage of loader-owned memory that nothing else uses.
fn in_place_placement(c: &Core, v: &Validated, pe: &PeImage, fdt: &Fdt, blob: &BlobLayout, esp: Option<EspInput>) -> bool {
    let start = v.kernel.start;
    let align = if pe.linux_image_size.is_some() { 2 << 20 } else { pe.section_alignment as u64 };
    let image = Extent::new(start, (pe.size_of_image as u64).next_multiple_of(PAGE_SIZE));
    if !pe.file_layout_is_memory_layout() || !start.is_multiple_of(align) {
        return false;
    }
    let initrd = fdt.initrd().map(|(s, e)| Extent::new(s, e - s)).unwrap_or_default();
    let block = Extent::new(v.param_addr, v.param.sp - v.param_addr);
    let esp = esp.map(|e| e.image).unwrap_or_default();
    let others = [v.dtb, initrd, esp, blob.extent(), block, v.mempool, v.uart];
    if others.iter().any(|o| o.overlaps(&image)) {
        return false;
    }
    let mut a = image.start;
    while a < image.end() {
        match c.memory.find(a) {
            Some(r) if r.ty == efi::BOOT_SERVICES_DATA && !r.allocated => a = r.end(),
            _ => return false,
        }
    }
    true
}

/// Where the kernel "comes from", as LoadImage names an image.
struct KernelSource {
    device: usize,
    /// LoadedImage.FilePath, when it has one.
    file_path: Option<Vec<u8>>,
    /// LoadedImageDevicePath: the device's path and the file's.
    full_path: Vec<u8>,
}

fn kernel_source(c: &mut Core, v: &Validated, esp: Option<EspInput>) -> Result<KernelSource, EfiError> {
    use crate::efi::device_path as dp;
    match (c.esp.handle, c.esp.image, esp.and_then(|e| e.kernel_path)) {
        // Loaded from the ESP, as firmware would have: DeviceHandle is the ESP's, FilePath the
        // file's, so loaders find their configuration beside them.
        (Some(esp), Some(_), Some(path)) => {
            let units: Vec<u16> = path.encode_utf16().map(|u| if u == b'/' as u16 { b'\\' as u16 } else { u }).collect();
            let file_path = dp::file_path(&units);
            // The volume's own path: RamDisk, or RamDisk/HD(..) for a partitioned image.
            let volume = c.handles.get(esp, &efi::protocols::device_path::PROTOCOL_GUID)?;
            // SAFETY: the device path esp::install made, in pool memory.
            let volume = unsafe { dp::read(volume as *const u8) }.ok_or(EfiError::DeviceError)?;
            let full = dp::append_paths(Some(volume), Some(&file_path));
            log::info!("the kernel is {path} on the ESP");
            Ok(KernelSource { device: esp, file_path: Some(file_path), full_path: full })
        }
        // Else it "comes from" the memory the loader put it in: a device handle with that device
        // path and nothing else, so payloads probing it for a file system get EFI_UNSUPPORTED,
        // not EFI_INVALID_PARAMETER for a NULL handle.
        _ => {
            let path = dp::memory_mapped(efi::BOOT_SERVICES_DATA, v.kernel.start, v.kernel.end() - 1);
            Ok(KernelSource { device: image::install_device_path(c, &path)?, file_path: None, full_path: path })
        }
    }
}

/// Loads the kernel from the parameter block and starts it. Returns only if it returns: its
/// status, and the ExitData it gave to Exit (decoded), if any.
pub fn start_kernel(v: &Validated, fdt: &Fdt, blob: &BlobLayout, esp: Option<EspInput>, long_cmdline: Option<&str>) -> Result<(Status, Option<alloc::string::String>), EfiError> {
    let long: Option<Vec<u16>> = long_cmdline.filter(|_| v.cmdline_utf16().is_empty()).map(|c| c.encode_utf16().collect());
    let cmdline = long.as_deref().unwrap_or(v.cmdline_utf16());
    let file = kernel_file(v);
    let source = with_core(|c| kernel_source(c, v, esp))?;
    // Checked like every LoadImage, through the Security2 protocol, by the path it is loaded
    // with; refused, it never runs.
    if security::authenticate(file, Some(&source.full_path), false) != Status::SUCCESS {
        return Err(EfiError::SecurityViolation);
    }
    let handle = with_core(|c| {
        let pe = PeImage::parse(file).map_err(|e| {
            log::error!("kernel image at {:#x}: {e}", v.kernel.start);
            EfiError::LoadError
        })?;
        let uki = crate::efi::image_policy::is_uki(&pe);
        let placement = if in_place_placement(c, v, &pe, fdt, blob, esp) {
            crate::services::diagnostics::integrity::kernel_runs_in_place();
            image::Placement::InPlace(v.kernel.start)
        } else {
            image::Placement::Copy
        };
        let handle = image::load(c, file, placement, 0, source.device, source.file_path.as_deref(), Some(&source.full_path))?;
        use crate::efi::image_policy::{load_options, LoadOptions};
        match load_options(cmdline.is_empty()) {
            LoadOptions::Empty if uki => log::info!("LoadOptions left empty: the UKI uses its own .cmdline"),
            LoadOptions::Empty => {}
            LoadOptions::FromLoader => {
                image::set_load_options(c, handle, cmdline)?;
                if uki {
                    log::info!("LoadOptions set from the loader's command line: it overrides the UKI's .cmdline");
                }
            }
        }
        Ok::<_, EfiError>(handle)
    })?;
    let (entry, image_pages) = with_core(|c| c.image(handle).map(|i| (i.entry, i.pages)))?;
    // Every allocated page but the image's own is the emulator's (tables, pool, protocols).
    let allocated: u64 = with_core(|c| c.memory.regions().iter().filter(|r| r.allocated).map(|r| r.pages).sum());
    timeline::record_mempool_use(timeline::MempoolUse {
        page_tables: crate::arch::aarch64::mmu::table_frames().1 * PAGE_SIZE,
        heap: crate::heap::used(),
        pages: allocated.saturating_sub(image_pages) * PAGE_SIZE,
    });
    // As a firmware boot manager signals and arms them before it starts a boot option.
    misc::ready_to_boot();
    misc::arm_watchdog(misc::BOOT_WATCHDOG_SECONDS, handle);
    image::report_handoff(entry);
    let status = image::start(handle)?;
    if exited() {
        return Ok((status, None));
    }
    let data = with_core(|c| c.image(handle).ok().and_then(|i| i.exit_data.take()));
    let text = data.map(|(size, p)| {
        // SAFETY: ExitData the image passed to Exit: `size` bytes of UCS-2 in pool memory.
        let units = unsafe { core::slice::from_raw_parts(p, size / 2) };
        char::decode_utf16(units.iter().copied().take_while(|&u| u != 0)).map(|c| c.unwrap_or('?')).collect()
    });
    Ok((status, text))
}
