//! The PE headers, read by hand from untrusted bytes: DOS header, file header, optional
//! header, data directories and the section table.
//!
//! Every read is bounds-checked. Like `pefile` (which extracted ClaMP's features), a
//! truncated optional header is read as if padded with zeros, so that the fields a model
//! was trained on are computed the same way for the same bytes.

use serde::{Deserialize, Serialize};

/// `MZ`.
pub const DOS_MAGIC: u16 = 0x5a4d;
/// `PE\0\0`.
pub const PE_SIGNATURE: u32 = 0x0000_4550;
/// Optional header magic of PE32.
pub const PE32_MAGIC: u16 = 0x10b;
/// Optional header magic of PE32+ (64-bit).
pub const PE32_PLUS_MAGIC: u16 = 0x20b;

/// Why bytes are not a PE file, for the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than 64 bytes, or no `MZ`.
    #[error("no DOS header (`MZ`)")]
    NoDosHeader,
    /// `e_lfanew` points outside the file or at something other than `PE\0\0`.
    #[error("no PE signature at e_lfanew = {0:#x}")]
    NoPeSignature(u32),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A window on a header that reads zeros past the end of the file (pefile's padding).
struct Padded<'a>(&'a [u8]);

impl Padded<'_> {
    fn u8(&self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.u8(at), self.u8(at + 1)])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes([
            self.u8(at),
            self.u8(at + 1),
            self.u8(at + 2),
            self.u8(at + 3),
        ])
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from(self.u32(at)) | (u64::from(self.u32(at + 4)) << 32)
    }
}

/// Printable ASCII as is, anything else as `\xNN`: section names are attacker-chosen bytes.
fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The DOS header (`IMAGE_DOS_HEADER`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields are the PE specification's, by their names there.
pub struct DosHeader {
    pub e_magic: u16,
    pub e_cblp: u16,
    pub e_cp: u16,
    pub e_crlc: u16,
    pub e_cparhdr: u16,
    pub e_minalloc: u16,
    pub e_maxalloc: u16,
    pub e_ss: u16,
    pub e_sp: u16,
    pub e_csum: u16,
    pub e_ip: u16,
    pub e_cs: u16,
    pub e_lfarlc: u16,
    pub e_ovno: u16,
    pub e_oemid: u16,
    pub e_oeminfo: u16,
    pub e_lfanew: u32,
}

/// The COFF file header (`IMAGE_FILE_HEADER`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FileHeader {
    pub machine: u16,
    pub number_of_sections: u16,
    pub time_date_stamp: u32,
    pub pointer_to_symbol_table: u32,
    pub number_of_symbols: u32,
    pub size_of_optional_header: u16,
    pub characteristics: u16,
}

/// The optional header (`IMAGE_OPTIONAL_HEADER32/64`); 64-bit sizes are widened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct OptionalHeader {
    pub magic: u16,
    pub major_linker_version: u8,
    pub minor_linker_version: u8,
    pub size_of_code: u32,
    pub size_of_initialized_data: u32,
    pub size_of_uninitialized_data: u32,
    pub address_of_entry_point: u32,
    pub base_of_code: u32,
    /// Absent from PE32+ (reported as 0).
    pub base_of_data: u32,
    pub image_base: u64,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub major_operating_system_version: u16,
    pub minor_operating_system_version: u16,
    pub major_image_version: u16,
    pub minor_image_version: u16,
    pub major_subsystem_version: u16,
    pub minor_subsystem_version: u16,
    pub size_of_image: u32,
    pub size_of_headers: u32,
    pub check_sum: u32,
    pub subsystem: u16,
    pub dll_characteristics: u16,
    pub size_of_stack_reserve: u64,
    pub size_of_stack_commit: u64,
    pub size_of_heap_reserve: u64,
    pub size_of_heap_commit: u64,
    pub loader_flags: u32,
    pub number_of_rva_and_sizes: u32,
}

/// One data directory entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDirectory {
    /// Relative virtual address (for the certificate table: a file offset).
    pub rva: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Indexes into [`Headers::data_directories`].
pub mod dir {
    /// Export table.
    pub const EXPORT: usize = 0;
    /// Import table.
    pub const IMPORT: usize = 1;
    /// Resource table.
    pub const RESOURCE: usize = 2;
    /// Attribute certificate table (Authenticode).
    pub const SECURITY: usize = 4;
    /// Debug data.
    pub const DEBUG: usize = 6;
    /// Thread-local storage.
    pub const TLS: usize = 9;
    /// CLR runtime header (.NET).
    pub const CLR: usize = 14;
}

/// One section table entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SectionHeader {
    /// Name, up to 8 bytes, lossy UTF-8, NULs trimmed.
    pub name: String,
    /// Size in memory.
    pub virtual_size: u32,
    /// Address in memory, relative to the image base.
    pub virtual_address: u32,
    /// Size in the file.
    pub size_of_raw_data: u32,
    /// Offset in the file.
    pub pointer_to_raw_data: u32,
    /// `IMAGE_SCN_*` flags.
    pub characteristics: u32,
}

/// Everything the headers say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Headers {
    /// DOS header.
    pub dos: DosHeader,
    /// File header.
    pub file: FileHeader,
    /// Optional header.
    pub optional: OptionalHeader,
    /// Data directories present (at most 16).
    pub data_directories: Vec<DataDirectory>,
    /// Section table (at most 96 entries, the loader's limit), as far as the file holds it.
    pub sections: Vec<SectionHeader>,
    /// Where the section table ends in the file.
    pub headers_end: usize,
}

impl Headers {
    /// Reads the headers of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Headers, HeaderError> {
        if bytes.len() < 64 || u16_at(bytes, 0) != Some(DOS_MAGIC) {
            return Err(HeaderError::NoDosHeader);
        }
        let d = Padded(bytes);
        let dos = DosHeader {
            e_magic: d.u16(0),
            e_cblp: d.u16(2),
            e_cp: d.u16(4),
            e_crlc: d.u16(6),
            e_cparhdr: d.u16(8),
            e_minalloc: d.u16(10),
            e_maxalloc: d.u16(12),
            e_ss: d.u16(14),
            e_sp: d.u16(16),
            e_csum: d.u16(18),
            e_ip: d.u16(20),
            e_cs: d.u16(22),
            e_lfarlc: d.u16(24),
            e_ovno: d.u16(26),
            e_oemid: d.u16(36),
            e_oeminfo: d.u16(38),
            e_lfanew: d.u32(60),
        };
        let pe = dos.e_lfanew as usize;
        if u32_at(bytes, pe) != Some(PE_SIGNATURE) {
            return Err(HeaderError::NoPeSignature(dos.e_lfanew));
        }
        let f = pe + 4;
        let file = FileHeader {
            machine: d.u16(f),
            number_of_sections: d.u16(f + 2),
            time_date_stamp: d.u32(f + 4),
            pointer_to_symbol_table: d.u32(f + 8),
            number_of_symbols: d.u32(f + 12),
            size_of_optional_header: d.u16(f + 16),
            characteristics: d.u16(f + 18),
        };
        let o = f + 20;
        let magic = d.u16(o);
        let plus = magic == PE32_PLUS_MAGIC;
        // PE32+ has no BaseOfData and 8-byte ImageBase and stack/heap sizes.
        let wide = |at: usize| {
            if plus {
                d.u64(at)
            } else {
                u64::from(d.u32(at))
            }
        };
        let (image_base, after_base) = if plus {
            (d.u64(o + 24), o + 32)
        } else {
            (u64::from(d.u32(o + 28)), o + 32)
        };
        let w = if plus { 8 } else { 4 };
        let sizes = after_base + 40; // SizeOfStackReserve
        let optional = OptionalHeader {
            magic,
            major_linker_version: d.u8(o + 2),
            minor_linker_version: d.u8(o + 3),
            size_of_code: d.u32(o + 4),
            size_of_initialized_data: d.u32(o + 8),
            size_of_uninitialized_data: d.u32(o + 12),
            address_of_entry_point: d.u32(o + 16),
            base_of_code: d.u32(o + 20),
            base_of_data: if plus { 0 } else { d.u32(o + 24) },
            image_base,
            section_alignment: d.u32(after_base),
            file_alignment: d.u32(after_base + 4),
            major_operating_system_version: d.u16(after_base + 8),
            minor_operating_system_version: d.u16(after_base + 10),
            major_image_version: d.u16(after_base + 12),
            minor_image_version: d.u16(after_base + 14),
            major_subsystem_version: d.u16(after_base + 16),
            minor_subsystem_version: d.u16(after_base + 18),
            // after_base + 20: Win32VersionValue
            size_of_image: d.u32(after_base + 24),
            size_of_headers: d.u32(after_base + 28),
            check_sum: d.u32(after_base + 32),
            subsystem: d.u16(after_base + 36),
            dll_characteristics: d.u16(after_base + 38),
            size_of_stack_reserve: wide(sizes),
            size_of_stack_commit: wide(sizes + w),
            size_of_heap_reserve: wide(sizes + 2 * w),
            size_of_heap_commit: wide(sizes + 3 * w),
            loader_flags: d.u32(sizes + 4 * w),
            number_of_rva_and_sizes: d.u32(sizes + 4 * w + 4),
        };
        let dirs_at = sizes + 4 * w + 8;
        let optional_end = o + usize::from(file.size_of_optional_header);
        let n_dirs = (optional.number_of_rva_and_sizes.min(16) as usize)
            .min(optional_end.saturating_sub(dirs_at) / 8);
        let data_directories = (0..n_dirs)
            .map_while(|i| {
                let at = dirs_at + 8 * i;
                Some(DataDirectory {
                    rva: u32_at(bytes, at)?,
                    size: u32_at(bytes, at + 4)?,
                })
            })
            .collect();
        let table = optional_end;
        let sections: Vec<SectionHeader> = (0..usize::from(file.number_of_sections).min(96))
            .map_while(|i| {
                let at = table + 40 * i;
                let raw = bytes.get(at..at + 40)?;
                let name_bytes = &raw[..8];
                let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(8);
                Some(SectionHeader {
                    name: printable(&name_bytes[..end]),
                    virtual_size: u32_at(raw, 8)?,
                    virtual_address: u32_at(raw, 12)?,
                    size_of_raw_data: u32_at(raw, 16)?,
                    pointer_to_raw_data: u32_at(raw, 20)?,
                    characteristics: u32_at(raw, 36)?,
                })
            })
            .collect();
        let headers_end = table + 40 * sections.len();
        Ok(Headers {
            dos,
            file,
            optional,
            data_directories,
            sections,
            headers_end,
        })
    }

    /// Whether the file is 64-bit (PE32+).
    pub fn is_64(&self) -> bool {
        self.optional.magic == PE32_PLUS_MAGIC
    }

    /// A data directory, when present and non-empty.
    pub fn directory(&self, index: usize) -> Option<DataDirectory> {
        self.data_directories
            .get(index)
            .copied()
            .filter(|d| d.rva != 0 && d.size != 0)
    }

    /// The section holding relative virtual address `rva`.
    pub fn section_of_rva(&self, rva: u32) -> Option<&SectionHeader> {
        self.sections.iter().find(|s| {
            let size = s.virtual_size.max(s.size_of_raw_data);
            rva >= s.virtual_address
                && u64::from(rva) < u64::from(s.virtual_address) + u64::from(size)
        })
    }

    /// Where the sections' raw data ends in the file: anything after it is overlay.
    pub fn end_of_image_data(&self) -> usize {
        self.sections
            .iter()
            .filter(|s| s.size_of_raw_data > 0)
            .map(|s| s.pointer_to_raw_data as usize + s.size_of_raw_data as usize)
            .max()
            .unwrap_or(self.headers_end)
            .max(self.headers_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32 image: DOS header, PE header, optional header, one section.
    pub(crate) fn tiny_pe() -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0..2].copy_from_slice(b"MZ");
        b[60..64].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        let f = 0x84;
        b[f..f + 2].copy_from_slice(&0x14cu16.to_le_bytes()); // i386
        b[f + 2..f + 4].copy_from_slice(&1u16.to_le_bytes());
        b[f + 4..f + 8].copy_from_slice(&1_136_073_600u32.to_le_bytes()); // 2006-01-01
        b[f + 16..f + 18].copy_from_slice(&224u16.to_le_bytes());
        b[f + 18..f + 20].copy_from_slice(&0x0102u16.to_le_bytes());
        let o = f + 20;
        b[o..o + 2].copy_from_slice(&PE32_MAGIC.to_le_bytes());
        b[o + 16..o + 20].copy_from_slice(&0x1000u32.to_le_bytes()); // entry
        b[o + 28..o + 32].copy_from_slice(&0x40_0000u32.to_le_bytes()); // image base
        b[o + 92..o + 96].copy_from_slice(&16u32.to_le_bytes()); // NumberOfRvaAndSizes
        let s = o + 224;
        b[s..s + 5].copy_from_slice(b".text");
        b[s + 8..s + 12].copy_from_slice(&0x100u32.to_le_bytes());
        b[s + 12..s + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        b[s + 16..s + 20].copy_from_slice(&0x200u32.to_le_bytes());
        b[s + 20..s + 24].copy_from_slice(&0x200u32.to_le_bytes());
        b[s + 36..s + 40].copy_from_slice(&0x6000_0020u32.to_le_bytes());
        b
    }

    #[test]
    fn reads_a_minimal_pe() {
        let h = Headers::parse(&tiny_pe()).unwrap();
        assert_eq!(h.file.machine, 0x14c);
        assert_eq!(h.optional.image_base, 0x40_0000);
        assert_eq!(h.optional.address_of_entry_point, 0x1000);
        assert_eq!(h.sections.len(), 1);
        assert_eq!(h.sections[0].name, ".text");
        assert_eq!(h.section_of_rva(0x1010).unwrap().name, ".text");
        assert_eq!(h.end_of_image_data(), 0x400);
        assert!(!h.is_64());
    }

    #[test]
    fn hostile_headers_are_errors_or_padding_never_panics() {
        assert_eq!(Headers::parse(b""), Err(HeaderError::NoDosHeader));
        assert_eq!(Headers::parse(&[0u8; 100]), Err(HeaderError::NoDosHeader));
        let mut b = tiny_pe();
        b[60..64].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Headers::parse(&b),
            Err(HeaderError::NoPeSignature(u32::MAX))
        );
        // Cut inside the optional header: fields past the end read as zero, like pefile.
        let full = tiny_pe();
        let cut = &full[..0x84 + 20 + 20];
        let h = Headers::parse(cut).unwrap();
        assert_eq!(h.optional.address_of_entry_point, 0x1000);
        assert_eq!(h.optional.image_base, 0);
        assert!(h.sections.is_empty());
        // Every prefix parses or errs.
        for n in 0..full.len() {
            let _ = Headers::parse(&full[..n]);
        }
    }
}
