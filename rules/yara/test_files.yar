/*
 * Vigil's default rules: test files.
 *
 * The EICAR string is written as two hex halves so that this file is not itself an EICAR
 * test file to an antivirus scanner.
 */

rule EICAR_Test_File : test
{
    meta:
        description = "The EICAR antivirus test file (harmless)"
        score = 100
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
    strings:
        $first_half = { 58 35 4F 21 50 25 40 41 50 5B 34 5C 50 5A 58 35 34 28 50 5E 29 37 43 43 29 37 7D 24 45 49 43 41 52 2D }
        $second_half = { 53 54 41 4E 44 41 52 44 2D 41 4E 54 49 56 49 52 55 53 2D 54 45 53 54 2D 46 49 4C 45 21 24 48 2B 48 2A }
    condition:
        $first_half at 0 and $second_half at 34 and filesize <= 128
}

rule EICAR_Test_String_Embedded : test
{
    meta:
        description = "The EICAR test string inside a larger file (an archive or a test harness)"
        score = 40
    strings:
        $first_half = { 58 35 4F 21 50 25 40 41 50 5B 34 5C 50 5A 58 35 34 28 50 5E 29 37 43 43 29 37 7D 24 45 49 43 41 52 2D }
        $second_half = { 53 54 41 4E 44 41 52 44 2D 41 4E 54 49 56 49 52 55 53 2D 54 45 53 54 2D 46 49 4C 45 21 24 48 2B 48 2A }
    condition:
        $first_half and $second_half and @second_half[1] == @first_half[1] + 34
        and not ($first_half at 0 and filesize <= 128)
}
