//! Every corrupted parameter block ends with its error line and a PSCI power-off within 10 s.

use efi_emulator_loader::plan::KexecImage;
use qemu_tests::{boot, options, EntryEl};
use std::sync::Arc;
use std::time::Duration;

fn refused(el: EntryEl, expected: &str, tweak: impl Fn(&mut KexecImage) + Send + Sync + 'static) {
    let mut o = options(el);
    o.timeout = Duration::from_secs(20);
    o.tweak = Some(Arc::new(tweak));
    let t = boot(o);
    let line = t.find("efi-emulator: fatal: ").unwrap_or_else(|| panic!("no fatal line; expected {expected}"));
    assert!(line.1.contains(expected), "expected {expected:?} in {:?}", line.1);
    assert!(line.1.contains("expected"), "the message says what was expected");
    assert!(!t.contains("handing off to the payload"), "nothing was started");
    assert!(t.powered_off(), "clean PSCI power-off");
    assert!(t.elapsed < Duration::from_secs(10), "exited after {:?}", t.elapsed);
}

#[test]
fn misaligned_param_address() {
    refused(EntryEl::El1, "param (x0) = ", |i| i.param_addr += 0x800);
}
#[test]
fn misaligned_sp() {
    refused(EntryEl::El2, "sp = ", |i| i.param.sp += 4);
}
#[test]
fn small_desc_size() {
    refused(EntryEl::El1, "memmap.desc_size = 0x20", |i| i.param.rt_info.memmap.desc_size = 32);
}
#[test]
fn map_size_off_stride() {
    refused(EntryEl::El2Vhe, "memmap.map_size = ", |i| i.param.rt_info.memmap.map_size += 3);
}
#[test]
fn invalid_memory_type() {
    refused(EntryEl::El1, "memmap.type[1] = 0x42", |i| i.map[1].r#type = 0x42);
}
#[test]
fn mempool_outside_conventional_memory() {
    refused(EntryEl::El2, "mempool_start = ", |i| i.param.mempool_start += 0x1000_0000);
}
#[test]
fn tiny_mempool() {
    refused(EntryEl::El1, "mempool_sz = 0x1000", |i| i.param.mempool_sz = 0x1000);
}
#[test]
fn kernel_outside_ram() {
    refused(EntryEl::El1, "kernel_img_start = 0x100000", |i| i.param.kernel_img_start = 0x10_0000);
}
#[test]
fn kernel_overlapping_mempool() {
    refused(EntryEl::El2Vhe, "kernel_img_start = ", |i| i.param.kernel_img_start = i.param.mempool_start + 0x1000);
}
#[test]
fn dtb_without_magic() {
    refused(EntryEl::El1, "dtb = 0xedfe0dd0", |i| i.dtb[0..4].copy_from_slice(&0xedfe_0dd0u32.to_be_bytes()));
}
#[test]
fn misaligned_dtb() {
    refused(EntryEl::El2, "dtb = ", |i| i.param.dtb += 4);
}
#[test]
fn odd_cmdline_length() {
    refused(EntryEl::El1, "sz_in_byte = 0x41", |i| i.param.sz_in_byte = 65);
}
#[test]
fn non_bool_flag() {
    refused(EntryEl::El1, "noefi_boot = 0x2", |i| i.param.noefi_boot = 2);
}
#[test]
fn entered_with_mmu_on_claimed() {
    refused(EntryEl::El2Vhe, "mmu_on = 0x1", |i| i.param.mmu_on = 1);
}
#[test]
fn unsupported_earlycon() {
    refused(EntryEl::El1, "earlycon_name = ", |i| i.param.earlycon_name = *b"ns16550a\0\0\0\0\0\0\0\0");
}
#[test]
fn null_uart_is_reported_on_the_dt_console() {
    // With no UART in the block, the emulator finds /chosen/stdout-path to say so.
    refused(EntryEl::El1, "earlycon_reg_base = 0x0", |i| i.param.earlycon_reg_base = 0);
}
#[test]
fn runtime_table_without_firmware() {
    refused(EntryEl::El2, "rt_info.runtime = 0x40000000", |i| i.param.rt_info.runtime = 0x4000_0000);
}
#[test]
fn too_many_config_tables() {
    refused(EntryEl::El1, "rt_info.systab_nr_tables = 0x15", |i| i.param.rt_info.systab_nr_tables = 21);
}
#[test]
fn fatal_errors_print_even_when_printing_is_off() {
    refused(EntryEl::El1, "mempool_sz = ", |i| {
        i.param.print_enabled = 0;
        i.param.mempool_sz = 0x2000;
    });
}
