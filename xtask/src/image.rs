//! Checks a built kernel image with a real PE parser (`object`): machine type, native subsystem, entry
//! point at the exported `DriverEntry`, NX compatibility, no section both writable and executable, a
//! valid PE checksum, and imports only from the kernel modules a driver may use.
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::{LittleEndian as LE, Object};

use crate::Result;

/// The kernel modules a driver image may import from. Anything else (a CRT, `kernel32.dll`, a user-mode
/// crypto DLL) would fail to load in the kernel, so it fails the build.
pub const ALLOWED_MODULES: &[&str] =
    &["ntoskrnl.exe", "hal.dll", "ndis.sys", "netio.sys", "wdfldr.sys", "ksecdd.sys", "cng.sys"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X64,
    Arm64,
}

impl Arch {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "x64" => Ok(Arch::X64),
            "arm64" => Ok(Arch::Arm64),
            other => Err(format!("unknown architecture {other:?} (expected x64 or arm64)")),
        }
    }
    pub fn folder(self) -> &'static str {
        match self {
            Arch::X64 => "x64",
            Arch::Arm64 => "arm64",
        }
    }
    fn machine(self) -> u16 {
        match self {
            Arch::X64 => pe::IMAGE_FILE_MACHINE_AMD64,
            Arch::Arm64 => pe::IMAGE_FILE_MACHINE_ARM64,
        }
    }
}

/// What a passing image looks like, for the build log.
#[derive(Debug)]
pub struct Report {
    name: String,
    arch: Arch,
    size: usize,
    imports: BTreeMap<String, Vec<String>>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {} ({}, {} bytes): native driver, DriverEntry, NX, W^X, checksum ok",
            self.name,
            self.arch.folder(),
            self.size
        )?;
        for (module, symbols) in &self.imports {
            write!(f, "    {module}: {}", symbols.join(" "))?;
            writeln!(f)?;
        }
        Ok(())
    }
}

pub fn check_file(path: &Path, arch: Arch) -> Result<Report> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    check(&name, &data, arch).map_err(|problems| format!("{name}: {}", problems.join("; ")))
}

/// Checks one image; on failure returns every problem found, each naming what is wrong.
pub fn check(name: &str, data: &[u8], arch: Arch) -> std::result::Result<Report, Vec<String>> {
    let file = PeFile64::parse(data).map_err(|e| vec![format!("not a PE32+ image: {e}")])?;
    let headers = file.nt_headers();
    let optional = headers.optional_header();
    let mut problems = Vec::new();

    let machine = headers.file_header().machine.get(LE);
    if machine != arch.machine() {
        problems.push(format!("machine type {machine:#06x}, expected {:#06x}", arch.machine()));
    }
    if optional.subsystem() != pe::IMAGE_SUBSYSTEM_NATIVE {
        problems.push(format!("subsystem {}, expected native (1)", optional.subsystem()));
    }
    if optional.dll_characteristics() & pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT == 0 {
        problems.push("not NX-compatible".into());
    }

    let entry = optional.address_of_entry_point();
    let driver_entry = match file.export_table() {
        Ok(Some(table)) => match table.exports() {
            Ok(exports) => {
                exports.iter().find(|e| e.name == Some(&b"DriverEntry"[..])).and_then(|e| match e.target {
                    object::read::pe::ExportTarget::Address(rva) => Some(rva),
                    _ => None,
                })
            }
            Err(e) => {
                problems.push(format!("unreadable export table: {e}"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            problems.push(format!("unreadable export directory: {e}"));
            None
        }
    };
    match driver_entry {
        Some(rva) if rva == entry => {}
        Some(rva) => problems.push(format!("entry point {entry:#x} is not DriverEntry ({rva:#x})")),
        None => problems.push("no exported DriverEntry".into()),
    }

    for section in file.section_table().iter() {
        let flags = section.characteristics.get(LE);
        if flags & pe::IMAGE_SCN_MEM_WRITE != 0 && flags & pe::IMAGE_SCN_MEM_EXECUTE != 0 {
            let name = String::from_utf8_lossy(section.raw_name()).trim_end_matches('\0').to_string();
            problems.push(format!("section {name} is both writable and executable"));
        }
    }

    let stored = optional.check_sum();
    let computed = pe_checksum(data, checksum_offset(data));
    if stored != computed {
        problems.push(format!("PE checksum {stored:#x}, computed {computed:#x}"));
    }

    let mut imports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match file.imports() {
        Ok(list) => {
            for import in list {
                let module = String::from_utf8_lossy(import.library()).to_ascii_lowercase();
                let symbol = String::from_utf8_lossy(import.name()).into_owned();
                if !ALLOWED_MODULES.contains(&module.as_str()) {
                    problems.push(format!("forbidden import {module}!{symbol}"));
                }
                imports.entry(module).or_default().push(symbol);
            }
        }
        Err(e) => problems.push(format!("unreadable import table: {e}")),
    }

    if problems.is_empty() {
        Ok(Report { name: name.to_string(), arch, size: data.len(), imports })
    } else {
        Err(problems)
    }
}

/// File offset of `OptionalHeader.CheckSum` (64 bytes into the PE32+ optional header).
fn checksum_offset(data: &[u8]) -> usize {
    let e_lfanew = data.get(0x3c..0x40).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    // Signature (4) + IMAGE_FILE_HEADER (20) + CheckSum's offset in IMAGE_OPTIONAL_HEADER64 (64).
    e_lfanew + 4 + 20 + 64
}

/// The PE image checksum (as `CheckSumMappedFile` computes it): the folded 16-bit one's-complement-style
/// sum of the file with the checksum field taken as zero, plus the file length.
fn pe_checksum(data: &[u8], checksum_at: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in data.chunks(2).enumerate() {
        let offset = i * 2;
        if offset >= checksum_at && offset < checksum_at + 4 {
            continue;
        }
        let word = u64::from(chunk[0]) | (u64::from(*chunk.get(1).unwrap_or(&0)) << 8);
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    u32::try_from(sum).unwrap_or(0).wrapping_add(u32::try_from(data.len()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_an_image() {
        let problems = check("x.sys", b"MZ not really", Arch::X64).unwrap_err();
        assert!(problems[0].contains("not a PE32+ image"), "{problems:?}");
    }

    #[test]
    fn checksum_skips_its_own_field() {
        let mut a = vec![1u8; 300];
        let at = 100;
        let before = pe_checksum(&a, at);
        a[at..at + 4].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(before, pe_checksum(&a, at));
        a[10] = 2;
        assert_ne!(before, pe_checksum(&a, at));
    }

    #[test]
    fn arch_names() {
        assert_eq!(Arch::parse("arm64"), Ok(Arch::Arm64));
        assert!(Arch::parse("x86").unwrap_err().contains("x86"));
    }
}
