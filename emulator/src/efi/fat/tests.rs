use super::*;
use std::io::{Cursor, Write};
use std::vec;

fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// A FAT image of `kind` made by the fatfs crate, with `files` (paths with `/`).
fn image(kind: fatfs::FatType, files: &[(&str, &[u8])]) -> Vec<u8> {
    let (size, cluster) = match kind {
        fatfs::FatType::Fat12 => (2 << 20, 1024),
        fatfs::FatType::Fat16 => (16 << 20, 2048),
        fatfs::FatType::Fat32 => (40 << 20, 512),
    };
    let mut disk = Cursor::new(vec![0u8; size]);
    fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new().fat_type(kind).bytes_per_cluster(cluster).volume_label(*b"EFI-ESP    ")).unwrap();
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).unwrap();
        let root = fs.root_dir();
        for (path, data) in files {
            let mut parts: Vec<&str> = path.split('/').collect();
            let file = parts.pop().unwrap();
            let mut dir = root.clone();
            for p in parts {
                dir = dir.open_dir(p).or_else(|_| dir.create_dir(p)).unwrap();
            }
            dir.create_file(file).unwrap().write_all(data).unwrap();
        }
    }
    disk.into_inner()
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn reads_files_and_long_names_on_every_fat_kind() {
    let big = content(300_000);
    for (kind, want) in [(fatfs::FatType::Fat12, Kind::Fat12), (fatfs::FatType::Fat16, Kind::Fat16), (fatfs::FatType::Fat32, Kind::Fat32)] {
        let files: &[(&str, &[u8])] =
            &[("EFI/BOOT/BOOTAA64.EFI", b"MZ boot"), ("loader/loader.conf", b"timeout 0\ndefault uki-254.efi\n"), ("EFI/Linux/uki-254+6.12 with spaces.efi", &big)];
        let disk = image(kind, files);
        let fat = Fat::new(&disk).unwrap();
        assert_eq!(fat.kind, want);
        let boot = fat.open(&w("\\efi\\boot\\bootaa64.efi")).expect("case-insensitive lookup");
        let mut buf = [0u8; 64];
        assert_eq!(fat.read(&boot, 0, &mut buf), 7);
        assert_eq!(&buf[..7], b"MZ boot");
        let uki = fat.open(&w("/EFI/Linux/uki-254+6.12 with spaces.efi")).expect("a long name");
        assert_eq!(uki.size as usize, big.len());
        let mut all = vec![0u8; big.len() + 10];
        assert_eq!(fat.read(&uki, 0, &mut all), big.len());
        assert_eq!(&all[..big.len()], &big[..]);
        // Reads from the middle, across cluster boundaries.
        let mut part = vec![0u8; 5000];
        assert_eq!(fat.read(&uki, 123_457, &mut part), 5000);
        assert_eq!(&part[..], &big[123_457..128_457]);
        assert_eq!(fat.read(&uki, big.len() as u64, &mut part), 0, "at the end");
        let names: Vec<_> = fat.read_dir(&fat.open(&w("EFI")).unwrap()).map(|e| String::from_utf16(&e.name).unwrap()).collect();
        assert_eq!(names, ["BOOT", "Linux"]);
        assert!(fat.open(&w("EFI\\Linux\\..\\BOOT\\.\\BOOTAA64.EFI")).is_some(), "dot and dot-dot");
        assert!(fat.open(&w("EFI\\missing")).is_none());
        assert_eq!(String::from_utf16(&fat.label()).unwrap(), "EFI-ESP");
        let (total, free) = fat.space();
        assert!(free > 0 && free < total);
    }
}

#[test]
fn damaged_images_are_refused_with_the_field() {
    let disk = image(fatfs::FatType::Fat16, &[("a.txt", b"a")]);
    let patch = |at: usize, bytes: &[u8]| {
        let mut d = disk.clone();
        d[at..at + bytes.len()].copy_from_slice(bytes);
        d
    };
    for (d, field) in [
        (patch(510, &[0, 0]), "boot sector signature"),
        (patch(11, &[0x00, 0x03]), "BytesPerSector"),
        (patch(13, &[3]), "SectorsPerCluster"),
        (patch(19, &[0xff, 0xff]), "TotalSectors"),
        (patch(22, &[1, 0]), "FATSize"),
        (disk[..300].to_vec(), "boot sector signature"),
    ] {
        assert_eq!(Fat::new(&d).unwrap_err().field, field);
    }
}

#[test]
fn cluster_loops_end() {
    let mut disk = image(fatfs::FatType::Fat16, &[("loop.bin", &content(10_000))]);
    let fat = Fat::new(&disk).unwrap();
    let f = fat.open(&w("loop.bin")).unwrap();
    // Point the file's second cluster back at its first.
    let (fat_start, first) = (fat.fat_start, f.cluster as usize);
    let second = u16::from_le_bytes([disk[fat_start + 2 * first], disk[fat_start + 2 * first + 1]]) as usize;
    disk[fat_start + 2 * second..fat_start + 2 * second + 2].copy_from_slice(&(first as u16).to_le_bytes());
    let fat = Fat::new(&disk).unwrap();
    let mut buf = vec![0u8; 20_000];
    assert!(fat.read(&f, 0, &mut buf) <= 10_000, "bounded, no hang");
}

#[test]
fn partitioned_disks_find_the_esp() {
    let fs = image(fatfs::FatType::Fat12, &[("x", b"y")]);
    // MBR with one type-0xEF partition at LBA 2048.
    let mut mbr = vec![0u8; 2048 * 512 + fs.len()];
    mbr[446 + 4] = 0xef;
    mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    mbr[510..512].copy_from_slice(&[0x55, 0xaa]);
    mbr[2048 * 512..].copy_from_slice(&fs);
    mbr[446 + 12..446 + 16].copy_from_slice(&((fs.len() / 512) as u32).to_le_bytes());
    mbr[440..444].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    assert!(Fat::new(&mbr).unwrap().open(&w("x")).is_some());
    let p = partition(&mbr).unwrap().unwrap();
    assert_eq!(p, Partition { number: 1, start: 2048 * 512, size: fs.len() as u64, signature: Signature::Mbr(0x1234_5678) });
    // GPT: header at LBA 1, entries at LBA 2, the ESP type GUID, at LBA 34.
    let mut gpt = vec![0u8; 34 * 512 + fs.len()];
    gpt[512..520].copy_from_slice(b"EFI PART");
    gpt[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
    gpt[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
    gpt[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
    let esp = [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
    gpt[1024 + 128..1024 + 144].copy_from_slice(&esp);
    gpt[1024 + 128 + 32..1024 + 128 + 40].copy_from_slice(&34u64.to_le_bytes());
    gpt[1024 + 128 + 16..1024 + 128 + 32].copy_from_slice(&[7; 16]);
    gpt[1024 + 128 + 40..1024 + 128 + 48].copy_from_slice(&(34 + fs.len() as u64 / 512 - 1).to_le_bytes());
    gpt[34 * 512..].copy_from_slice(&fs);
    assert!(Fat::new(&gpt).unwrap().open(&w("x")).is_some(), "the second entry");
    let p = partition(&gpt).unwrap().unwrap();
    assert_eq!(p, Partition { number: 2, start: 34 * 512, size: fs.len() as u64, signature: Signature::Gpt([7; 16]) });
    assert_eq!(partition(&fs).unwrap(), None, "a bare file system");

    // Hostile entries: an EndingLBA of u64::MAX is cut to the image (it overflowed), one below
    // the start and an MBR partition of 0 sectors are refused (LastBlock would be 2^64 - 1).
    let last = 1024 + 128 + 40;
    let mut huge = gpt.clone();
    huge[last..last + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(partition(&huge).unwrap().unwrap().size, fs.len() as u64);
    huge[1024 + 128 + 32..1024 + 128 + 40].copy_from_slice(&0u64.to_le_bytes());
    assert_eq!(partition(&huge).unwrap().unwrap().size, huge.len() as u64, "0..=u64::MAX: the whole image, no overflow");
    let mut backwards = gpt.clone();
    backwards[last..last + 8].copy_from_slice(&33u64.to_le_bytes());
    assert_eq!(partition(&backwards).unwrap_err().expected, "a partition of at least one block");
    let mut empty = mbr.clone();
    empty[446 + 12..446 + 16].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(partition(&empty).unwrap_err().expected, "a partition of at least one block");
    // The volume is read within its partition: cut the partition short of the file system.
    let mut short = mbr.clone();
    short[446 + 12..446 + 16].copy_from_slice(&4u32.to_le_bytes());
    assert!(Fat::new(&short).is_err(), "the file system does not fit its partition");
}

/// A run of long-name pieces longer than a name may be (20 pieces, 255 units) is no name: the
/// short name stands, and the pieces are not gathered (each would copy all the others).
#[test]
fn an_overlong_long_name_is_ignored() {
    let mut fs = image(fatfs::FatType::Fat12, &[("x", b"y")]);
    let (bps, reserved, fats, per_fat) = (le_u16(&fs, 11).unwrap() as usize, le_u16(&fs, 14).unwrap() as usize, fs[16] as usize, le_u16(&fs, 22).unwrap() as usize);
    let root = (reserved + fats * per_fat) * bps;
    let short = *b"LONGNAMETXT";
    let sum = short_checksum(&short);
    // 30 pieces (390 units), last first as on disk, then the short entry.
    let pieces = 30;
    for i in 0..pieces {
        let e = &mut fs[root + 32 * i..root + 32 * (i + 1)];
        e.fill(0);
        e[0] = (pieces - i) as u8 | if i == 0 { 0x40 } else { 0 };
        for at in (1..11).step_by(2).chain((14..26).step_by(2)).chain((28..32).step_by(2)) {
            e[at] = b'a';
        }
        e[11] = ATTR_LONG_NAME;
        e[13] = sum;
    }
    let e = &mut fs[root + 32 * pieces..root + 32 * (pieces + 1)];
    e.fill(0);
    e[..11].copy_from_slice(&short);
    e[11] = 0x20;
    let fat = Fat::new(&fs).unwrap();
    let names: Vec<String> = fat.read_dir(&fat.root()).map(|e| String::from_utf16(&e.name).unwrap()).collect();
    assert_eq!(names, ["LONGNAME.TXT"], "the short name, not 390 units of long name");
}

/// A reader that keeps its place continues from the cluster it stands on: the chain before it
/// is not walked again (each Read walked it from the start: quadratic in the file's clusters).
/// Shown by breaking the chain's start between two reads: the kept place reads on, a fresh
/// read cannot get past the break.
#[test]
fn reads_continue_from_where_they_stand() {
    let big = content(300_000);
    let names: Vec<String> = (0..300).map(|i| format!("DIR/file number {i:03}.txt")).collect();
    let mut files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    files.push(("big.bin", &big));
    let disk = image(fatfs::FatType::Fat32, &files);
    let fat = Fat::new(&disk).unwrap();
    let (file, dir) = (fat.open(&w("big.bin")).unwrap(), fat.open(&w("DIR")).unwrap());

    let mut cursor = ChainCursor::default();
    let mut first = vec![0u8; 200_000];
    assert_eq!(fat.read_at(&file, 0, &mut first, &mut cursor), first.len());
    let mut place = DirPlace::default();
    let mut listed = Vec::new();
    for _ in 0..150 {
        let (e, next) = fat.read_dir_at(&dir, place).unwrap();
        listed.push(String::from_utf16(&e.name).unwrap());
        place = next;
    }

    // The same volume with both chains cut after their first cluster.
    let mut broken = disk.clone();
    for c in [file.cluster, dir.cluster] {
        broken[fat.fat_start + 4 * c as usize..][..4].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
    }
    let fat = Fat::new(&broken).unwrap();
    let mut rest = vec![0u8; 100_000];
    assert_eq!(fat.read(&file, 200_000, &mut rest), 0, "a fresh read walks from the start and stops at the cut");
    assert_eq!(fat.read_at(&file, 200_000, &mut rest, &mut cursor), rest.len(), "the kept place reads on");
    assert_eq!([first, rest].concat(), big);
    while let Some((e, next)) = fat.read_dir_at(&dir, place) {
        listed.push(String::from_utf16(&e.name).unwrap());
        place = next;
    }
    let want: Vec<String> = (0..300).map(|i| format!("file number {i:03}.txt")).collect();
    assert_eq!(listed, want, "the listing went on past the cut too");
    assert!(fat.read_dir(&dir).count() < 300, "a fresh listing stops at the cut");
}
