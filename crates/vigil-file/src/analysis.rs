//! Static analysis of untrusted bytes: what kind of file it is, and for PE files the
//! headers, sections with entropy and flags, imports, exports, overlay, resources,
//! signature, timestamp and packer signs; for ELF files the basics.
//!
//! Nothing here fails: a malformed or truncated file gives a report with `is_pe: false`
//! (or a PE report with `warnings`) holding whatever could be read.

use crate::headers::{Headers, SectionHeader, dir};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Limits on what one analysis reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest file analysed, in bytes; larger input is refused before analysis.
    pub max_file_bytes: usize,
    /// Imported functions listed (all are counted).
    pub max_imports: usize,
    /// Exported names listed (all are counted).
    pub max_exports: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 << 20,
            max_imports: 4096,
            max_exports: 1024,
        }
    }
}

/// What kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Windows Portable Executable.
    Pe,
    /// ELF (Linux and other Unix).
    Elf,
    /// Anything else.
    Unknown,
}

/// One section, as a detector sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    /// Name (`.text`, `UPX0`, …).
    pub name: String,
    /// Address in memory, relative to the image base.
    pub virtual_address: u32,
    /// Size in memory.
    pub virtual_size: u32,
    /// Offset in the file.
    pub raw_offset: u32,
    /// Size in the file.
    pub raw_size: u32,
    /// Shannon entropy of the raw data (bits per byte, 0–8).
    pub entropy: f64,
    /// `r`, `w`, `x` as set.
    pub flags: String,
    /// The `IMAGE_SCN_*` characteristics.
    pub characteristics: u32,
}

/// An imported library and the functions taken from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedLibrary {
    /// DLL name, lower case.
    pub dll: String,
    /// Function names (`#N` for imports by ordinal).
    pub functions: Vec<String>,
}

/// Data appended after the last section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlay {
    /// Where it starts.
    pub offset: usize,
    /// Its size.
    pub size: usize,
    /// Its entropy.
    pub entropy: f64,
    /// Whether it starts with `MZ` (an embedded executable).
    pub embedded_pe: bool,
}

/// What a PE file holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeReport {
    /// `i386`, `amd64`, `arm64`, … or `0x…`.
    pub machine: String,
    /// PE32+.
    pub is_64: bool,
    /// A DLL.
    pub is_dll: bool,
    /// A .NET assembly (CLR header present).
    pub is_dotnet: bool,
    /// `windows_gui`, `windows_cui`, `native`, … or the number.
    pub subsystem: String,
    /// `TimeDateStamp`.
    pub timestamp: u32,
    /// `TimeDateStamp` as RFC 3339 UTC.
    pub compiled_at: String,
    /// Entry point (relative virtual address).
    pub entry_point: u32,
    /// The section holding the entry point, if any.
    pub entry_section: Option<String>,
    /// Image base.
    pub image_base: u64,
    /// Sections.
    pub sections: Vec<Section>,
    /// Imported libraries and functions (listed up to the limit).
    pub imports: Vec<ImportedLibrary>,
    /// Number of imported functions.
    pub import_count: usize,
    /// Exported names (listed up to the limit).
    pub exports: Vec<String>,
    /// Number of exports.
    pub export_count: usize,
    /// Data after the last section.
    pub overlay: Option<Overlay>,
    /// An Authenticode signature directory is present (its validity is not checked).
    pub has_signature: bool,
    /// A resource directory is present.
    pub has_resources: bool,
    /// Size of the resource directory.
    pub resources_size: u32,
    /// Debug directory present.
    pub has_debug: bool,
    /// TLS directory present (TLS callbacks run before the entry point).
    pub has_tls: bool,
    /// Signs of a packer or protector, each a short sentence.
    pub packer_signs: Vec<String>,
    /// Suspicious import combinations, each a short sentence.
    pub suspicious_imports: Vec<String>,
    /// The raw headers (the fields ClaMP's features come from).
    pub headers: Headers,
}

/// ELF basics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ElfReport {
    /// 64-bit.
    pub is_64: bool,
    /// `EXEC`, `DYN`, `REL`, …
    pub kind: String,
    /// `x86_64`, `aarch64`, … or the number.
    pub machine: String,
    /// Entry point.
    pub entry_point: u64,
    /// Program interpreter (`/lib64/ld-linux-x86-64.so.2`), absent for static binaries.
    pub interpreter: Option<String>,
    /// Needed shared libraries.
    pub libraries: Vec<String>,
    /// Section names.
    pub sections: Vec<String>,
    /// No symbol table.
    pub stripped: bool,
}

/// The static analysis of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticReport {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// MD5, lower-case hex.
    pub md5: String,
    /// Size in bytes.
    pub size: usize,
    /// Entropy of the whole file.
    pub entropy: f64,
    /// What kind of file.
    pub format: Format,
    /// A PE file whose headers could be read.
    pub is_pe: bool,
    /// PE details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pe: Option<PeReport>,
    /// ELF details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elf: Option<ElfReport>,
    /// What could not be read, and why.
    pub warnings: Vec<String>,
}

/// Shannon entropy of `bytes` in bits per byte.
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn machine_name(m: u16) -> String {
    match m {
        0x14c => "i386".into(),
        0x8664 => "amd64".into(),
        0xaa64 => "arm64".into(),
        0x1c0 => "arm".into(),
        0x1c4 => "armnt".into(),
        0x200 => "ia64".into(),
        0 => "unknown".into(),
        other => format!("{other:#x}"),
    }
}

fn subsystem_name(s: u16) -> String {
    match s {
        1 => "native".into(),
        2 => "windows_gui".into(),
        3 => "windows_cui".into(),
        9 => "windows_ce_gui".into(),
        10 => "efi_application".into(),
        11 => "efi_boot_service_driver".into(),
        12 => "efi_runtime_driver".into(),
        16 => "windows_boot_application".into(),
        other => other.to_string(),
    }
}

fn rfc3339(unix: u32) -> String {
    let (year, month, day) = crate::clamp::civil_date(unix);
    let secs = unix % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

const SCN_CODE: u32 = 0x20;
const SCN_EXECUTE: u32 = 0x2000_0000;
const SCN_READ: u32 = 0x4000_0000;
const SCN_WRITE: u32 = 0x8000_0000;

fn section_report(bytes: &[u8], s: &SectionHeader) -> Section {
    let start = s.pointer_to_raw_data as usize;
    let end = start
        .saturating_add(s.size_of_raw_data as usize)
        .min(bytes.len());
    let data = bytes.get(start..end).unwrap_or_default();
    let c = s.characteristics;
    let mut flags = String::new();
    if c & SCN_READ != 0 {
        flags.push('r');
    }
    if c & SCN_WRITE != 0 {
        flags.push('w');
    }
    if c & (SCN_EXECUTE | SCN_CODE) != 0 {
        flags.push('x');
    }
    Section {
        name: s.name.clone(),
        virtual_address: s.virtual_address,
        virtual_size: s.virtual_size,
        raw_offset: s.pointer_to_raw_data,
        raw_size: s.size_of_raw_data,
        entropy: entropy(data),
        flags,
        characteristics: c,
    }
}

/// Section names that packers and protectors leave behind.
const PACKER_SECTIONS: [(&str, &str); 22] = [
    ("UPX0", "UPX"),
    ("UPX1", "UPX"),
    ("UPX2", "UPX"),
    (".aspack", "ASPack"),
    (".adata", "ASPack"),
    ("ASPack", "ASPack"),
    (".petite", "PEtite"),
    ("petite", "PEtite"),
    ("MEW", "MEW"),
    (".MPRESS1", "MPRESS"),
    (".MPRESS2", "MPRESS"),
    (".nsp0", "NsPack"),
    (".nsp1", "NsPack"),
    (".packed", "a packer (.packed)"),
    (".themida", "Themida"),
    (".vmp0", "VMProtect"),
    (".vmp1", "VMProtect"),
    (".enigma1", "Enigma Protector"),
    (".yP", "Y0da Protector"),
    ("pec1", "PECompact"),
    ("PEC2", "PECompact"),
    (".Upack", "Upack"),
];

fn packer_signs(h: &Headers, sections: &[Section], import_count: usize) -> Vec<String> {
    let mut signs = Vec::new();
    for s in sections {
        if let Some((_, packer)) = PACKER_SECTIONS.iter().find(|(n, _)| *n == s.name) {
            let sign = format!("section `{}` is {packer}'s", s.name);
            if !signs.contains(&sign) {
                signs.push(sign);
            }
        }
    }
    if let Some(s) = sections
        .iter()
        .find(|s| s.entropy > 7.2 && s.raw_size >= 1024)
    {
        signs.push(format!(
            "section `{}` has entropy {:.2} (compressed or encrypted)",
            s.name, s.entropy
        ));
    }
    if let Some(s) = sections
        .iter()
        .find(|s| s.flags.contains('w') && s.flags.contains('x'))
    {
        signs.push(format!("section `{}` is writable and executable", s.name));
    }
    if let Some(s) = sections
        .iter()
        .find(|s| s.raw_size == 0 && s.virtual_size >= 4096 && s.flags.contains('x'))
    {
        signs.push(format!(
            "executable section `{}` is empty on disk but {} bytes in memory (unpacked at run time)",
            s.name, s.virtual_size
        ));
    }
    let entry = h.optional.address_of_entry_point;
    if entry != 0 {
        match h.section_of_rva(entry) {
            None => signs.push("the entry point is outside every section".into()),
            Some(s) if h.sections.first().is_some_and(|first| first.name != s.name) => {
                let writable = s.characteristics & SCN_WRITE != 0;
                signs.push(format!(
                    "the entry point is in section `{}`, not the first{}",
                    s.name,
                    if writable { " (a writable one)" } else { "" }
                ));
            }
            Some(_) => {}
        }
    }
    if import_count > 0 && import_count < 5 && !sections.is_empty() {
        signs.push(format!(
            "only {import_count} imported functions (packers import just enough to unpack)"
        ));
    }
    signs
}

/// Import combinations that typical malware capabilities need, with what they suggest.
const SUSPICIOUS_COMBOS: [(&[&str], &str); 7] = [
    (
        &["VirtualAllocEx", "WriteProcessMemory", "CreateRemoteThread"],
        "process injection (VirtualAllocEx + WriteProcessMemory + CreateRemoteThread)",
    ),
    (
        &["OpenProcess", "WriteProcessMemory", "QueueUserAPC"],
        "APC injection (OpenProcess + WriteProcessMemory + QueueUserAPC)",
    ),
    (
        &["SetThreadContext", "ResumeThread", "WriteProcessMemory"],
        "process hollowing (WriteProcessMemory + SetThreadContext + ResumeThread)",
    ),
    (
        &["SetWindowsHookExA", "GetAsyncKeyState"],
        "keylogging (SetWindowsHookEx + GetAsyncKeyState)",
    ),
    (
        &["CryptEncrypt", "FindFirstFileW", "FindNextFileW"],
        "encrypting files it enumerates (ransomware-like)",
    ),
    (
        &["URLDownloadToFileA", "WinExec"],
        "download and execute (URLDownloadToFile + WinExec)",
    ),
    (
        &[
            "OpenProcessToken",
            "AdjustTokenPrivileges",
            "LookupPrivilegeValueA",
        ],
        "privilege adjustment (AdjustTokenPrivileges)",
    ),
];

fn suspicious_imports(imports: &[ImportedLibrary]) -> Vec<String> {
    let has = |name: &str| {
        let stem = name.trim_end_matches(['A', 'W']);
        imports.iter().any(|l| {
            l.functions
                .iter()
                .any(|f| f == name || f.trim_end_matches(['A', 'W']) == stem)
        })
    };
    let mut out: Vec<String> = SUSPICIOUS_COMBOS
        .iter()
        .filter(|(needed, _)| needed.iter().all(|n| has(n)))
        .map(|(_, what)| (*what).to_string())
        .collect();
    let loader_only = ["LoadLibraryA", "GetProcAddress"].iter().all(|n| has(n))
        && imports.iter().map(|l| l.functions.len()).sum::<usize>() <= 6;
    if loader_only {
        out.push("resolves its imports at run time (LoadLibrary + GetProcAddress only)".into());
    }
    out
}

fn pe_report(bytes: &[u8], h: Headers, limits: &Limits, warnings: &mut Vec<String>) -> PeReport {
    let sections: Vec<Section> = h
        .sections
        .iter()
        .map(|s| section_report(bytes, s))
        .collect();
    let mut imports: Vec<ImportedLibrary> = Vec::new();
    let mut import_count = 0;
    let mut exports = Vec::new();
    let mut export_count = 0;
    let mut opts = goblin::pe::options::ParseOptions::default()
        .with_parse_mode(goblin::pe::options::ParseMode::Permissive)
        .with_parse_tls_data(false)
        .with_parse_resources(false);
    opts.parse_attribute_certificates = false;
    // goblin follows pointers from the headers; a crafted file must not take the server
    // down with it.
    let parsed = std::panic::catch_unwind(|| {
        goblin::pe::PE::parse_with_opts(bytes, &opts).map(|pe| {
            let imports: Vec<(String, String)> = pe
                .imports
                .iter()
                .map(|i| {
                    let name = if i.name.starts_with("ORDINAL ") || i.name.is_empty() {
                        format!("#{}", i.ordinal)
                    } else {
                        i.name.to_string()
                    };
                    (i.dll.to_ascii_lowercase(), name)
                })
                .collect();
            let exports: Vec<String> = pe
                .exports
                .iter()
                .map(|e| e.name.unwrap_or("").to_string())
                .collect();
            (imports, exports)
        })
    });
    match parsed {
        Ok(Ok((imps, exps))) => {
            import_count = imps.len();
            for (dll, function) in imps.into_iter().take(limits.max_imports) {
                match imports.iter_mut().find(|l| l.dll == dll) {
                    Some(l) => l.functions.push(function),
                    None => imports.push(ImportedLibrary {
                        dll,
                        functions: vec![function],
                    }),
                }
            }
            export_count = exps.len();
            exports = exps
                .into_iter()
                .filter(|n| !n.is_empty())
                .take(limits.max_exports)
                .collect();
        }
        Ok(Err(e)) => warnings.push(format!("imports and exports: {e}")),
        Err(_) => warnings.push("imports and exports: the PE parser failed on this file".into()),
    }
    let end = h.end_of_image_data();
    let overlay = (end < bytes.len()).then(|| {
        let data = &bytes[end..];
        Overlay {
            offset: end,
            size: data.len(),
            entropy: entropy(data),
            embedded_pe: data.starts_with(b"MZ"),
        }
    });
    let security = h.directory(dir::SECURITY);
    let resources = h.directory(dir::RESOURCE);
    let packer_signs = packer_signs(&h, &sections, import_count);
    let suspicious_imports = suspicious_imports(&imports);
    PeReport {
        machine: machine_name(h.file.machine),
        is_64: h.is_64(),
        is_dll: h.file.characteristics & 0x2000 != 0,
        is_dotnet: h.directory(dir::CLR).is_some(),
        subsystem: subsystem_name(h.optional.subsystem),
        timestamp: h.file.time_date_stamp,
        compiled_at: rfc3339(h.file.time_date_stamp),
        entry_point: h.optional.address_of_entry_point,
        entry_section: h
            .section_of_rva(h.optional.address_of_entry_point)
            .map(|s| s.name.clone()),
        image_base: h.optional.image_base,
        sections,
        imports,
        import_count,
        exports,
        export_count,
        overlay,
        has_signature: security
            .is_some_and(|d| (d.rva as usize).saturating_add(d.size as usize) <= bytes.len()),
        has_resources: resources.is_some(),
        resources_size: resources.map_or(0, |d| d.size),
        has_debug: h.directory(dir::DEBUG).is_some(),
        has_tls: h.directory(dir::TLS).is_some(),
        packer_signs,
        suspicious_imports,
        headers: h,
    }
}

fn elf_report(bytes: &[u8], warnings: &mut Vec<String>) -> Option<ElfReport> {
    let parsed = std::panic::catch_unwind(|| {
        goblin::elf::Elf::parse(bytes).map(|elf| {
            let sections: Vec<String> = elf
                .section_headers
                .iter()
                .take(256)
                .filter_map(|s| elf.shdr_strtab.get_at(s.sh_name))
                .map(str::to_string)
                .collect();
            ElfReport {
                is_64: elf.is_64,
                kind: goblin::elf::header::et_to_str(elf.header.e_type).to_string(),
                machine: goblin::elf::header::machine_to_str(elf.header.e_machine).to_string(),
                entry_point: elf.entry,
                interpreter: elf.interpreter.map(str::to_string),
                libraries: elf
                    .libraries
                    .iter()
                    .take(256)
                    .map(|l| l.to_string())
                    .collect(),
                stripped: elf.syms.is_empty(),
                sections,
            }
        })
    });
    match parsed {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            warnings.push(format!("ELF: {e}"));
            None
        }
        Err(_) => {
            warnings.push("ELF: the parser failed on this file".into());
            None
        }
    }
}

/// Analyses `bytes`. Never fails: see [`StaticReport::warnings`]. Callers refuse input
/// over [`Limits::max_file_bytes`] before calling.
pub fn analyze(bytes: &[u8], limits: &Limits) -> StaticReport {
    let mut warnings = Vec::new();
    let (format, is_pe, pe, elf) = if bytes.starts_with(b"MZ") {
        match Headers::parse(bytes) {
            Ok(h) => {
                let report = pe_report(bytes, h, limits, &mut warnings);
                (Format::Pe, true, Some(report), None)
            }
            Err(e) => {
                warnings.push(format!("not a PE file: {e}"));
                (Format::Unknown, false, None, None)
            }
        }
    } else if bytes.starts_with(b"\x7fELF") {
        let elf = elf_report(bytes, &mut warnings);
        (Format::Elf, false, None, elf)
    } else {
        (Format::Unknown, false, None, None)
    };
    StaticReport {
        sha256: sha256_hex(bytes),
        md5: hex::encode(<md5::Md5 as md5::Digest>::digest(bytes)),
        size: bytes.len(),
        entropy: entropy(bytes),
        format,
        is_pe,
        pe,
        elf,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(b""), 0.0);
        assert_eq!(entropy(&[7u8; 100]), 0.0);
        let all: Vec<u8> = (0..=255u8).collect();
        assert!((entropy(&all) - 8.0).abs() < 1e-9);
    }

    #[test]
    fn timestamps_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_136_073_600 + 3661), "2006-01-01T01:01:01Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn not_executables() {
        let r = analyze(b"hello world", &Limits::default());
        assert!(!r.is_pe);
        assert_eq!(r.format, Format::Unknown);
        assert_eq!(r.size, 11);
        let r = analyze(b"MZ but too short", &Limits::default());
        assert!(!r.is_pe);
        assert!(r.warnings[0].contains("DOS header"), "{:?}", r.warnings);
        let r = analyze(b"\x7fELF\x02\x01\x01", &Limits::default());
        assert_eq!(r.format, Format::Elf);
        assert!(r.elf.is_none() && !r.warnings.is_empty());
    }
}
