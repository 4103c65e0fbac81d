//! Setting boot services up from a validated hand-off, and starting the kernel image.

use super::*;
use crate::abi::validate::Extent;
use crate::arch::aarch64::memory_plan::BlobLayout;
use crate::drivers::fdt::Fdt;
use crate::efi::guids;
use crate::efi::memory::AllocateType;
use crate::efi::pe::PeImage;
use core::mem::size_of;

/// Memory the emulator took for itself before the core existed.
pub struct Reserved {
    pub page_tables: Extent,
    pub heap: Extent,
}

/// `EFI_RT_PROPERTIES_TABLE`.
#[repr(C)]
struct RtProperties {
    version: u16,
    length: u16,
    supported: u32,
}

/// Offsets inside the runtime-data block that holds the tables the OS reads after
/// ExitBootServices.
const RT_BLOCK: u64 = 64 * 1024;
const AT_SYSTAB: usize = 0;
const AT_RUNTIME: usize = 0x200;
const AT_VENDOR: usize = 0x400;
const AT_RT_PROPERTIES: usize = 0x500;
const AT_CONFIG: usize = 0x800;

/// Bytes of runtime memory for the variable store.
const VARIABLE_STORE: u64 = 64 * 1024;

fn firmware_revision() -> u32 {
    let mut parts = crate::VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0) << 16) | (parts.next().unwrap_or(0) & 0xffff)
}

/// Builds the core: memory map, tables, console, RNG, initrd, configuration tables.
pub fn build(v: &Validated, blob: &BlobLayout, fdt: &Fdt, reserved: &Reserved) -> Result<Core, EfiError> {
    let mut memory = initial_map(v);
    let pages = |e: &Extent| e.size.div_ceil(PAGE_SIZE);
    memory.retype(reserved.page_tables.start, pages(&reserved.page_tables), efi::BOOT_SERVICES_DATA, false)?;
    memory.retype(reserved.heap.start, pages(&reserved.heap), efi::BOOT_SERVICES_DATA, false)?;
    // The blob stays after ExitBootServices: runtime services run from it.
    memory.retype(blob.base, blob.text_end / PAGE_SIZE, efi::RUNTIME_SERVICES_CODE, false)?;
    memory.retype(blob.base + blob.text_end, (blob.mem_end - blob.text_end) / PAGE_SIZE, efi::RUNTIME_SERVICES_DATA, false)?;

    let block = memory.allocate(AllocateType::AnyPages, efi::RUNTIME_SERVICES_DATA, RT_BLOCK / PAGE_SIZE, PAGE_SIZE)?;
    memory.retype(block, RT_BLOCK / PAGE_SIZE, efi::RUNTIME_SERVICES_DATA, false)?;
    // SAFETY: freshly allocated, identity-mapped runtime data.
    unsafe { core::ptr::write_bytes(block as *mut u8, 0, RT_BLOCK as usize) };
    let at = |off: usize| (block as usize + off) as *mut u8;
    let systab = at(AT_SYSTAB) as *mut efi::SystemTable;
    let runtime = at(AT_RUNTIME) as *mut efi::RuntimeServices;
    let tables = Tables {
        systab,
        boot: core::ptr::null_mut(),
        runtime,
        config: at(AT_CONFIG) as *mut efi::ConfigurationTable,
        config_capacity: (RT_BLOCK as usize - AT_CONFIG) / size_of::<efi::ConfigurationTable>(),
    };
    let mut c = Core {
        memory,
        pool: Pool::default(),
        handles: HandleDb::default(),
        events: new_events(),
        config: Vec::new(),
        tables,
        images: Vec::new(),
        monotonic: 0,
        ebs_failed: false,
        initrd: None,
    };
    c.tables.boot = boot::table(&mut c)?;
    let store = c.memory.allocate(AllocateType::AnyPages, efi::RUNTIME_SERVICES_DATA, VARIABLE_STORE / PAGE_SIZE, PAGE_SIZE)?;
    c.memory.retype(store, VARIABLE_STORE / PAGE_SIZE, efi::RUNTIME_SERVICES_DATA, false)?;
    // SAFETY: fresh runtime data, identity-mapped, 64 KiB aligned; the store owns it for good.
    let buf = unsafe { core::slice::from_raw_parts_mut(store as *mut u8, VARIABLE_STORE as usize) };
    install_variables(VariableStore::new(buf));
    runtime::table(runtime, v.runtime_phys);
    if v.runtime_phys.is_some() {
        let moved = v.map.iter().filter(|d| d.attribute & efi::MEMORY_RUNTIME != 0 && d.virtual_start != 0 && d.virtual_start != d.physical_start);
        if !runtime::record_firmware_ranges(moved.map(|d| runtime::FirmwareRange {
            phys: d.physical_start,
            virt: d.virtual_start,
            size: d.number_of_pages * crate::abi::PAGE_SIZE,
        })) {
            log::warn!("the firmware has more runtime ranges than SetVirtualAddressMap can check; it will refuse every map");
        }
    }

    let vendor = at(AT_VENDOR) as *mut u16;
    for (i, u) in guids::FIRMWARE_VENDOR.encode_utf16().chain(core::iter::once(0)).enumerate() {
        // SAFETY: inside the zeroed runtime block, 0x100 bytes reserved for the string.
        unsafe { vendor.add(i).write(u) };
    }
    let (console, con_out, con_in) = console::install(&mut c)?;
    // SAFETY: the system table slot of the runtime block.
    unsafe {
        systab.write(efi::SystemTable {
            hdr: table_header::<efi::SystemTable>(guids::SYSTEM_TABLE_SIGNATURE),
            firmware_vendor: vendor,
            firmware_revision: firmware_revision(),
            console_in_handle: console as efi::Handle,
            con_in,
            console_out_handle: console as efi::Handle,
            con_out,
            standard_error_handle: console as efi::Handle,
            std_err: con_out,
            runtime_services: runtime,
            boot_services: c.tables.boot,
            number_of_table_entries: 0,
            configuration_table: c.tables.config,
        });
    }

    if fdt.find("/chosen").and_then(|n| n.property("efi-emulator,no-memory-attribute")).is_some() {
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
            image::install_initrd(&mut c, start, end)?;
            log::info!("initrd {start:#x}..{end:#x} served through LoadFile2 (LINUX_EFI_INITRD_MEDIA_GUID)");
        }
    }

    c.config.push((guids::DEVICE_TREE, v.dtb.start as usize));
    let rt = &v.param.rt_info;
    for t in &rt.systab_tables[..rt.systab_nr_tables as usize] {
        c.config.push((t.guid, t.table as usize));
    }
    let firmware_mask = v.runtime_phys.map(|_| rt.runtime_supported_mask);
    let props = at(AT_RT_PROPERTIES) as *mut RtProperties;
    let supported = runtime::supported_mask(firmware_mask);
    // SAFETY: the RT properties slot of the runtime block.
    unsafe { props.write(RtProperties { version: 1, length: size_of::<RtProperties>() as u16, supported }) };
    // SAFETY: the field of the table just written.
    runtime::set_properties(unsafe { &raw mut (*props).supported }, firmware_mask);
    c.config.push((guids::RT_PROPERTIES_TABLE, props as usize));
    c.publish_config()?;
    log::info!("runtime services supported after ExitBootServices: mask {supported:#06x}");
    Ok(c)
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
fn in_place_placement(c: &Core, v: &Validated, pe: &PeImage, fdt: &Fdt, blob: &BlobLayout) -> bool {
    let start = v.kernel.start;
    let align = if pe.linux_image_size.is_some() { 2 << 20 } else { pe.section_alignment as u64 };
    let image = Extent::new(start, (pe.size_of_image as u64).next_multiple_of(PAGE_SIZE));
    if !pe.file_layout_is_memory_layout() || !start.is_multiple_of(align) {
        return false;
    }
    let initrd = fdt.initrd().map(|(s, e)| Extent::new(s, e - s)).unwrap_or_default();
    let block = Extent::new(v.param_addr, v.param.sp - v.param_addr);
    let others = [v.dtb, initrd, blob.extent(), block, v.mempool, v.uart];
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

/// Loads the kernel from the parameter block and starts it. Returns only if it returns: its
/// status, and the ExitData it gave to Exit (decoded), if any.
pub fn start_kernel(v: &Validated, fdt: &Fdt, blob: &BlobLayout) -> Result<(Status, Option<alloc::string::String>), EfiError> {
    let file = kernel_file(v);
    let handle = with_core(|c| {
        let pe = PeImage::parse(file).map_err(|e| {
            log::error!("kernel image at {:#x}: {e}", v.kernel.start);
            EfiError::LoadError
        })?;
        let uki = crate::efi::image_policy::is_uki(&pe);
        let placement = if in_place_placement(c, v, &pe, fdt, blob) {
            super::integrity::kernel_runs_in_place();
            image::Placement::InPlace(v.kernel.start)
        } else {
            image::Placement::Copy
        };
        // The image "comes from" the memory the loader put it in: a device handle with that
        // device path and nothing else, so payloads probing it for a file system get
        // EFI_UNSUPPORTED, not EFI_INVALID_PARAMETER for a NULL handle.
        let path = crate::efi::protocols::device_path::memory_mapped(efi::BOOT_SERVICES_DATA, v.kernel.start, v.kernel.end() - 1);
        let device = image::install_device_path(c, &path)?;
        let handle = image::load(c, file, placement, 0, device, None, Some(&path))?;
        use crate::efi::image_policy::{load_options, LoadOptions};
        match load_options(v.cmdline_utf16().is_empty()) {
            LoadOptions::Empty if uki => log::info!("LoadOptions left empty: the UKI uses its own .cmdline"),
            LoadOptions::Empty => {}
            LoadOptions::FromLoader => {
                image::set_load_options(c, handle, v.cmdline_utf16())?;
                if uki {
                    log::info!("LoadOptions set from the loader's command line: it overrides the UKI's .cmdline");
                }
            }
        }
        Ok::<_, EfiError>(handle)
    })?;
    let entry = with_core(|c| c.image(handle).map(|i| i.entry))?;
    image::report_handoff(entry);
    let status = image::start(handle)?;
    if EXITED.load(Ordering::Relaxed) {
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
