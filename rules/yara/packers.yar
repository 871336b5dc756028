/*
 * Vigil's default rules: packers and protectors. A packed file is not malicious by itself
 * (UPX is common in legitimate software), so these carry moderate scores; they are
 * evidence for the verdict, not a verdict.
 */

import "pe"

rule Packer_UPX : packer
{
    meta:
        description = "Packed with UPX (section names UPX0/UPX1)"
        score = 30
    condition:
        pe.is_pe and for any s in pe.sections : (s.name == "UPX0" or s.name == "UPX1")
}

rule Packer_ASPack : packer
{
    meta:
        description = "Packed with ASPack (.aspack/.adata sections)"
        score = 40
    condition:
        pe.is_pe and for any s in pe.sections : (s.name == ".aspack" or s.name == ".adata")
}

rule Packer_PEtite : packer
{
    meta:
        description = "Packed with PEtite (.petite section)"
        score = 40
    condition:
        pe.is_pe and for any s in pe.sections : (s.name == ".petite" or s.name == "petite")
}

rule Packer_MEW : packer
{
    meta:
        description = "Packed with MEW (a section named MEW)"
        score = 50
    condition:
        // MEW leaves bytes after the name's NUL: "MEW\0F\x12..."
        pe.is_pe and for any s in pe.sections : (s.name startswith "MEW\x00" or s.name == "MEW")
}

rule Packer_MPRESS : packer
{
    meta:
        description = "Packed with MPRESS (.MPRESS1/.MPRESS2 sections)"
        score = 40
    condition:
        pe.is_pe and for any s in pe.sections : (s.name == ".MPRESS1" or s.name == ".MPRESS2")
}

rule Protector_Themida_VMProtect : packer protector
{
    meta:
        description = "Protected with Themida or VMProtect (section names)"
        score = 50
    condition:
        pe.is_pe and for any s in pe.sections : (
            s.name == ".themida" or s.name == ".vmp0" or s.name == ".vmp1" or s.name == ".winlice")
}

rule Installer_NSIS : installer
{
    meta:
        description = "A Nullsoft (NSIS) installer: an archive that runs scripts (score low: very common)"
        score = 10
    strings:
        $magic = { EF BE AD DE 4E 75 6C 6C 73 6F 66 74 49 6E 73 74 }  // 0xDEADBEEF "NullsoftInst"
        $banner = "Nullsoft Install System" ascii wide
    condition:
        pe.is_pe and ($magic or $banner)
}
