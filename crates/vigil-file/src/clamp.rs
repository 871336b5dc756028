//! ClaMP's raw PE-header features: the 53 numeric fields of `ClaMP_Raw` (its `e_res` and
//! `e_res2` columns are always empty and are left out), computed from real PE bytes the way
//! ClaMP computed them with `pefile`, so that a model trained on ClaMP's CSV scores files.

use crate::headers::Headers;

/// The features, in ClaMP's CSV column order.
pub const FEATURES: [&str; 53] = [
    "e_magic",
    "e_cblp",
    "e_cp",
    "e_crlc",
    "e_cparhdr",
    "e_minalloc",
    "e_maxalloc",
    "e_ss",
    "e_sp",
    "e_csum",
    "e_ip",
    "e_cs",
    "e_lfarlc",
    "e_ovno",
    "e_oemid",
    "e_oeminfo",
    "e_lfanew",
    "Machine",
    "NumberOfSections",
    "CreationYear",
    "PointerToSymbolTable",
    "NumberOfSymbols",
    "SizeOfOptionalHeader",
    "Characteristics",
    "Magic",
    "MajorLinkerVersion",
    "MinorLinkerVersion",
    "SizeOfCode",
    "SizeOfInitializedData",
    "SizeOfUninitializedData",
    "AddressOfEntryPoint",
    "BaseOfCode",
    "BaseOfData",
    "ImageBase",
    "SectionAlignment",
    "FileAlignment",
    "MajorOperatingSystemVersion",
    "MinorOperatingSystemVersion",
    "MajorImageVersion",
    "MinorImageVersion",
    "MajorSubsystemVersion",
    "MinorSubsystemVersion",
    "SizeOfImage",
    "SizeOfHeaders",
    "CheckSum",
    "Subsystem",
    "DllCharacteristics",
    "SizeOfStackReserve",
    "SizeOfStackCommit",
    "SizeOfHeapReserve",
    "SizeOfHeapCommit",
    "LoaderFlags",
    "NumberOfRvaAndSizes",
];

/// The UTC calendar date `(year, month, day)` of a Unix timestamp.
pub fn civil_date(unix_seconds: u32) -> (i64, i64, i64) {
    // Howard Hinnant's days-to-civil algorithm.
    let days = i64::from(unix_seconds) / 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The UTC calendar year of a Unix timestamp (ClaMP's `CreationYear`, from
/// `TimeDateStamp`).
pub fn year_of(unix_seconds: u32) -> i64 {
    civil_date(unix_seconds).0
}

/// The feature vector of a PE file's headers, in [`FEATURES`] order, as models take it.
pub fn vector(h: &Headers) -> Vec<f32> {
    values(h).into_iter().map(|v| v as f32).collect()
}

/// The exact values of the features (checksums and image bases do not fit an `f32`).
pub fn values(h: &Headers) -> Vec<f64> {
    let (d, f, o) = (&h.dos, &h.file, &h.optional);
    [
        f64::from(d.e_magic),
        f64::from(d.e_cblp),
        f64::from(d.e_cp),
        f64::from(d.e_crlc),
        f64::from(d.e_cparhdr),
        f64::from(d.e_minalloc),
        f64::from(d.e_maxalloc),
        f64::from(d.e_ss),
        f64::from(d.e_sp),
        f64::from(d.e_csum),
        f64::from(d.e_ip),
        f64::from(d.e_cs),
        f64::from(d.e_lfarlc),
        f64::from(d.e_ovno),
        f64::from(d.e_oemid),
        f64::from(d.e_oeminfo),
        f64::from(d.e_lfanew),
        f64::from(f.machine),
        f64::from(f.number_of_sections),
        year_of(f.time_date_stamp) as f64,
        f64::from(f.pointer_to_symbol_table),
        f64::from(f.number_of_symbols),
        f64::from(f.size_of_optional_header),
        f64::from(f.characteristics),
        f64::from(o.magic),
        f64::from(o.major_linker_version),
        f64::from(o.minor_linker_version),
        f64::from(o.size_of_code),
        f64::from(o.size_of_initialized_data),
        f64::from(o.size_of_uninitialized_data),
        f64::from(o.address_of_entry_point),
        f64::from(o.base_of_code),
        f64::from(o.base_of_data),
        o.image_base as f64,
        f64::from(o.section_alignment),
        f64::from(o.file_alignment),
        f64::from(o.major_operating_system_version),
        f64::from(o.minor_operating_system_version),
        f64::from(o.major_image_version),
        f64::from(o.minor_image_version),
        f64::from(o.major_subsystem_version),
        f64::from(o.minor_subsystem_version),
        f64::from(o.size_of_image),
        f64::from(o.size_of_headers),
        f64::from(o.check_sum),
        f64::from(o.subsystem),
        f64::from(o.dll_characteristics),
        o.size_of_stack_reserve as f64,
        o.size_of_stack_commit as f64,
        o.size_of_heap_reserve as f64,
        o.size_of_heap_commit as f64,
        f64::from(o.loader_flags),
        f64::from(o.number_of_rva_and_sizes),
    ]
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_from_timestamps() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(1_136_073_599), 2005); // 2005-12-31T23:59:59Z
        assert_eq!(year_of(1_136_073_600), 2006);
        assert_eq!(year_of(951_782_400), 2000); // 2000-02-29
        assert_eq!(year_of(u32::MAX), 2106);
    }

    #[test]
    fn one_value_per_feature() {
        let h = Headers::default();
        assert_eq!(vector(&h).len(), FEATURES.len());
    }
}
