/*
 * Vigil's default rules: structural oddities of PE files.
 */

import "pe"
import "math"

rule PE_Embedded_In_Overlay : dropper
{
    meta:
        description = "Another executable (MZ ... PE) in the first KiB after the last section"
        score = 55
    strings:
        $mz = "MZ"
    condition:
        // yara-x aligns the overlay's start to the file alignment, so look near it.
        pe.is_pe and pe.overlay.size > 64 and for any i in (1..#mz) : (
            @mz[i] >= pe.overlay.offset and @mz[i] < pe.overlay.offset + 1024
            and uint32(@mz[i] + uint32(@mz[i] + 0x3C)) == 0x00004550)
}

rule PE_Writable_Executable_Section : packer
{
    meta:
        description = "A section that is both writable and executable (self-modifying or unpacking code)"
        score = 30
    condition:
        pe.is_pe and for any s in pe.sections : (
            s.characteristics & pe.SECTION_MEM_WRITE != 0 and
            s.characteristics & pe.SECTION_MEM_EXECUTE != 0)
}

rule PE_High_Entropy_Code : packer
{
    meta:
        description = "The section holding the entry point is nearly random (entropy > 7.2): compressed or encrypted code"
        score = 35
    condition:
        pe.is_pe and for any s in pe.sections : (
            pe.entry_point >= s.raw_data_offset and pe.entry_point < s.raw_data_offset + s.raw_data_size
            and s.raw_data_size > 1024
            and math.entropy(s.raw_data_offset, s.raw_data_size) > 7.2)
}

rule PE_No_Imports_Not_DotNet : packer
{
    meta:
        description = "An executable that imports nothing (it must find its functions itself)"
        score = 35
    condition:
        pe.is_pe and pe.number_of_imports == 0 and not pe.is_dll()
        and pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR].virtual_address == 0
}
