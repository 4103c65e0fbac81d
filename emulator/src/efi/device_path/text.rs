//! Device paths as text, UEFI 2.10 section 10.6: DevicePathToText (the full form, "display
//! only" FALSE, with the shortcut names EDK2 prints for well-known vendor GUIDs) and
//! DevicePathFromText.
//!
//! Each node form is one row of `FORMS`: type, subtype, name, and the fields of its text in
//! order, each field saying where its bytes sit in the node. Printing and parsing walk the same
//! row, so a form is described once. A node's text must parse back to the node's bytes: a node
//! no named form carries exactly (reserved bytes set, a value outside the form, too short or too
//! long) prints in the generic `Path(type,subtype,hex)` form instead, as does a node of a type
//! this table does not know. Parsing never panics and refuses what it cannot read exactly.

use super::{file_path, node, node_len, SUBTYPE_END_ENTIRE, SUBTYPE_END_INSTANCE, SUBTYPE_FILE_PATH, TYPE_ACPI, TYPE_BBS, TYPE_END, TYPE_HARDWARE, TYPE_MEDIA, TYPE_MESSAGING};
use crate::mem::hex_bytes;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// How an integer field is written (any of them parses from decimal or `0x` hex, except `Bare`).
#[derive(Clone, Copy)]
enum Radix {
    /// `0x1F`
    Hex,
    /// `0x0000001F`: `0x` and at least this many digits.
    HexWide(u8),
    /// `31`
    Dec,
    /// `000000000000001F`: 16 hex digits, no prefix (I1394's GUID), parsed as hex.
    Bare,
}

/// What an empty integer argument stands for.
#[derive(Clone, Copy)]
enum Blank {
    Refused,
    Zero,
    /// All ones: the USB class wildcards, Sata's "no port multiplier".
    Ones,
}

/// One argument (or a part written without one) of a node's text, with where its bytes sit in
/// the node's body (after the 4-byte header). Offsets are those of UEFI 2.10 section 10.3.
enum Field {
    /// A little-endian unsigned integer of `size` bytes; `names` are keywords for some values.
    Int {
        at: u8,
        size: u8,
        radix: Radix,
        blank: Blank,
        names: &'static [(u8, &'static str)],
    },
    /// Bytes the node must hold, with no argument (VenPcAnsi's GUID, PciRoot's PNP ID).
    Fixed {
        at: u8,
        bytes: &'static [u8],
    },
    Guid {
        at: u8,
    },
    /// Vendor-defined data to the node's end: an optional hex argument.
    VendorData {
        at: u8,
    },
    /// 8 bytes as one big-endian `0x` number (FibreEx's WWN, iSCSI's LUN).
    BigEndian64 {
        at: u8,
    },
    /// `n` bytes as 2n hex digits, no prefix (Bluetooth addresses).
    Bytes {
        at: u8,
        n: u8,
    },
    /// NVMe's EUI-64: its bytes last to first, joined with `-`.
    Eui64 {
        at: u8,
    },
    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address; `optional` ones may be left out (zeros).
    Ip {
        at: u8,
        v6: bool,
        optional: bool,
    },
    /// MAC address and interface type, two arguments: 6 address bytes for types 0 and 1
    /// (802.3), all 32 otherwise.
    Mac,
    /// A NUL-terminated ASCII string, then `extra` more NULs, to the node's end.
    CString {
        at: u8,
        extra: u8,
        nonempty: bool,
    },
    /// ASCII to the node's end without a NUL (URI).
    Ascii {
        at: u8,
    },
    /// ASCII in a NUL-padded field of `n` bytes (Wi-Fi SSID).
    PaddedAscii {
        at: u8,
        n: u8,
    },
    /// UTF-16 to the node's end without a NUL, in quotes (UsbWwid's serial number).
    QuotedUtf16 {
        at: u8,
    },
    /// u32 values to the node's end, one argument each (AcpiAdr).
    U32List {
        at: u8,
    },
    /// A compressed EISA ID as `PNP0A03`; with `zero_as_0`, `0` stands for 0 (AcpiExp's CID).
    Eisa {
        at: u8,
        zero_as_0: bool,
    },
    /// Acpi's HID: `PNPxxxx` for PNP IDs, `0x%08X` otherwise.
    AcpiHid {
        at: u8,
    },
    /// AcpiEx's strings: the node holds HIDSTR, UIDSTR, CIDSTR; the text says HIDSTR, CIDSTR, UIDSTR.
    AcpiExStrings {
        at: u8,
    },
    /// SAS device topology, four arguments: SAS|SATA, Internal|External, Direct|Expanded, bay.
    SasTopology {
        at: u8,
    },
    /// iSCSI login options, three arguments: header digest, data digest, authentication.
    IscsiLogin {
        at: u8,
    },
    /// HD's signature type and signature, two arguments (the MBR type follows the type).
    HdSignature,
    /// DNS servers: the address family byte, then one argument per 16-byte address.
    DnsServers,
}

/// One named text form of a node.
struct Form {
    ty: u8,
    sub: u8,
    name: &'static str,
    fields: &'static [Field],
}

const fn form(ty: u8, sub: u8, name: &'static str, fields: &'static [Field]) -> Form {
    Form { ty, sub, name, fields }
}

const fn int(at: u8, size: u8, radix: Radix) -> Field {
    Field::Int { at, size, radix, blank: Blank::Refused, names: &[] }
}

const fn hex(at: u8, size: u8) -> Field {
    int(at, size, Radix::Hex)
}

const fn dec(at: u8, size: u8) -> Field {
    int(at, size, Radix::Dec)
}

/// A hex field an empty argument sets to all ones (a wildcard).
const fn hex_or_ones(at: u8, size: u8) -> Field {
    Field::Int { at, size, radix: Radix::Hex, blank: Blank::Ones, names: &[] }
}

/// An integer printed as its keyword when it has one, else as hex.
const fn named(at: u8, size: u8, names: &'static [(u8, &'static str)]) -> Field {
    Field::Int { at, size, radix: Radix::Hex, blank: Blank::Refused, names }
}

const fn fixed(at: u8, bytes: &'static [u8]) -> Field {
    Field::Fixed { at, bytes }
}

const fn guid(at: u8) -> Field {
    Field::Guid { at }
}

const fn ip(at: u8, v6: bool) -> Field {
    Field::Ip { at, v6, optional: false }
}

/// A GUID's bytes, as `EFI_GUID` lays them out.
const fn guid_bytes(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
}

/// The low half of every PNP EISA ID ("PNP" compressed).
const PNP: u32 = 0x41d0;

const fn pnp(id: u16) -> [u8; 4] {
    ((id as u32) << 16 | PNP).to_le_bytes()
}

const PNP_PCI_ROOT: [u8; 4] = pnp(0x0a03);
const PNP_PCIE_ROOT: [u8; 4] = pnp(0x0a08);
const PNP_FLOPPY: [u8; 4] = pnp(0x0604);
const PNP_KEYBOARD: [u8; 4] = pnp(0x0301);
const PNP_SERIAL: [u8; 4] = pnp(0x0501);
const PNP_PARALLEL: [u8; 4] = pnp(0x0401);

const PC_ANSI: [u8; 16] = guid_bytes(0xe0c14753, 0xf9be, 0x11d2, [0x9a, 0x0c, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d]);
const VT_100: [u8; 16] = guid_bytes(0xdfa66065, 0xb419, 0x11d3, [0x9a, 0x2d, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d]);
const VT_100_PLUS: [u8; 16] = guid_bytes(0x7baec70b, 0x57e0, 0x4c76, [0x8e, 0x87, 0x2f, 0x9e, 0x28, 0x08, 0x83, 0x43]);
const VT_UTF8: [u8; 16] = guid_bytes(0xad15a0d6, 0x8bec, 0x4acf, [0xa0, 0x73, 0xd0, 0x1d, 0xe7, 0x7e, 0x2d, 0x88]);
const UART_FLOW_CONTROL: [u8; 16] = guid_bytes(0x37499a9d, 0x542f, 0x4c89, [0xa0, 0x26, 0x35, 0xda, 0x14, 0x20, 0x94, 0xe4]);
const SAS: [u8; 16] = guid_bytes(0xd487ddb4, 0x008b, 0x11d9, [0xaf, 0xdc, 0x00, 0x10, 0x83, 0xff, 0xca, 0x4d]);
const DEBUG_PORT: [u8; 16] = guid_bytes(0xeba4e8d2, 0x3858, 0x41ec, [0xa2, 0x81, 0x26, 0x47, 0xba, 0x96, 0x60, 0xd0]);
const VIRTUAL_DISK: [u8; 16] = guid_bytes(0x77ab535a, 0x45fc, 0x624b, [0x55, 0x60, 0xf7, 0xb2, 0x81, 0xd1, 0xf9, 0x6e]);
const VIRTUAL_CD: [u8; 16] = guid_bytes(0x3d5abd30, 0x4175, 0x87ce, [0x6d, 0x64, 0xd2, 0xad, 0xe5, 0x23, 0xc4, 0xbb]);
const PERSISTENT_VIRTUAL_DISK: [u8; 16] = guid_bytes(0x5cea02c9, 0x4d07, 0x69d3, [0x26, 0x9f, 0x44, 0x96, 0xfb, 0xe0, 0x96, 0xf9]);
const PERSISTENT_VIRTUAL_CD: [u8; 16] = guid_bytes(0x08018188, 0x42cd, 0xbb48, [0x10, 0x0f, 0x53, 0x87, 0xd5, 0x3d, 0xed, 0x3d]);

const TCP_UDP: &[(u8, &str)] = &[(6, "TCP"), (17, "UDP")];
const DEFAULT: &[(u8, &str)] = &[(0, "DEFAULT")];

/// The USB class forms: vendor, product, the class fixed, subclass, protocol.
const fn usb_class_fields(class: &'static [u8]) -> [Field; 5] {
    [hex_or_ones(0, 2), hex_or_ones(2, 2), fixed(4, class), hex_or_ones(5, 1), hex_or_ones(6, 1)]
}

/// The USB forms of class 0xFE with a named subclass: vendor, product, protocol.
const fn usb_subclass_fields(class_and_subclass: &'static [u8]) -> [Field; 4] {
    [hex_or_ones(0, 2), hex_or_ones(2, 2), fixed(4, class_and_subclass), hex_or_ones(6, 1)]
}

/// Every named form, in the order printing tries them: for one type and subtype the specific
/// forms (a fixed GUID or ID) come before the general one.
static FORMS: &[Form] = &[
    // Hardware (10.3.2).
    form(TYPE_HARDWARE, 0x01, "Pci", &[hex(1, 1), hex(0, 1)]),
    form(TYPE_HARDWARE, 0x02, "PcCard", &[hex(0, 1)]),
    form(TYPE_HARDWARE, 0x03, "MemoryMapped", &[hex(0, 4), hex(4, 8), hex(12, 8)]),
    form(TYPE_HARDWARE, 0x04, "VenHw", &[guid(0), Field::VendorData { at: 16 }]),
    form(TYPE_HARDWARE, 0x05, "Ctrl", &[hex(0, 4)]),
    form(TYPE_HARDWARE, 0x06, "BMC", &[hex(0, 1), hex(1, 8)]),
    // ACPI (10.3.3): HID, UID.
    form(TYPE_ACPI, 0x01, "PciRoot", &[fixed(0, &PNP_PCI_ROOT), hex(4, 4)]),
    form(TYPE_ACPI, 0x01, "PcieRoot", &[fixed(0, &PNP_PCIE_ROOT), hex(4, 4)]),
    form(TYPE_ACPI, 0x01, "Floppy", &[fixed(0, &PNP_FLOPPY), hex(4, 4)]),
    form(TYPE_ACPI, 0x01, "Keyboard", &[fixed(0, &PNP_KEYBOARD), hex(4, 4)]),
    form(TYPE_ACPI, 0x01, "Serial", &[fixed(0, &PNP_SERIAL), hex(4, 4)]),
    form(TYPE_ACPI, 0x01, "ParallelPort", &[fixed(0, &PNP_PARALLEL), hex(4, 4)]),
    form(TYPE_ACPI, 0x01, "Acpi", &[Field::AcpiHid { at: 0 }, hex(4, 4)]),
    // HID, UID, CID, then HIDSTR, UIDSTR, CIDSTR. AcpiExp: UID 0, only UIDSTR.
    form(
        TYPE_ACPI,
        0x02,
        "AcpiExp",
        &[Field::Eisa { at: 0, zero_as_0: false }, Field::Eisa { at: 8, zero_as_0: true }, fixed(4, &[0; 4]), fixed(12, &[0]), Field::CString { at: 13, extra: 1, nonempty: true }],
    ),
    form(TYPE_ACPI, 0x02, "AcpiEx", &[Field::Eisa { at: 0, zero_as_0: false }, Field::Eisa { at: 8, zero_as_0: false }, hex(4, 4), Field::AcpiExStrings { at: 12 }]),
    form(TYPE_ACPI, 0x03, "AcpiAdr", &[Field::U32List { at: 0 }]),
    // Messaging (10.3.4).
    form(TYPE_MESSAGING, 0x01, "Ata", &[named(0, 1, &[(0, "Primary"), (1, "Secondary")]), named(1, 1, &[(0, "Master"), (1, "Slave")]), hex(2, 2)]),
    form(TYPE_MESSAGING, 0x02, "Scsi", &[hex(0, 2), hex(2, 2)]),
    form(TYPE_MESSAGING, 0x03, "Fibre", &[hex(4, 8), hex(12, 8)]),
    form(TYPE_MESSAGING, 0x04, "I1394", &[int(4, 8, Radix::Bare)]),
    form(TYPE_MESSAGING, 0x05, "USB", &[hex(0, 1), hex(1, 1)]),
    form(TYPE_MESSAGING, 0x06, "I2O", &[hex(0, 4)]),
    form(TYPE_MESSAGING, 0x09, "Infiniband", &[hex(0, 4), guid(4), hex(20, 8), hex(28, 8), hex(36, 8)]),
    form(TYPE_MESSAGING, 0x0a, "VenPcAnsi", &[fixed(0, &PC_ANSI)]),
    form(TYPE_MESSAGING, 0x0a, "VenVt100", &[fixed(0, &VT_100)]),
    form(TYPE_MESSAGING, 0x0a, "VenVt100Plus", &[fixed(0, &VT_100_PLUS)]),
    form(TYPE_MESSAGING, 0x0a, "VenUtf8", &[fixed(0, &VT_UTF8)]),
    form(TYPE_MESSAGING, 0x0a, "UartFlowCtrl", &[fixed(0, &UART_FLOW_CONTROL), named(16, 4, &[(0, "None"), (1, "Hardware"), (2, "XonXoff")])]),
    // GUID, reserved, address, LUN, topology, relative target port.
    form(TYPE_MESSAGING, 0x0a, "SAS", &[fixed(0, &SAS), hex(20, 8), hex(28, 8), hex(38, 2), Field::SasTopology { at: 36 }, hex(16, 4)]),
    form(TYPE_MESSAGING, 0x0a, "DebugPort", &[fixed(0, &DEBUG_PORT)]),
    form(TYPE_MESSAGING, 0x0a, "VenMsg", &[guid(0), Field::VendorData { at: 16 }]),
    form(TYPE_MESSAGING, 0x0b, "MAC", &[Field::Mac]),
    // Local, remote, local port, remote port, protocol, static, gateway, mask.
    form(
        TYPE_MESSAGING,
        0x0c,
        "IPv4",
        &[
            ip(4, false),
            named(12, 2, TCP_UDP),
            named(14, 1, &[(0, "DHCP"), (1, "Static")]),
            ip(0, false),
            Field::Ip { at: 15, v6: false, optional: true },
            Field::Ip { at: 19, v6: false, optional: true },
        ],
    ),
    // Local, remote, ports, protocol, origin, prefix length, gateway.
    form(
        TYPE_MESSAGING,
        0x0d,
        "IPv6",
        &[
            ip(16, true),
            named(36, 2, TCP_UDP),
            named(38, 1, &[(0, "Static"), (1, "StatelessAutoConfigure"), (2, "StatefulAutoConfigure")]),
            ip(0, true),
            Field::Int { at: 39, size: 1, radix: Radix::Hex, blank: Blank::Zero, names: &[] },
            Field::Ip { at: 40, v6: true, optional: true },
        ],
    ),
    // Reserved, baud rate, data bits, parity, stop bits. `DEFAULT` is 0 both ways, as the node
    // defines it (EDK2 parses it as 115200 and 8, which would not read back as `DEFAULT`).
    form(
        TYPE_MESSAGING,
        0x0e,
        "Uart",
        &[
            Field::Int { at: 4, size: 8, radix: Radix::Dec, blank: Blank::Refused, names: DEFAULT },
            Field::Int { at: 12, size: 1, radix: Radix::Dec, blank: Blank::Refused, names: DEFAULT },
            named(13, 1, &[(0, "D"), (1, "N"), (2, "E"), (3, "O"), (4, "M"), (5, "S")]),
            named(14, 1, &[(0, "D"), (1, "1"), (2, "1.5"), (3, "2")]),
        ],
    ),
    form(TYPE_MESSAGING, 0x0f, "UsbAudio", &usb_class_fields(&[0x01])),
    form(TYPE_MESSAGING, 0x0f, "UsbCDCControl", &usb_class_fields(&[0x02])),
    form(TYPE_MESSAGING, 0x0f, "UsbHID", &usb_class_fields(&[0x03])),
    form(TYPE_MESSAGING, 0x0f, "UsbImage", &usb_class_fields(&[0x06])),
    form(TYPE_MESSAGING, 0x0f, "UsbPrinter", &usb_class_fields(&[0x07])),
    form(TYPE_MESSAGING, 0x0f, "UsbMassStorage", &usb_class_fields(&[0x08])),
    form(TYPE_MESSAGING, 0x0f, "UsbHub", &usb_class_fields(&[0x09])),
    form(TYPE_MESSAGING, 0x0f, "UsbCDCData", &usb_class_fields(&[0x0a])),
    form(TYPE_MESSAGING, 0x0f, "UsbSmartCard", &usb_class_fields(&[0x0b])),
    form(TYPE_MESSAGING, 0x0f, "UsbVideo", &usb_class_fields(&[0x0e])),
    form(TYPE_MESSAGING, 0x0f, "UsbDiagnostic", &usb_class_fields(&[0xdc])),
    form(TYPE_MESSAGING, 0x0f, "UsbWireless", &usb_class_fields(&[0xe0])),
    form(TYPE_MESSAGING, 0x0f, "UsbDeviceFirmwareUpdate", &usb_subclass_fields(&[0xfe, 0x01])),
    form(TYPE_MESSAGING, 0x0f, "UsbIrdaBridge", &usb_subclass_fields(&[0xfe, 0x02])),
    form(TYPE_MESSAGING, 0x0f, "UsbTestAndMeasurement", &usb_subclass_fields(&[0xfe, 0x03])),
    form(TYPE_MESSAGING, 0x0f, "UsbClass", &[hex_or_ones(0, 2), hex_or_ones(2, 2), hex_or_ones(4, 1), hex_or_ones(5, 1), hex_or_ones(6, 1)]),
    // Interface, vendor, product, serial number.
    form(TYPE_MESSAGING, 0x10, "UsbWwid", &[hex(2, 2), hex(4, 2), hex(0, 2), Field::QuotedUtf16 { at: 6 }]),
    form(TYPE_MESSAGING, 0x11, "Unit", &[hex(0, 1)]),
    form(TYPE_MESSAGING, 0x12, "Sata", &[hex(0, 2), hex_or_ones(2, 2), hex(4, 2)]),
    // Protocol, login options, LUN, target portal group, target name.
    form(
        TYPE_MESSAGING,
        0x13,
        "iSCSI",
        &[
            Field::CString { at: 14, extra: 0, nonempty: false },
            hex(12, 2),
            Field::BigEndian64 { at: 4 },
            Field::IscsiLogin { at: 2 },
            Field::Int { at: 0, size: 2, radix: Radix::Hex, blank: Blank::Zero, names: &[(0, "TCP"), (1, "reserved")] },
        ],
    ),
    form(TYPE_MESSAGING, 0x14, "Vlan", &[dec(0, 2)]),
    form(TYPE_MESSAGING, 0x15, "FibreEx", &[Field::BigEndian64 { at: 4 }, Field::BigEndian64 { at: 12 }]),
    // Address, LUN, topology, relative target port.
    form(TYPE_MESSAGING, 0x16, "SasEx", &[Field::BigEndian64 { at: 0 }, Field::BigEndian64 { at: 8 }, hex(18, 2), Field::SasTopology { at: 16 }]),
    form(TYPE_MESSAGING, 0x17, "NVMe", &[hex(0, 4), Field::Eui64 { at: 4 }]),
    form(TYPE_MESSAGING, 0x18, "Uri", &[Field::Ascii { at: 0 }]),
    form(TYPE_MESSAGING, 0x19, "UFS", &[hex(0, 1), hex(1, 1)]),
    form(TYPE_MESSAGING, 0x1a, "SD", &[hex(0, 1)]),
    form(TYPE_MESSAGING, 0x1b, "Bluetooth", &[Field::Bytes { at: 0, n: 6 }]),
    form(TYPE_MESSAGING, 0x1c, "Wi-Fi", &[Field::PaddedAscii { at: 0, n: 32 }]),
    form(TYPE_MESSAGING, 0x1d, "eMMC", &[hex(0, 1)]),
    form(TYPE_MESSAGING, 0x1e, "BluetoothLE", &[Field::Bytes { at: 0, n: 6 }, int(6, 1, Radix::HexWide(2))]),
    form(TYPE_MESSAGING, 0x1f, "Dns", &[Field::DnsServers]),
    // Media (10.3.5). HD: number, start, size, signature, MBR type, signature type.
    form(TYPE_MEDIA, 0x01, "HD", &[dec(0, 4), Field::HdSignature, hex(4, 8), hex(12, 8)]),
    form(TYPE_MEDIA, 0x02, "CDROM", &[hex(0, 4), hex(4, 8), hex(12, 8)]),
    form(TYPE_MEDIA, 0x03, "VenMedia", &[guid(0), Field::VendorData { at: 16 }]),
    form(TYPE_MEDIA, 0x05, "Media", &[guid(0)]),
    form(TYPE_MEDIA, 0x06, "FvFile", &[guid(0)]),
    form(TYPE_MEDIA, 0x07, "Fv", &[guid(0)]),
    form(TYPE_MEDIA, 0x08, "Offset", &[hex(4, 8), hex(12, 8)]),
    // Start, end, type GUID, instance.
    form(TYPE_MEDIA, 0x09, "VirtualDisk", &[hex(0, 8), hex(8, 8), dec(32, 2), fixed(16, &VIRTUAL_DISK)]),
    form(TYPE_MEDIA, 0x09, "VirtualCD", &[hex(0, 8), hex(8, 8), dec(32, 2), fixed(16, &VIRTUAL_CD)]),
    form(TYPE_MEDIA, 0x09, "PersistentVirtualDisk", &[hex(0, 8), hex(8, 8), dec(32, 2), fixed(16, &PERSISTENT_VIRTUAL_DISK)]),
    form(TYPE_MEDIA, 0x09, "PersistentVirtualCD", &[hex(0, 8), hex(8, 8), dec(32, 2), fixed(16, &PERSISTENT_VIRTUAL_CD)]),
    form(TYPE_MEDIA, 0x09, "RamDisk", &[hex(0, 8), hex(8, 8), dec(32, 2), guid(16)]),
    // BIOS Boot Specification (10.3.6): device type, status flags, description.
    form(
        TYPE_BBS,
        0x01,
        "BBS",
        &[named(0, 2, &[(1, "Floppy"), (2, "HD"), (3, "CDROM"), (4, "PCMCIA"), (5, "USB"), (6, "Network")]), Field::CString { at: 4, extra: 0, nonempty: false }, hex(2, 2)],
    ),
];

/// The generic forms: `Path(type,subtype,hex)`, and one per type with the type implied.
const GENERIC: &[(&str, Option<u8>)] = &[
    ("Path", None),
    ("HardwarePath", Some(TYPE_HARDWARE)),
    ("AcpiPath", Some(TYPE_ACPI)),
    ("Msg", Some(TYPE_MESSAGING)),
    ("MediaPath", Some(TYPE_MEDIA)),
    ("BbsPath", Some(TYPE_BBS)),
];

/// One node in its text form (UEFI 2.10 section 10.6): the named form of its type when its
/// bytes fit one exactly, else `Path(type,subtype,hex)`; an instance end is `,`, the end of the
/// path nothing.
pub fn node_text(n: &[u8]) -> String {
    let (Some(&ty), Some(&sub)) = (n.first(), n.get(1)) else { return String::new() };
    let body = n.get(4..).unwrap_or_default();
    match (ty, sub) {
        (TYPE_END, SUBTYPE_END_INSTANCE) if body.is_empty() => return ",".into(),
        (TYPE_END, SUBTYPE_END_ENTIRE) => return String::new(),
        _ => {}
    }
    // A candidate counts only if it stands alone in a path and parses back to these bytes.
    let exact = |text: &String| stands_alone(text) && node_from_text(text).as_deref() == Some(n);
    let file = (ty == TYPE_MEDIA && sub == SUBTYPE_FILE_PATH).then(|| file_path_text(body)).flatten();
    let named = FORMS.iter().filter(|f| f.ty == ty && f.sub == sub).filter_map(|f| render(f, body));
    file.into_iter().chain(named).find(exact).unwrap_or_else(|| generic_text(ty, sub, body))
}

/// A whole path in text form: nodes joined with `/`, instances with `,`.
pub fn path_text(path: &[u8]) -> String {
    let mut out = String::new();
    let mut off = 0;
    while let Some(header) = path.get(off..off + 4) {
        let len = node_len(header);
        let Some(n) = path.get(off..off + len) else { break };
        if n[0] == TYPE_END && n[1] == SUBTYPE_END_ENTIRE {
            break;
        }
        let text = node_text(n);
        if !out.is_empty() && !out.ends_with(',') && text != "," {
            out.push('/');
        }
        out.push_str(&text);
        off += len;
    }
    out
}

/// One node from its text form (the inverse of [`node_text`]): any form of UEFI 2.10 section
/// 10.6 printing knows, the generic `Path(type,subtype,hex)`, `HardwarePath(subtype,hex)` and
/// kin, and text that is not `Name(...)` as a file path. `None` for anything else: an unknown
/// name, a wrong argument count, a number out of range, malformed text.
pub fn node_from_text(text: &str) -> Option<Vec<u8>> {
    let Some((name, rest)) = text.split_once('(').filter(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) else {
        return file_path_node(text);
    };
    let inner = rest.strip_suffix(')')?;
    if let Some(&(_, ty)) = GENERIC.iter().find(|(generic, _)| *generic == name) {
        return generic_from_text(ty, &mut inner.split(','));
    }
    let form = FORMS.iter().find(|f| f.name == name)?;
    // `VenPcAnsi()` has no argument; `Uri()` has one, empty.
    let takes_args = form.fields.iter().any(|f| !matches!(f, Field::Fixed { .. }));
    let mut args = (takes_args || !inner.is_empty()).then(|| inner.split(',')).into_iter().flatten();
    let mut body = Vec::new();
    for field in form.fields {
        parse_field(field, &mut args, &mut body)?;
    }
    if args.next().is_some() {
        return None;
    }
    checked_node(form.ty, form.sub, &body)
}

/// Splits `text` at `sep` outside parentheses.
fn split_top<'a>(text: &'a str, sep: &[char]) -> Vec<(char, &'a str)> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut before) = (0i32, 0, '/');
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 && sep.contains(&c) => {
                parts.push((before, &text[start..i]));
                (start, before) = (i + 1, c);
            }
            _ => {}
        }
    }
    parts.push((before, &text[start..]));
    parts
}

/// A whole path from its text form: nodes separated by `/`, instances by `,` (outside
/// parentheses), ending with End.
pub fn path_from_text(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (sep, part) in split_top(text, &['/', ',']) {
        if sep == ',' {
            out.extend(node(TYPE_END, SUBTYPE_END_INSTANCE, &[]));
        }
        if !part.is_empty() {
            out.extend(node_from_text(part)?);
        }
    }
    out.extend(super::end());
    Some(out)
}

/// Whether `text` is one element of a path: balanced parentheses, no `/` or `,` outside them.
fn stands_alone(text: &str) -> bool {
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            ',' | '/' if depth == 0 => return false,
            _ => {}
        }
    }
    depth == 0 && !text.is_empty()
}

/// A node, or `None` when the body does not fit a node's 16-bit length.
fn checked_node(ty: u8, sub: u8, body: &[u8]) -> Option<Vec<u8>> {
    (body.len() <= usize::from(u16::MAX) - 4).then(|| node(ty, sub, body))
}

fn generic_text(ty: u8, sub: u8, body: &[u8]) -> String {
    let mut out = String::with_capacity(12 + 2 * body.len());
    let _ = write!(out, "Path({ty},{sub}");
    if !body.is_empty() {
        out.push(',');
        push_hex(&mut out, body);
    }
    out.push(')');
    out
}

fn generic_from_text(ty: Option<u8>, args: &mut dyn Iterator<Item = &str>) -> Option<Vec<u8>> {
    let mut byte = || u8::try_from(number(args.next()?)?).ok();
    let ty = match ty {
        Some(ty) => ty,
        None => byte()?,
    };
    let sub = byte()?;
    let data = match args.next() {
        Some(hex) => hex_bytes(hex.trim())?,
        None => Vec::new(),
    };
    if args.next().is_some() {
        return None;
    }
    checked_node(ty, sub, &data)
}

/// A file path node's text: its UTF-16 string, which must end with its only NUL.
fn file_path_text(body: &[u8]) -> Option<String> {
    let units = utf16_units(body)?;
    let (&0, path) = units.split_last()? else { return None };
    if path.is_empty() || path.contains(&0) {
        return None;
    }
    String::from_utf16(path).ok()
}

fn file_path_node(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.contains('\0') {
        return None;
    }
    let units: Vec<u16> = text.encode_utf16().collect();
    // file_path adds the NUL and an End node; a node's length must still fit 16 bits.
    (units.len() < (usize::from(u16::MAX) - 4) / 2).then(|| super::without_end(&file_path(&units)).to_vec())
}

/// The text of `form` for `body`, or `None` when the bytes do not fit it.
fn render(form: &Form, body: &[u8]) -> Option<String> {
    let mut out = String::from(form.name);
    out.push('(');
    let mut first = true;
    for field in form.fields {
        let mark = out.len();
        if !first {
            out.push(',');
        }
        if render_field(field, body, &mut out)? {
            first = false;
        } else {
            out.truncate(mark);
        }
    }
    out.push(')');
    Some(out)
}

/// Appends one field's text: `Some(false)` when it has none (a fixed part, absent vendor data),
/// `None` when the bytes do not fit.
fn render_field(field: &Field, body: &[u8], out: &mut String) -> Option<bool> {
    match *field {
        Field::Int { at, size, radix, names, .. } => {
            let value = le(body, at, size)?;
            match names.iter().find(|(v, _)| u64::from(*v) == value) {
                Some((_, name)) => out.push_str(name),
                None => push_number(out, value, radix),
            }
        }
        Field::Fixed { at, bytes } => return (bytes_at(body, at, bytes.len())? == bytes).then_some(false),
        Field::Guid { at } => push_guid(out, bytes_at(body, at, 16)?),
        Field::VendorData { at } => {
            let data = body.get(usize::from(at)..)?;
            if data.is_empty() {
                return Some(false);
            }
            push_hex(out, data);
        }
        Field::BigEndian64 { at } => {
            out.push_str("0x");
            push_hex(out, bytes_at(body, at, 8)?);
        }
        Field::Bytes { at, n } => push_hex(out, bytes_at(body, at, usize::from(n))?),
        Field::Eui64 { at } => {
            for (i, b) in bytes_at(body, at, 8)?.iter().rev().enumerate() {
                if i > 0 {
                    out.push('-');
                }
                push_hex(out, &[*b]);
            }
        }
        Field::Ip { at, v6, .. } => push_ip(out, bytes_at(body, at, if v6 { 16 } else { 4 })?),
        Field::Mac => {
            let if_type = *body.get(32)?;
            push_hex(out, bytes_at(body, 0, mac_len(if_type))?);
            let _ = write!(out, ",0x{if_type:X}");
        }
        Field::CString { at, extra, nonempty } => {
            let tail = body.get(usize::from(at)..)?;
            let len = tail.iter().position(|&b| b == 0)?;
            let nuls_only = tail.len() == len + 1 + usize::from(extra) && tail[len..].iter().all(|&b| b == 0);
            (nuls_only && (len > 0 || !nonempty)).then_some(())?;
            push_ascii(out, &tail[..len])?;
        }
        Field::Ascii { at } => push_ascii(out, body.get(usize::from(at)..)?)?,
        Field::PaddedAscii { at, n } => {
            let field = bytes_at(body, at, usize::from(n))?;
            let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            field[len..].iter().all(|&b| b == 0).then_some(())?;
            push_ascii(out, &field[..len])?;
        }
        Field::QuotedUtf16 { at } => {
            let units = utf16_units(body.get(usize::from(at)..)?)?;
            out.push('"');
            out.push_str(&String::from_utf16(&units).ok()?);
            out.push('"');
        }
        Field::U32List { at } => {
            let list = body.get(usize::from(at)..)?;
            if list.is_empty() || !list.len().is_multiple_of(4) {
                return None;
            }
            for (i, value) in list.chunks_exact(4).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_number(out, le(value, 0, 4)?, Radix::Hex);
            }
        }
        Field::Eisa { at, zero_as_0 } => match le(body, at, 4)? {
            0 if zero_as_0 => out.push('0'),
            id => push_eisa(out, id),
        },
        Field::AcpiHid { at } => match le(body, at, 4)? {
            id if id & 0xffff == u64::from(PNP) => {
                let _ = write!(out, "PNP{:04X}", id >> 16);
            }
            id => push_number(out, id, Radix::HexWide(8)),
        },
        Field::AcpiExStrings { at } => {
            let [hid, uid, cid] = acpi_ex_strings(body.get(usize::from(at)..)?)?;
            for (i, s) in [hid, cid, uid].into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_ascii(out, s)?;
            }
        }
        Field::SasTopology { at } => push_sas_topology(out, le(body, at, 2)?),
        Field::IscsiLogin { at } => {
            let options = le(body, at, 2)?;
            let digest = |bit: u64| if options & bit != 0 { "CRC32C" } else { "None" };
            let auth = match options {
                o if o & ISCSI_AUTH_NONE != 0 => "None",
                o if o & ISCSI_CHAP_UNI != 0 => "CHAP_UNI",
                _ => "CHAP_BI",
            };
            let _ = write!(out, "{},{},{auth}", digest(ISCSI_HEADER_CRC32C), digest(ISCSI_DATA_CRC32C));
        }
        Field::HdSignature => match *body.get(37)? {
            1 => {
                out.push_str("MBR,");
                push_number(out, le(body, 20, 4)?, Radix::HexWide(8));
            }
            2 => {
                out.push_str("GPT,");
                push_guid(out, bytes_at(body, 20, 16)?);
            }
            other => {
                let _ = write!(out, "{other},0");
            }
        },
        Field::DnsServers => {
            let (&family, addresses) = body.split_first()?;
            if family > 1 || addresses.is_empty() || !addresses.len().is_multiple_of(16) {
                return None;
            }
            for (i, address) in addresses.chunks_exact(16).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_ip(out, if family == 1 { address } else { &address[..4] });
            }
        }
    }
    Some(true)
}

/// iSCSI login option bits: CRC32C header and data digests, authentication None (bits 11:10 =
/// 10b), one-way CHAP (bit 12). EDK2's text conversion uses these; its header's
/// `ISCSI_LOGIN_OPTION_AUTHMETHOD_NON` and `_CHAP_UNI` macros are one bit higher.
const ISCSI_HEADER_CRC32C: u64 = 0x0002;
const ISCSI_DATA_CRC32C: u64 = 0x0008;
const ISCSI_AUTH_NONE: u64 = 0x0800;
const ISCSI_CHAP_UNI: u64 = 0x1000;

/// The next argument; a missing one reads as empty (optional fields accept that, others refuse).
/// Strings take `args.next()` instead: a missing string means the text was cut short.
fn arg<'a>(args: &mut dyn Iterator<Item = &'a str>) -> &'a str {
    args.next().unwrap_or("")
}

/// Reads one field's arguments into `body` at the field's place.
fn parse_field(field: &Field, args: &mut dyn Iterator<Item = &str>, body: &mut Vec<u8>) -> Option<()> {
    match *field {
        Field::Int { at, size, radix, blank, names } => {
            let text = arg(args).trim();
            let value = match (text, blank) {
                ("", Blank::Refused) => return None,
                ("", Blank::Zero) => 0,
                ("", Blank::Ones) => u64::MAX >> (64 - 8 * u32::from(size)),
                _ => match names.iter().find(|(_, name)| *name == text) {
                    Some((value, _)) => u64::from(*value),
                    None if matches!(radix, Radix::Bare) => hex_number(text)?,
                    None => number(text)?,
                },
            };
            put_int(body, at, size, value)?;
        }
        Field::Fixed { at, bytes } => put(body, at, bytes),
        Field::Guid { at } => put(body, at, &guid_from_text(arg(args))?),
        Field::VendorData { at } => put(body, at, &hex_bytes(arg(args).trim())?),
        Field::BigEndian64 { at } => put(body, at, &number(arg(args))?.to_be_bytes()),
        Field::Bytes { at, n } => put(body, at, &hex_bytes(arg(args).trim()).filter(|b| b.len() == usize::from(n))?),
        Field::Eui64 { at } => {
            let mut eui = [0u8; 8];
            let mut parts = arg(args).trim().split('-');
            for byte in eui.iter_mut().rev() {
                *byte = parts.next().filter(|p| p.len() <= 2).and_then(|p| digits(p, 16)).and_then(|v| u8::try_from(v).ok())?;
            }
            parts.next().is_none().then_some(())?;
            put(body, at, &eui);
        }
        Field::Ip { at, v6, optional } => {
            let text = arg(args).trim();
            match (text, v6) {
                ("", _) if optional => put(body, at, &[0; 16][..if v6 { 16 } else { 4 }]),
                (_, false) => put(body, at, &ipv4_from_text(text)?),
                (_, true) => put(body, at, &ipv6_from_text(text)?),
            }
        }
        Field::Mac => {
            let address = hex_bytes(arg(args).trim())?;
            let if_type = u8::try_from(number(arg(args))?).ok()?;
            (address.len() == mac_len(if_type)).then_some(())?;
            put(body, 0, &address);
            put(body, 32, &[if_type]);
        }
        Field::CString { at, extra, nonempty } => {
            let text = ascii(args.next()?)?;
            if nonempty && text.is_empty() {
                return None;
            }
            let mut bytes = text.to_vec();
            bytes.resize(text.len() + 1 + usize::from(extra), 0);
            put(body, at, &bytes);
        }
        Field::Ascii { at } => put(body, at, ascii(args.next()?)?),
        Field::PaddedAscii { at, n } => {
            let mut bytes = ascii(args.next()?).filter(|t| t.len() <= usize::from(n))?.to_vec();
            bytes.resize(usize::from(n), 0);
            put(body, at, &bytes);
        }
        Field::QuotedUtf16 { at } => {
            let text = args.next()?;
            let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
            let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
            put(body, at, &bytes);
        }
        Field::U32List { at } => {
            let mut list = Vec::new();
            for text in args {
                list.extend_from_slice(&u32::try_from(number(text)?).ok()?.to_le_bytes());
            }
            (!list.is_empty()).then_some(())?;
            put(body, at, &list);
        }
        Field::Eisa { at, zero_as_0 } => {
            let text = arg(args).trim();
            let id = if zero_as_0 && text == "0" { 0 } else { eisa_from_text(text)? };
            put_int(body, at, 4, id)?;
        }
        Field::AcpiHid { at } => {
            let text = arg(args).trim();
            put_int(body, at, 4, eisa_from_text(text).or_else(|| number(text))?)?;
        }
        Field::AcpiExStrings { at } => {
            let (hid, cid, uid) = (ascii(args.next()?)?, ascii(args.next()?)?, ascii(args.next()?)?);
            let mut bytes = Vec::with_capacity(hid.len() + uid.len() + cid.len() + 3);
            for s in [hid, uid, cid] {
                bytes.extend_from_slice(s);
                bytes.push(0);
            }
            put(body, at, &bytes);
        }
        Field::SasTopology { at } => {
            let topology = sas_topology_from_text(arg(args), arg(args), arg(args), arg(args))?;
            put_int(body, at, 2, topology)?;
        }
        Field::IscsiLogin { at } => {
            let digest = |text: &str, bit: u64| match text.trim() {
                "CRC32C" => Some(bit),
                "None" => Some(0),
                _ => None,
            };
            let header = digest(arg(args), ISCSI_HEADER_CRC32C)?;
            let data = digest(arg(args), ISCSI_DATA_CRC32C)?;
            let auth = match arg(args).trim() {
                "None" => ISCSI_AUTH_NONE,
                "CHAP_UNI" => ISCSI_CHAP_UNI,
                "CHAP_BI" => 0,
                _ => return None,
            };
            put_int(body, at, 2, header | data | auth)?;
        }
        Field::HdSignature => {
            let (kind, signature) = (arg(args).trim(), arg(args));
            // Signature at 20, then the MBR type and the signature type.
            match kind {
                "MBR" => {
                    put_int(body, 20, 4, number(signature)?)?;
                    put(body, 36, &[1, 1]);
                }
                "GPT" => {
                    put(body, 20, &guid_from_text(signature)?);
                    put(body, 36, &[2, 2]);
                }
                other => {
                    let signature_type = u8::try_from(number(other)?).ok()?;
                    (number(signature)? == 0).then_some(())?;
                    put(body, 36, &[0, signature_type]);
                }
            }
        }
        Field::DnsServers => {
            let mut addresses = args.peekable();
            let v6 = addresses.peek()?.contains(':');
            put(body, 0, &[u8::from(v6)]);
            for text in addresses {
                let mut slot = [0u8; 16];
                if v6 {
                    slot = ipv6_from_text(text)?;
                } else {
                    slot[..4].copy_from_slice(&ipv4_from_text(text)?);
                }
                body.extend_from_slice(&slot);
            }
        }
    }
    Some(())
}

/// SAS and SasEx device topology from its four arguments: bits 0-3 the kind (0 none, 1 one
/// device, 2 two with the bay in bits 8-15), bit 4 SATA, bit 5 external, bits 6-7 expanded.
fn sas_topology_from_text(kind: &str, location: &str, connect: &str, bay: &str) -> Option<u64> {
    let flag = |text: &str, set: &str, clear: &str, max: u64| match text.trim() {
        t if t == set => Some(1),
        t if t == clear => Some(0),
        t => number(t).filter(|&v| v <= max),
    };
    match kind.trim() {
        kind @ ("SAS" | "SATA") => {
            // Bay 0: a single device; bays 1 to 256 are stored minus one in bits 8-15.
            let bay = match number(bay)? {
                0 => 0x1,
                bay @ 1..=256 => 0x2 | (bay - 1) << 8,
                _ => return None,
            };
            let sata = if kind == "SATA" { 0x10 } else { 0 };
            Some(bay | sata | flag(location, "External", "Internal", 1)? << 5 | flag(connect, "Expanded", "Direct", 3)? << 6)
        }
        // The value whole; the three arguments after it are placeholders (`0`).
        kind => {
            [location, connect, bay].iter().all(|t| number(t).is_some()).then_some(())?;
            match kind {
                "NoTopology" => Some(0),
                value => number(value).filter(|&v| v <= 0xffff),
            }
        }
    }
}

fn push_sas_topology(out: &mut String, info: u64) {
    let kind = info & 0x0f;
    // The named form only when it carries the value whole (EDK2 prints some others lossily).
    let named = info & 0x80 == 0 && (kind == 2 || (kind == 1 && info >> 8 == 0));
    if info == 0 {
        out.push_str("NoTopology,0,0,0");
    } else if named {
        let pick = |bit: u64, set: &'static str, clear: &'static str| if info & bit != 0 { set } else { clear };
        let _ = write!(out, "{},{},{},", pick(0x10, "SATA", "SAS"), pick(0x20, "External", "Internal"), pick(0x40, "Expanded", "Direct"));
        match kind {
            1 => out.push('0'),
            _ => push_number(out, (info >> 8) + 1, Radix::Hex),
        }
    } else {
        push_number(out, info, Radix::Hex);
        out.push_str(",0,0,0");
    }
}

/// Address bytes of a MAC node: 6 for 802.3 (interface types 0 and 1), else the whole field.
fn mac_len(if_type: u8) -> usize {
    if if_type <= 1 {
        6
    } else {
        32
    }
}

/// AcpiEx's HIDSTR, UIDSTR and CIDSTR: three NUL-terminated strings filling the tail exactly.
fn acpi_ex_strings(tail: &[u8]) -> Option<[&[u8]; 3]> {
    let mut rest = tail;
    let mut strings: [&[u8]; 3] = [&[]; 3];
    for s in strings.iter_mut() {
        let len = rest.iter().position(|&b| b == 0)?;
        *s = &rest[..len];
        rest = &rest[len + 1..];
    }
    rest.is_empty().then_some(strings)
}

fn utf16_units(bytes: &[u8]) -> Option<Vec<u16>> {
    bytes.len().is_multiple_of(2).then(|| bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
}

fn bytes_at(body: &[u8], at: u8, n: usize) -> Option<&[u8]> {
    body.get(usize::from(at)..usize::from(at) + n)
}

/// A little-endian integer of `size` bytes at `at`.
fn le(body: &[u8], at: u8, size: u8) -> Option<u64> {
    Some(bytes_at(body, at, usize::from(size))?.iter().rev().fold(0, |v, &b| v << 8 | u64::from(b)))
}

/// Writes `bytes` at `at`, growing the body with zeros (reserved fields stay zero).
fn put(body: &mut Vec<u8>, at: u8, bytes: &[u8]) {
    let (at, end) = (usize::from(at), usize::from(at) + bytes.len());
    if body.len() < end {
        body.resize(end, 0);
    }
    body[at..end].copy_from_slice(bytes);
}

/// Writes `value` as `size` little-endian bytes; `None` when it does not fit.
fn put_int(body: &mut Vec<u8>, at: u8, size: u8, value: u64) -> Option<()> {
    if size < 8 && value >> (8 * u32::from(size)) != 0 {
        return None;
    }
    put(body, at, &value.to_le_bytes()[..usize::from(size)]);
    Some(())
}

fn push_number(out: &mut String, value: u64, radix: Radix) {
    let _ = match radix {
        Radix::Hex => write!(out, "0x{value:X}"),
        Radix::HexWide(width) => write!(out, "0x{value:0width$X}", width = usize::from(width)),
        Radix::Dec => write!(out, "{value}"),
        Radix::Bare => write!(out, "{value:016X}"),
    };
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`: the first three fields little-endian.
fn push_guid(out: &mut String, g: &[u8]) {
    let Ok(g) = <&[u8; 16]>::try_from(g) else { return };
    for (i, part) in [&[g[3], g[2], g[1], g[0]][..], &[g[5], g[4]], &[g[7], g[6]], &g[8..10], &g[10..]].into_iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        push_hex(out, part);
    }
}

/// `192.168.0.1`, or eight groups of four hex digits for IPv6 (as EDK2 prints them).
fn push_ip(out: &mut String, address: &[u8]) {
    if let [a, b, c, d] = address {
        let _ = write!(out, "{a}.{b}.{c}.{d}");
        return;
    }
    for (i, group) in address.chunks_exact(2).enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_hex(out, group);
    }
}

/// Printable ASCII as text; `None` for a NUL or a byte above 0x7F.
fn push_ascii(out: &mut String, bytes: &[u8]) -> Option<()> {
    bytes.iter().all(|&b| (1..=0x7f).contains(&b)).then(|| out.extend(bytes.iter().map(|&b| char::from(b))))
}

/// The bytes of an ASCII argument (no NUL).
fn ascii(text: &str) -> Option<&[u8]> {
    text.bytes().all(|b| (1..=0x7f).contains(&b)).then_some(text.as_bytes())
}

/// A compressed EISA ID: three 5-bit letters (`@` is 0) and a 16-bit hex number.
fn push_eisa(out: &mut String, id: u64) {
    for shift in [10, 5, 0] {
        out.push(char::from(b'@' + ((id >> shift) & 0x1f) as u8));
    }
    let _ = write!(out, "{:04X}", (id >> 16) & 0xffff);
}

fn eisa_from_text(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.len() != 7 || !t.is_ascii() {
        return None;
    }
    let (letters, id) = t.split_at(3);
    let mut value = digits(id, 16)? << 16;
    for (c, shift) in letters.bytes().zip([10, 5, 0]) {
        if !(b'@'..=b'_').contains(&c) {
            return None;
        }
        value |= u64::from(c - b'@') << shift;
    }
    Some(value)
}

/// Digits of `radix` only (no sign, no spaces), at least one.
fn digits(text: &str, radix: u32) -> Option<u64> {
    (!text.is_empty() && text.chars().all(|c| c.is_digit(radix))).then(|| u64::from_str_radix(text, radix).ok()).flatten()
}

/// A number as the text forms write them: decimal, or hex after `0x`.
fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => digits(hex, 16),
        None => digits(t, 10),
    }
}

/// Hex digits with or without `0x` (I1394's GUID).
fn hex_number(text: &str) -> Option<u64> {
    let t = text.trim();
    digits(t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t), 16)
}

fn guid_from_text(text: &str) -> Option<[u8; 16]> {
    let mut parts = text.trim().split('-');
    let mut next = |len: usize| parts.next().filter(|p| p.len() == len);
    let (a, b, c) = (digits(next(8)?, 16)?, digits(next(4)?, 16)?, digits(next(4)?, 16)?);
    let (d, e) = (hex_bytes(next(4)?)?, hex_bytes(next(12)?)?);
    if parts.next().is_some() {
        return None;
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&(a as u32).to_le_bytes());
    out[4..6].copy_from_slice(&(b as u16).to_le_bytes());
    out[6..8].copy_from_slice(&(c as u16).to_le_bytes());
    out[8..10].copy_from_slice(&d);
    out[10..].copy_from_slice(&e);
    Some(out)
}

fn ipv4_from_text(text: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = text.trim().split('.');
    for octet in out.iter_mut() {
        *octet = parts.next().filter(|p| p.len() <= 3).and_then(|p| digits(p, 10)).and_then(|v| u8::try_from(v).ok())?;
    }
    parts.next().is_none().then_some(out)
}

/// Eight groups of up to four hex digits, one run of zero groups written `::` at most.
fn ipv6_from_text(text: &str) -> Option<[u8; 16]> {
    let groups = |s: &str| -> Option<Vec<u16>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        s.split(':').map(|g| (g.len() <= 4).then(|| digits(g, 16)).flatten().map(|v| v as u16)).collect()
    };
    let text = text.trim();
    // "::" found by bytes: a string pattern would bring in the library's substring search.
    let gap = text.as_bytes().windows(2).position(|w| w == b"::").map(|at| (&text[..at], &text[at + 2..]));
    let words = match gap {
        None => groups(text)?,
        Some((head, tail)) => {
            let (mut words, tail) = (groups(head)?, groups(tail)?);
            if words.len() + tail.len() > 7 {
                return None;
            }
            words.resize(8 - tail.len(), 0);
            words.extend(tail);
            words
        }
    };
    let mut out = [0u8; 16];
    if words.len() != 8 {
        return None;
    }
    for (bytes, word) in out.chunks_exact_mut(2).zip(&words) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::efi::fat::{Partition, Signature};
    use alloc::{format, vec};
    use r_efi::efi::Guid;

    const G: Guid = Guid::from_fields(0x5568e427, 0x68fc, 0x4f3d, 0xac, 0x74, &[0xca, 0x55, 0x52, 0x31, 0xcc, 0x68]);
    const GS: &str = "5568E427-68FC-4F3D-AC74-CA555231CC68";

    /// A node built by hand from its type, subtype and body fields in layout order.
    fn n(ty: u8, sub: u8, fields: &[&[u8]]) -> Vec<u8> {
        node(ty, sub, &fields.concat())
    }

    fn zeros(len: usize) -> Vec<u8> {
        vec![0; len]
    }

    /// `text` padded with NULs to `len` bytes.
    fn padded(text: &[u8], len: usize) -> Vec<u8> {
        let mut v = text.to_vec();
        v.resize(len, 0);
        v
    }

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    /// Every form: the node as UEFI 2.10 section 10.3 lays it out, and its text as section 10.6
    /// (and EDK2's DevicePathToText, display only FALSE) prints it.
    fn cases() -> Vec<(Vec<u8>, String)> {
        let g = *G.as_bytes();
        let (h, a, m, md, b) = (TYPE_HARDWARE, TYPE_ACPI, TYPE_MESSAGING, TYPE_MEDIA, TYPE_BBS);
        let mut cases: Vec<(Vec<u8>, String)> = vec![
            // Hardware.
            (n(h, 1, &[&[0x02, 0x1f]]), "Pci(0x1F,0x2)".into()),
            (n(h, 2, &[&[3]]), "PcCard(0x3)".into()),
            (n(h, 3, &[&11u32.to_le_bytes(), &0x8000_0000u64.to_le_bytes(), &0x8000_ffffu64.to_le_bytes()]), "MemoryMapped(0xB,0x80000000,0x8000FFFF)".into()),
            (n(h, 4, &[&g, &[0xde, 0xad]]), format!("VenHw({GS},DEAD)")),
            (n(h, 4, &[&g]), format!("VenHw({GS})")),
            (n(h, 5, &[&7u32.to_le_bytes()]), "Ctrl(0x7)".into()),
            (n(h, 6, &[&[1], &0xfed1_0000u64.to_le_bytes()]), "BMC(0x1,0xFED10000)".into()),
            // ACPI.
            (n(a, 1, &[&0x0a03_41d0u32.to_le_bytes(), &0u32.to_le_bytes()]), "PciRoot(0x0)".into()),
            (n(a, 1, &[&0x0a08_41d0u32.to_le_bytes(), &1u32.to_le_bytes()]), "PcieRoot(0x1)".into()),
            (n(a, 1, &[&0x0604_41d0u32.to_le_bytes(), &0u32.to_le_bytes()]), "Floppy(0x0)".into()),
            (n(a, 1, &[&0x0301_41d0u32.to_le_bytes(), &0u32.to_le_bytes()]), "Keyboard(0x0)".into()),
            (n(a, 1, &[&0x0501_41d0u32.to_le_bytes(), &2u32.to_le_bytes()]), "Serial(0x2)".into()),
            (n(a, 1, &[&0x0401_41d0u32.to_le_bytes(), &0u32.to_le_bytes()]), "ParallelPort(0x0)".into()),
            (n(a, 1, &[&0x0303_41d0u32.to_le_bytes(), &0u32.to_le_bytes()]), "Acpi(PNP0303,0x0)".into()),
            (n(a, 1, &[&0x1234_5678u32.to_le_bytes(), &2u32.to_le_bytes()]), "Acpi(0x12345678,0x2)".into()),
            (
                n(a, 2, &[&0x0a08_41d0u32.to_le_bytes(), &5u32.to_le_bytes(), &0x0a03_41d0u32.to_le_bytes(), b"HIDS\0UIDS\0CIDS\0"]),
                "AcpiEx(PNP0A08,PNP0A03,0x5,HIDS,CIDS,UIDS)".into(),
            ),
            (n(a, 2, &[&0x0a08_41d0u32.to_le_bytes(), &0u32.to_le_bytes(), &0u32.to_le_bytes(), b"\0\0\0"]), "AcpiEx(PNP0A08,@@@0000,0x0,,,)".into()),
            (n(a, 2, &[&0x0a08_41d0u32.to_le_bytes(), &0u32.to_le_bytes(), &0u32.to_le_bytes(), b"\0UID00\0\0"]), "AcpiExp(PNP0A08,0,UID00)".into()),
            (n(a, 2, &[&0x0a08_41d0u32.to_le_bytes(), &0u32.to_le_bytes(), &0x0a03_41d0u32.to_le_bytes(), b"\0UID00\0\0"]), "AcpiExp(PNP0A08,PNP0A03,UID00)".into()),
            (n(a, 3, &[&0x8001_0100u32.to_le_bytes(), &0x8001_0200u32.to_le_bytes()]), "AcpiAdr(0x80010100,0x80010200)".into()),
            // Messaging.
            (n(m, 1, &[&[0, 0], &1u16.to_le_bytes()]), "Ata(Primary,Master,0x1)".into()),
            (n(m, 1, &[&[1, 1], &0u16.to_le_bytes()]), "Ata(Secondary,Slave,0x0)".into()),
            (n(m, 2, &[&2u16.to_le_bytes(), &3u16.to_le_bytes()]), "Scsi(0x2,0x3)".into()),
            (n(m, 3, &[&zeros(4), &0x1122_3344_5566_7788u64.to_le_bytes(), &1u64.to_le_bytes()]), "Fibre(0x1122334455667788,0x1)".into()),
            (n(m, 4, &[&zeros(4), &0x0011_2233_4455_6677u64.to_le_bytes()]), "I1394(0011223344556677)".into()),
            (n(m, 5, &[&[1, 0]]), "USB(0x1,0x0)".into()),
            (n(m, 6, &[&0x10u32.to_le_bytes()]), "I2O(0x10)".into()),
            (n(m, 9, &[&1u32.to_le_bytes(), &g, &2u64.to_le_bytes(), &3u64.to_le_bytes(), &4u64.to_le_bytes()]), format!("Infiniband(0x1,{GS},0x2,0x3,0x4)")),
            (n(m, 10, &[&PC_ANSI]), "VenPcAnsi()".into()),
            (n(m, 10, &[&VT_100]), "VenVt100()".into()),
            (n(m, 10, &[&VT_100_PLUS]), "VenVt100Plus()".into()),
            (n(m, 10, &[&VT_UTF8]), "VenUtf8()".into()),
            (n(m, 10, &[&DEBUG_PORT]), "DebugPort()".into()),
            (n(m, 10, &[&UART_FLOW_CONTROL, &0u32.to_le_bytes()]), "UartFlowCtrl(None)".into()),
            (n(m, 10, &[&UART_FLOW_CONTROL, &1u32.to_le_bytes()]), "UartFlowCtrl(Hardware)".into()),
            (n(m, 10, &[&UART_FLOW_CONTROL, &2u32.to_le_bytes()]), "UartFlowCtrl(XonXoff)".into()),
            (
                n(m, 10, &[&SAS, &zeros(4), &0x5000_c500_1234_5678u64.to_le_bytes(), &0u64.to_le_bytes(), &0x0011u16.to_le_bytes(), &0u16.to_le_bytes()]),
                "SAS(0x5000C50012345678,0x0,0x0,SATA,Internal,Direct,0,0x0)".into(),
            ),
            (
                n(m, 10, &[&SAS, &7u32.to_le_bytes(), &0x5000_c500_1234_5678u64.to_le_bytes(), &1u64.to_le_bytes(), &0x0262u16.to_le_bytes(), &2u16.to_le_bytes()]),
                "SAS(0x5000C50012345678,0x1,0x2,SAS,External,Expanded,0x3,0x7)".into(),
            ),
            (n(m, 10, &[&SAS, &zeros(4), &1u64.to_le_bytes(), &0u64.to_le_bytes(), &0u16.to_le_bytes(), &0u16.to_le_bytes()]), "SAS(0x1,0x0,0x0,NoTopology,0,0,0,0x0)".into()),
            (n(m, 10, &[&g, &[1, 2, 3]]), format!("VenMsg({GS},010203)")),
            (n(m, 11, &[&padded(&[0x52, 0x54, 0, 0x12, 0x34, 0x56], 32), &[1]]), "MAC(525400123456,0x1)".into()),
            (n(m, 11, &[&padded(&[0xaa; 20], 32), &[0x20]]), format!("MAC({}000000000000000000000000,0x20)", "AA".repeat(20))),
            (
                n(m, 12, &[&[192, 168, 0, 2], &[192, 168, 0, 1], &zeros(4), &6u16.to_le_bytes(), &[1], &[192, 168, 0, 254], &[255, 255, 255, 0]]),
                "IPv4(192.168.0.1,TCP,Static,192.168.0.2,192.168.0.254,255.255.255.0)".into(),
            ),
            (n(m, 12, &[&zeros(4), &[10, 0, 0, 1], &zeros(4), &17u16.to_le_bytes(), &[0], &zeros(8)]), "IPv4(10.0.0.1,UDP,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)".into()),
            (
                n(
                    m,
                    13,
                    &[
                        &ipv6_from_text("fe80::1").unwrap(),
                        &ipv6_from_text("2001:db8::1").unwrap(),
                        &zeros(4),
                        &6u16.to_le_bytes(),
                        &[0, 64],
                        &ipv6_from_text("fe80::fffe").unwrap(),
                    ],
                ),
                "IPv6(2001:0DB8:0000:0000:0000:0000:0000:0001,TCP,Static,FE80:0000:0000:0000:0000:0000:0000:0001,0x40,FE80:0000:0000:0000:0000:0000:0000:FFFE)".into(),
            ),
            (
                n(m, 13, &[&zeros(16), &ipv6_from_text("::1").unwrap(), &zeros(4), &0x11u16.to_le_bytes(), &[2, 0], &zeros(16)]),
                "IPv6(0000:0000:0000:0000:0000:0000:0000:0001,UDP,StatefulAutoConfigure,0000:0000:0000:0000:0000:0000:0000:0000,0x0,0000:0000:0000:0000:0000:0000:0000:0000)"
                    .into(),
            ),
            (n(m, 14, &[&zeros(4), &115_200u64.to_le_bytes(), &[8, 1, 1]]), "Uart(115200,8,N,1)".into()),
            (n(m, 14, &[&zeros(4), &0u64.to_le_bytes(), &[0, 0, 0]]), "Uart(DEFAULT,DEFAULT,D,D)".into()),
            (n(m, 14, &[&zeros(4), &9600u64.to_le_bytes(), &[7, 2, 2]]), "Uart(9600,7,E,1.5)".into()),
            (n(m, 14, &[&zeros(4), &9600u64.to_le_bytes(), &[5, 3, 3]]), "Uart(9600,5,O,2)".into()),
            (n(m, 14, &[&zeros(4), &9600u64.to_le_bytes(), &[6, 4, 0]]), "Uart(9600,6,M,D)".into()),
            (n(m, 14, &[&zeros(4), &9600u64.to_le_bytes(), &[6, 5, 0]]), "Uart(9600,6,S,D)".into()),
            (n(m, 15, &[&0xffffu16.to_le_bytes(), &0xffffu16.to_le_bytes(), &[0xff, 0xff, 0xff]]), "UsbClass(0xFFFF,0xFFFF,0xFF,0xFF,0xFF)".into()),
            (n(m, 15, &[&1u16.to_le_bytes(), &2u16.to_le_bytes(), &[0xfe, 4, 5]]), "UsbClass(0x1,0x2,0xFE,0x4,0x5)".into()),
            (n(m, 16, &[&0u16.to_le_bytes(), &0x0781u16.to_le_bytes(), &0x5567u16.to_le_bytes(), &utf16("4C53")]), "UsbWwid(0x781,0x5567,0x0,\"4C53\")".into()),
            (n(m, 17, &[&[1]]), "Unit(0x1)".into()),
            (n(m, 18, &[&0u16.to_le_bytes(), &0xffffu16.to_le_bytes(), &0u16.to_le_bytes()]), "Sata(0x0,0xFFFF,0x0)".into()),
            (
                n(m, 19, &[&0u16.to_le_bytes(), &0x0802u16.to_le_bytes(), &[0, 0, 0, 0, 0, 0, 0, 1], &1u16.to_le_bytes(), b"iqn.2004-05.com.example:disk\0"]),
                "iSCSI(iqn.2004-05.com.example:disk,0x1,0x0000000000000001,CRC32C,None,None,TCP)".into(),
            ),
            (
                n(m, 19, &[&1u16.to_le_bytes(), &0x1008u16.to_le_bytes(), &zeros(8), &0u16.to_le_bytes(), b"t\0"]),
                "iSCSI(t,0x0,0x0000000000000000,None,CRC32C,CHAP_UNI,reserved)".into(),
            ),
            (n(m, 19, &[&0u16.to_le_bytes(), &0u16.to_le_bytes(), &zeros(8), &0u16.to_le_bytes(), b"t\0"]), "iSCSI(t,0x0,0x0000000000000000,None,None,CHAP_BI,TCP)".into()),
            (n(m, 20, &[&100u16.to_le_bytes()]), "Vlan(100)".into()),
            (n(m, 21, &[&zeros(4), &[1, 2, 3, 4, 5, 6, 7, 8], &[0, 0, 0, 0, 0, 0, 0, 1]]), "FibreEx(0x0102030405060708,0x0000000000000001)".into()),
            (
                n(m, 22, &[&[0x50, 0, 0xc5, 0, 0x12, 0x34, 0x56, 0x78], &zeros(8), &0u16.to_le_bytes(), &1u16.to_le_bytes()]),
                "SasEx(0x5000C50012345678,0x0000000000000000,0x1,NoTopology,0,0,0)".into(),
            ),
            (n(m, 22, &[&zeros(8), &zeros(8), &0x0312u16.to_le_bytes(), &0u16.to_le_bytes()]), "SasEx(0x0000000000000000,0x0000000000000000,0x0,SATA,Internal,Direct,0x4)".into()),
            (n(m, 23, &[&1u32.to_le_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8]]), "NVMe(0x1,08-07-06-05-04-03-02-01)".into()),
            (n(m, 24, &[b"http://example.com/boot.efi"]), "Uri(http://example.com/boot.efi)".into()),
            (n(m, 25, &[&[0, 1]]), "UFS(0x0,0x1)".into()),
            (n(m, 26, &[&[0]]), "SD(0x0)".into()),
            (n(m, 27, &[&[0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13]]), "Bluetooth(001A7DDA7113)".into()),
            (n(m, 28, &[&padded(b"HomeNet", 32)]), "Wi-Fi(HomeNet)".into()),
            (n(m, 29, &[&[1]]), "eMMC(0x1)".into()),
            (n(m, 30, &[&[0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13], &[1]]), "BluetoothLE(001A7DDA7113,0x01)".into()),
            (n(m, 31, &[&[0], &padded(&[8, 8, 8, 8], 16), &padded(&[1, 1, 1, 1], 16)]), "Dns(8.8.8.8,1.1.1.1)".into()),
            (n(m, 31, &[&[1], &ipv6_from_text("2001:4860:4860::8888").unwrap()]), "Dns(2001:4860:4860:0000:0000:0000:0000:8888)".into()),
            // Media.
            (n(md, 1, &[&1u32.to_le_bytes(), &0x800u64.to_le_bytes(), &0x1_0000u64.to_le_bytes(), &g, &[2, 2]]), format!("HD(1,GPT,{GS},0x800,0x10000)")),
            (
                n(md, 1, &[&2u32.to_le_bytes(), &0x800u64.to_le_bytes(), &0x1000u64.to_le_bytes(), &padded(&0x1234u32.to_le_bytes(), 16), &[1, 1]]),
                "HD(2,MBR,0x00001234,0x800,0x1000)".into(),
            ),
            (n(md, 1, &[&0u32.to_le_bytes(), &0u64.to_le_bytes(), &0u64.to_le_bytes(), &zeros(16), &[0, 0]]), "HD(0,0,0,0x0,0x0)".into()),
            (n(md, 2, &[&0u32.to_le_bytes(), &0x10u64.to_le_bytes(), &0x100u64.to_le_bytes()]), "CDROM(0x0,0x10,0x100)".into()),
            (n(md, 3, &[&g]), format!("VenMedia({GS})")),
            (n(md, 3, &[&g, &[0xff]]), format!("VenMedia({GS},FF)")),
            (n(md, 4, &[&utf16("\\EFI\\BOOT\\BOOTAA64.EFI\0")]), "\\EFI\\BOOT\\BOOTAA64.EFI".into()),
            (n(md, 5, &[&g]), format!("Media({GS})")),
            (n(md, 6, &[&g]), format!("FvFile({GS})")),
            (n(md, 7, &[&g]), format!("Fv({GS})")),
            (n(md, 8, &[&zeros(4), &0x200u64.to_le_bytes(), &0x3ffu64.to_le_bytes()]), "Offset(0x200,0x3FF)".into()),
            (n(md, 9, &[&0x1000u64.to_le_bytes(), &0x1fffu64.to_le_bytes(), &VIRTUAL_DISK, &0u16.to_le_bytes()]), "VirtualDisk(0x1000,0x1FFF,0)".into()),
            (n(md, 9, &[&0x1000u64.to_le_bytes(), &0x1fffu64.to_le_bytes(), &VIRTUAL_CD, &1u16.to_le_bytes()]), "VirtualCD(0x1000,0x1FFF,1)".into()),
            (n(md, 9, &[&0x1000u64.to_le_bytes(), &0x1fffu64.to_le_bytes(), &PERSISTENT_VIRTUAL_DISK, &2u16.to_le_bytes()]), "PersistentVirtualDisk(0x1000,0x1FFF,2)".into()),
            (n(md, 9, &[&0x1000u64.to_le_bytes(), &0x1fffu64.to_le_bytes(), &PERSISTENT_VIRTUAL_CD, &3u16.to_le_bytes()]), "PersistentVirtualCD(0x1000,0x1FFF,3)".into()),
            (n(md, 9, &[&0x1000u64.to_le_bytes(), &0x1fffu64.to_le_bytes(), &g, &12u16.to_le_bytes()]), format!("RamDisk(0x1000,0x1FFF,12,{GS})")),
            // BIOS Boot Specification.
            (n(b, 1, &[&2u16.to_le_bytes(), &0u16.to_le_bytes(), b"Hard Disk\0"]), "BBS(HD,Hard Disk,0x0)".into()),
            (n(b, 1, &[&0x80u16.to_le_bytes(), &1u16.to_le_bytes(), b"\0"]), "BBS(0x80,,0x1)".into()),
            // No named form: the generic one.
            (n(m, 0x22, &[&[3], &[0x11; 16], b"nqn\0"]), format!("Path(3,34,03{}6E716E00)", "11".repeat(16))),
            (n(0x42, 7, &[]), "Path(66,7)".into()),
        ];
        let usb_classes = [
            (0x01, "UsbAudio"),
            (0x02, "UsbCDCControl"),
            (0x03, "UsbHID"),
            (0x06, "UsbImage"),
            (0x07, "UsbPrinter"),
            (0x08, "UsbMassStorage"),
            (0x09, "UsbHub"),
            (0x0a, "UsbCDCData"),
            (0x0b, "UsbSmartCard"),
            (0x0e, "UsbVideo"),
            (0xdc, "UsbDiagnostic"),
            (0xe0, "UsbWireless"),
        ];
        for (class, name) in usb_classes {
            cases.push((n(m, 15, &[&0x046du16.to_le_bytes(), &0xc077u16.to_le_bytes(), &[class, 1, 2]]), format!("{name}(0x46D,0xC077,0x1,0x2)")));
        }
        for (subclass, name) in [(1, "UsbDeviceFirmwareUpdate"), (2, "UsbIrdaBridge"), (3, "UsbTestAndMeasurement")] {
            cases.push((n(m, 15, &[&1u16.to_le_bytes(), &2u16.to_le_bytes(), &[0xfe, subclass, 3]]), format!("{name}(0x1,0x2,0x3)")));
        }
        let bbs_types = [(1, "Floppy"), (3, "CDROM"), (4, "PCMCIA"), (5, "USB"), (6, "Network")];
        for (ty, name) in bbs_types {
            cases.push((n(b, 1, &[&(ty as u16).to_le_bytes(), &0x10u16.to_le_bytes(), b"x\0"]), format!("BBS({name},x,0x10)")));
        }
        cases
    }

    #[test]
    fn device_path_every_form_prints_as_the_spec_and_parses_back() {
        let cases = cases();
        for (bytes, text) in &cases {
            assert_eq!(node_text(bytes), *text, "{bytes:02x?}");
            assert_eq!(node_from_text(text).as_ref(), Some(bytes), "{text}");
            // In a path too, between other nodes.
            let mut path = n(TYPE_HARDWARE, 1, &[&[0, 1]]);
            path.extend(bytes);
            path.extend(super::super::end());
            let path_text = path_text(&path);
            assert_eq!(path_text, format!("Pci(0x1,0x0)/{text}"));
            assert_eq!(path_from_text(&path_text), Some(path));
        }
        // Every named form has a case; no two forms share a name.
        for f in FORMS {
            assert!(cases.iter().any(|(_, text)| text.starts_with(&format!("{}(", f.name))), "no case for {}", f.name);
            assert_eq!(FORMS.iter().filter(|g| g.name == f.name).count(), 1, "{}", f.name);
        }
        assert_eq!(VIRTUAL_DISK, *super::super::VIRTUAL_DISK.as_bytes());
    }

    #[test]
    fn device_path_the_issue_examples() {
        let atapi = n(TYPE_MESSAGING, 1, &[&[0, 0], &1u16.to_le_bytes()]);
        assert_eq!(node_text(&atapi), "Ata(Primary,Master,0x1)");
        assert_eq!(node_from_text("Ata(Primary,Master,0x1)"), Some(atapi));
        let venmsg = n(TYPE_MESSAGING, 10, &[G.as_bytes(), &[0xab, 0xcd]]);
        assert_eq!(node_text(&venmsg), format!("VenMsg({GS},ABCD)"));
        assert_eq!(node_from_text(&format!("VenMsg({GS},abcd)")), Some(venmsg));
        let pc_ansi = n(TYPE_MESSAGING, 10, &[&PC_ANSI]);
        assert_eq!(node_text(&pc_ansi), "VenPcAnsi()");
        assert_eq!(node_from_text("VenPcAnsi()"), Some(pc_ansi.clone()));
        // The long form names the same node.
        assert_eq!(node_from_text("VenMsg(E0C14753-F9BE-11D2-9A0C-0090273FC14D)"), Some(pc_ansi));
    }

    #[test]
    fn device_path_text_parses_the_lenient_spellings() {
        let same = |a: &str, b: &str| {
            assert!(node_from_text(a).is_some(), "{a}");
            assert_eq!(node_from_text(a), node_from_text(b), "{a} vs {b}");
        };
        same("Pci(31,2)", "Pci(0x1F,0x2)");
        same("Pci( 0x1f , 2 )", "Pci(0x1F,0x2)");
        same("MemoryMapped(2,4096,0x1FFF)", "MemoryMapped(0x2,0x1000,0x1FFF)");
        same("Ata(0,1,1)", "Ata(Primary,Slave,0x1)");
        same("Ata(0x5,Master,1)", "Ata(0x5,Master,0x1)");
        same("Sata(0,,0)", "Sata(0x0,0xFFFF,0x0)");
        same("UsbClass(,,,,)", "UsbClass(0xFFFF,0xFFFF,0xFF,0xFF,0xFF)");
        same("UsbHID(,,,)", "UsbHID(0xFFFF,0xFFFF,0xFF,0xFF)");
        same("IPv4(10.0.0.1,UDP,DHCP,0.0.0.0)", "IPv4(10.0.0.1,UDP,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)");
        same("IPv4(10.0.0.1,0x11,DHCP,0.0.0.0)", "IPv4(10.0.0.1,UDP,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)");
        same("IPv6(2001:db8::1,TCP,Static,fe80::1,64,fe80::fffe)", "IPv6(2001:0DB8:0:0:0:0:0:1,TCP,Static,FE80:0:0:0:0:0:0:1,0x40,FE80:0:0:0:0:0:0:FFFE)");
        same("IPv6(::,TCP,Static,::)", "IPv6(0:0:0:0:0:0:0:0,TCP,Static,0:0:0:0:0:0:0:0,0,0:0:0:0:0:0:0:0)");
        same("Uart(115200,8,N,1)", "Uart(0x1C200,0x8,1,1)");
        same("UsbWwid(0x781,0x5567,0,4C53)", "UsbWwid(0x781,0x5567,0x0,\"4C53\")");
        same("I1394(0x11)", "I1394(0000000000000011)");
        same("iSCSI(t,0,0,None,None,CHAP_BI,)", "iSCSI(t,0x0,0x0000000000000000,None,None,CHAP_BI,TCP)");
        same("SAS(0x1,0,0,SATA,0,0,0,0)", "SAS(0x1,0x0,0x0,SATA,Internal,Direct,0,0x0)");
        same("SasEx(1,0,0,0x0,0,0,0)", "SasEx(0x0000000000000001,0,0,NoTopology,0,0,0)");
        same("BBS(2,Hard Disk,0)", "BBS(HD,Hard Disk,0x0)");
        same("HardwarePath(1,1F02)", "Path(1,1,1F02)");
        same("AcpiPath(1,D041030A00000000)", "PciRoot(0x0)");
        same("Msg(1,00000100)", "Ata(Primary,Master,0x1)");
        same("MediaPath(5,27E46855FC683D4FAC74CA555231CC68)", &format!("Media({GS})"));
        same("BbsPath(1,0200000000)", "BBS(HD,,0x0)");
        same("Path(3,11,)", "Path(3,11)");
        same("Path(0x3,0xB,ABcd)", "Path(3,11,ABCD)");
        same("Acpi(PNP0A03,0)", "PciRoot(0x0)");
        same("Acpi(0x0A0341D0,0)", "PciRoot(0x0)");
        same(&format!("RamDisk(0x1000,0x1FFF,0,{})", "77AB535A-45FC-624B-5560-F7B281D1F96E"), "VirtualDisk(0x1000,0x1FFF,0)");
        same(&format!("VenMsg({},00000000)", "37499A9D-542F-4C89-A026-35DA142094E4"), "UartFlowCtrl(None)");
        same(&format!("VenMedia({},)", GS.to_lowercase()), &format!("VenMedia({GS})"));
    }

    #[test]
    fn device_path_nodes_a_form_cannot_carry_print_generic() {
        // Too short, too long, reserved bytes set, values outside the form: the generic form.
        for (bytes, text) in [
            (n(TYPE_HARDWARE, 1, &[&[0x02]]), "Path(1,1,02)"),
            (n(TYPE_HARDWARE, 1, &[&[0x02, 0x1f, 0]]), "Path(1,1,021F00)"),
            (n(TYPE_MESSAGING, 3, &[&[1, 0, 0, 0], &zeros(16)]), "Path(3,3,0100000000000000000000000000000000000000)"),
            (n(TYPE_MESSAGING, 14, &[&zeros(4), &0u64.to_le_bytes(), &[0, 0]]), "Path(3,14,0000000000000000000000000000)"),
            (n(TYPE_MEDIA, 4, &[b"A\0B\0"]), "Path(4,4,41004200)"),
            (n(TYPE_MEDIA, 4, &[b"\0\0"]), "Path(4,4,0000)"),
            (n(TYPE_MEDIA, 4, &[&utf16("a,b\0")]), "Path(4,4,61002C0062000000)"),
            (n(TYPE_ACPI, 2, &[&zeros(12), b"\0\0"]), "Path(2,2,0000000000000000000000000000)"),
            (n(TYPE_MESSAGING, 24, &[b"a,b"]), "Path(3,24,612C62)"),
        ] {
            assert_eq!(node_text(&bytes), text);
            assert_eq!(node_from_text(text), Some(bytes));
        }
        // A value without a keyword prints as a number the parser reads back.
        let ata = n(TYPE_MESSAGING, 1, &[&[5, 0], &1u16.to_le_bytes()]);
        assert_eq!(node_text(&ata), "Ata(0x5,Master,0x1)");
        let flow = n(TYPE_MESSAGING, 10, &[&UART_FLOW_CONTROL, &3u32.to_le_bytes()]);
        assert_eq!(node_text(&flow), "UartFlowCtrl(0x3)");
        // A vendor node with a well-known GUID but more data keeps the long form.
        let ansi = n(TYPE_MESSAGING, 10, &[&PC_ANSI, &[1]]);
        assert_eq!(node_text(&ansi), "VenMsg(E0C14753-F9BE-11D2-9A0C-0090273FC14D,01)");
        // SAS topology EDK2 would print lossily: the number whole.
        let sas = n(TYPE_MESSAGING, 22, &[&zeros(16), &0x0110u16.to_le_bytes(), &0u16.to_le_bytes()]);
        assert_eq!(node_text(&sas), "SasEx(0x0000000000000000,0x0000000000000000,0x0,0x110,0,0,0)");
        // Nodes shorter than their header: no panic.
        assert_eq!(node_text(&[3, 11]), "Path(3,11)");
        assert_eq!(node_text(&[3]), "");
        assert_eq!(node_text(&[]), "");
    }

    /// Any node's bytes print to text that parses back to the same bytes: every case cut short
    /// at each length and with each byte changed (End nodes aside: they are separators).
    #[test]
    fn device_path_damaged_nodes_round_trip_without_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for (bytes, _) in cases() {
            let (ty, sub, body) = (bytes[0], bytes[1], &bytes[4..]);
            let mut variants: Vec<Vec<u8>> = (0..body.len()).map(|len| node(ty, sub, &body[..len])).collect();
            for i in 0..body.len() {
                for flip in [0x01, 0x80, 0xff, (rand() as u8) | 1] {
                    let mut changed = body.to_vec();
                    changed[i] ^= flip;
                    variants.push(node(ty, sub, &changed));
                }
            }
            for v in variants {
                let text = node_text(&v);
                assert_eq!(node_from_text(&text).as_ref(), Some(&v), "{text}");
                // And as one node of a two-instance path.
                let mut path = n(TYPE_HARDWARE, 1, &[&[0, 1]]);
                path.extend(&v);
                path.extend(n(TYPE_END, SUBTYPE_END_INSTANCE, &[]));
                path.extend(&v);
                path.extend(super::super::end());
                assert_eq!(path_from_text(&path_text(&path)), Some(path), "{text}");
                checked += 1;
            }
        }
        assert!(checked > 5000, "{checked}");
    }

    #[test]
    fn device_path_garbage_text_is_refused_without_panic() {
        let long_number = format!("Ctrl({})", "9".repeat(100));
        let long_hex = format!("VenHw({GS},{})", "A".repeat(2 * 70_000));
        let long_file = "x".repeat(40_000);
        let refused = [
            "Pci(",
            "Pci(1,2",
            "Pci(1,2))",
            "Pci(1)",
            "Pci(1,2,3)",
            "Pci(256,0)",
            "Pci(-1,0)",
            "Pci(+1,0)",
            "Pci(0x,0)",
            "Pci(1 2,0)",
            "Pci(１,0)",
            "Pci()",
            "NoSuchNode(1)",
            "Path()",
            "Path(1)",
            "Path(1,2,3)",
            "Path(1,2,ABC)",
            "Path(1,2,GG)",
            "Path(256,1)",
            "Ata(Tertiary,Master,0)",
            "Ata(Primary,Master,0x10000)",
            "Ctrl(4294967296)",
            "MemoryMapped(1,18446744073709551616,0)",
            "VenHw(1234)",
            "VenHw(5568E427-68FC-4F3D-AC74)",
            "VenHw(+568E427-68FC-4F3D-AC74-CA555231CC68)",
            "VenMsg(5568E427-68FC-4F3D-AC74-CA555231CC68,ABC)",
            "IPv4(1.2.3,TCP,Static,1.2.3.4)",
            "IPv4(1.2.3.256,TCP,Static,1.2.3.4)",
            "IPv4(1.2.3.4,TCP,Sometimes,1.2.3.4)",
            "IPv6(1::2::3,TCP,Static,::)",
            "IPv6(1:2:3:4:5:6:7:8:9,TCP,Static,::)",
            "IPv6(12345::,TCP,Static,::)",
            "MAC(0011,0x1)",
            "Uart(fast,8,N,1)",
            "UsbWwid(1,2,3)",
            "Wi-Fi(0123456789012345678901234567890123)",
            "Wi-Fi(café)",
            "Uri(naïve)",
            "BBS(HD,\0,0)",
            "Dns()",
            "AcpiAdr()",
            "AcpiExp(PNP0A08,0,)",
            "AcpiEx(pnp0a08,PNP0A03,0,,,)",
            "AcpiEx(PNP0A0,PNP0A03,0,,,)",
            "NVMe(1,01-02-03)",
            "NVMe(1,01-02-03-04-05-06-07-08-09)",
            "NVMe(1,001-02-03-04-05-06-07-08)",
            "SAS(0,0,0,SATA,Internal,Direct,257,0)",
            "SAS(0,0,0,SATA,Sideways,Direct,1,0)",
            "iSCSI(t,0,0,MD5,None,None,TCP)",
            "HD(1,GPT,nope,0,0)",
            "HD(1,7,1,0,0)",
            "Bluetooth(001A7DDA71)",
            "",
            "\0",
            &long_number,
            &long_hex,
            &long_file,
        ];
        for text in refused {
            assert_eq!(node_from_text(text), None, "{}", text.get(..60).unwrap_or(text));
        }
        // Odd texts: whatever they give is a well-formed node, and nothing panics.
        let odd = ["))((", "(", ")", ",", "/", "a(b)c", "Pci(1,2)/", "é(1)", "\u{10FFFF}", "Path(1,1,", "HD(", "Uart(,,,)", "AcpiAdr(,)", "Dns(,)", "Dns(::,1.2.3.4)"];
        for text in odd.iter().copied().chain(refused) {
            if let Some(bytes) = node_from_text(text) {
                assert_eq!(node_len(&bytes), bytes.len(), "{text}");
            }
            let _ = path_from_text(text);
        }
        assert_eq!(path_from_text("Pci(0,0)/Foo()"), None);
        assert_eq!(path_from_text("Pci(0,0)/Pci(1,"), None);
    }

    /// Texts assembled from every form's name and a mix of plausible and hostile arguments: no
    /// panic, and whatever parses is a well-formed node whose text parses back to it.
    #[test]
    fn device_path_assembled_texts_parse_without_panic() {
        let tokens = [
            "",
            "0",
            "1",
            "0x1F",
            "256",
            "0x10000",
            "-1",
            "18446744073709551615",
            "99999999999999999999",
            GS,
            "PNP0A03",
            "@@@0000",
            "1.2.3.4",
            "::1",
            "fe80::1:2",
            "TCP",
            "UDP",
            "Static",
            "DHCP",
            "None",
            "CRC32C",
            "CHAP_UNI",
            "SAS",
            "SATA",
            "NoTopology",
            "External",
            "Expanded",
            "DEFAULT",
            "N",
            "1.5",
            "Primary",
            "Slave",
            "MBR",
            "GPT",
            "HD",
            "\"x\"",
            "ABCD",
            "abc",
            "0102030405060708",
            "01-02-03-04-05-06-07-08",
            "é",
            " ",
            "(",
            ")",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        let mut parsed = 0;
        for _ in 0..40_000 {
            let name = FORMS[rand(FORMS.len())].name;
            let args: Vec<&str> = (0..rand(9)).map(|_| tokens[rand(tokens.len())]).collect();
            let text = format!("{name}({})", args.join(","));
            if let Some(bytes) = node_from_text(&text) {
                assert_eq!(node_len(&bytes), bytes.len(), "{text}");
                assert_eq!(node_from_text(&node_text(&bytes)).as_ref(), Some(&bytes), "{text}");
                parsed += 1;
            }
        }
        assert!(parsed > 100, "{parsed}");
    }

    #[test]
    fn text_forms() {
        let mut p = super::super::ram_disk(0x4000_0000, 0x41ff_ffff);
        p.truncate(p.len() - 4);
        p.extend(file_path(&"\\EFI\\BOOT\\BOOTAA64.EFI".encode_utf16().collect::<Vec<_>>()));
        assert_eq!(path_text(&p), "VirtualDisk(0x40000000,0x41FFFFFF,0)/\\EFI\\BOOT\\BOOTAA64.EFI");
        assert_eq!(path_text(&super::super::vendor_media(&G)), "VenMedia(5568E427-68FC-4F3D-AC74-CA555231CC68)");
        assert_eq!(path_text(&super::super::memory_mapped(2, 0x1000, 0x1fff)), "MemoryMapped(0x2,0x1000,0x1FFF)");
        let multi = super::super::append_instance(Some(&super::super::vendor_media(&G)), &super::super::memory_mapped(2, 0, 1));
        assert_eq!(path_text(&multi), "VenMedia(5568E427-68FC-4F3D-AC74-CA555231CC68),MemoryMapped(0x2,0x0,0x1)");
        assert_eq!(node_text(&[3, 11, 6, 0, 0xab, 0xcd]), "Path(3,11,ABCD)");
    }

    #[test]
    fn text_forms_parse_back() {
        use super::super::{append_instance, end, hard_drive, memory_mapped, ram_disk, vendor_media};
        let mut p = ram_disk(0x4000_0000, 0x41ff_ffff);
        p.truncate(p.len() - 4);
        p.extend(file_path(&"\\EFI\\BOOT\\BOOTAA64.EFI".encode_utf16().collect::<Vec<_>>()));
        let multi = append_instance(Some(&vendor_media(&G)), &memory_mapped(2, 0, 1));
        for path in [p, vendor_media(&G), memory_mapped(2, 0x1000, 0x1fff), multi] {
            assert_eq!(path_from_text(&path_text(&path)).as_deref(), Some(&path[..]), "{}", path_text(&path));
        }
        assert_eq!(node_from_text("Path(3,11,ABCD)"), Some(vec![3, 11, 6, 0, 0xab, 0xcd]));
        let gpt = hard_drive(&Partition { number: 1, start: 0x800 * 512, size: 0x1_0000 * 512, signature: Signature::Gpt(*G.as_bytes()) });
        assert_eq!((gpt.len(), node_text(&gpt).as_str()), (42, "HD(1,GPT,5568E427-68FC-4F3D-AC74-CA555231CC68,0x800,0x10000)"));
        assert_eq!(node_from_text(&node_text(&gpt)), Some(gpt));
        let mbr = hard_drive(&Partition { number: 2, start: 2048 * 512, size: 4096 * 512, signature: Signature::Mbr(0xdead_beef) });
        assert_eq!(node_text(&mbr), "HD(2,MBR,0xDEADBEEF,0x800,0x1000)");
        assert_eq!(node_from_text(&node_text(&mbr)), Some(mbr));
        assert_eq!(node_from_text("MemoryMapped(2,4096,0x1FFF)"), node_from_text("MemoryMapped(0x2,0x1000,0x1FFF)"), "decimal or hex");
        assert_eq!(node_from_text("Pci(0x1,0x0)"), Some(vec![1, 1, 6, 0, 0, 1]), "now a known form");
        assert_eq!(node_from_text("VenMedia(5568E427-68FC-4F3D-AC74)"), None, "a short GUID");
        assert_eq!(node_from_text("Path(3,11,ABC)"), None, "odd hex");
        assert_eq!(path_from_text(""), Some(end()));
        assert_eq!(node_text(&n(TYPE_END, SUBTYPE_END_INSTANCE, &[])), ",");
        assert_eq!(node_text(&end()), "");
    }
}
