"""Regenerates clamp_pefile.json: ClaMP's raw features of the harmless PE test files,
computed with pefile as ClaMP did, for crates/vigil-file/tests/clamp_golden.rs.

    python3 -m pip install pefile   # 2024.8.26 was used
    python3 crates/vigil-file/tests/golden/clamp_pefile.py /usr/share/clamav-testfiles \
        > crates/vigil-file/tests/golden/clamp_pefile.json

Only file names and numbers are written; the executables themselves come from Debian's
clamav-testfiles package at test time.
"""
import datetime
import json
import os
import sys

import pefile

FIELDS = [
    ("DOS_HEADER", f) for f in ["e_magic", "e_cblp", "e_cp", "e_crlc", "e_cparhdr", "e_minalloc",
                                "e_maxalloc", "e_ss", "e_sp", "e_csum", "e_ip", "e_cs", "e_lfarlc",
                                "e_ovno", "e_oemid", "e_oeminfo", "e_lfanew"]
] + [
    ("FILE_HEADER", f) for f in ["Machine", "NumberOfSections", "CreationYear",
                                 "PointerToSymbolTable", "NumberOfSymbols", "SizeOfOptionalHeader",
                                 "Characteristics"]
] + [
    ("OPTIONAL_HEADER", f) for f in [
        "Magic", "MajorLinkerVersion", "MinorLinkerVersion", "SizeOfCode", "SizeOfInitializedData",
        "SizeOfUninitializedData", "AddressOfEntryPoint", "BaseOfCode", "BaseOfData", "ImageBase",
        "SectionAlignment", "FileAlignment", "MajorOperatingSystemVersion",
        "MinorOperatingSystemVersion", "MajorImageVersion", "MinorImageVersion",
        "MajorSubsystemVersion", "MinorSubsystemVersion", "SizeOfImage", "SizeOfHeaders",
        "CheckSum", "Subsystem", "DllCharacteristics", "SizeOfStackReserve", "SizeOfStackCommit",
        "SizeOfHeapReserve", "SizeOfHeapCommit", "LoaderFlags", "NumberOfRvaAndSizes"]
]


def features(pe):
    out = []
    for header, field in FIELDS:
        if field == "CreationYear":
            ts = pe.FILE_HEADER.TimeDateStamp
            out.append(datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).year)
        else:
            out.append(getattr(getattr(pe, header), field, 0))
    return out


def main(folder):
    result = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        try:
            pe = pefile.PE(path, fast_load=True)
        except pefile.PEFormatError:
            continue
        result[name] = features(pe)
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


main(sys.argv[1])
