/*
 * Vigil's default rules: well-known offensive tools and payload strings.
 */

rule Tool_Mimikatz : credential_access
{
    meta:
        description = "Mimikatz strings (credential dumping)"
        score = 90
        attack = "T1003.001"
    strings:
        $a = "sekurlsa::logonpasswords" ascii wide nocase
        $b = "gentilkiwi" ascii wide
        $c = "mimikatz" ascii wide nocase
        $d = "kerberos::golden" ascii wide nocase
        $e = "lsadump::" ascii wide nocase
    condition:
        2 of them
}

rule Miner_Stratum_Pool : miner
{
    meta:
        description = "A cryptocurrency miner's pool address (stratum protocol)"
        score = 60
        attack = "T1496"
    strings:
        $stratum = /stratum\+(tcp|ssl|tls):\/\/[a-zA-Z0-9.\-]{3,64}:[0-9]{2,5}/ ascii wide
        $xmrig = "xmrig" ascii wide nocase
        $donate = "donate-level" ascii
    condition:
        $stratum or ($xmrig and $donate)
}

rule Payload_Reverse_Shell_Strings : backdoor
{
    meta:
        description = "Reverse-shell one-liners embedded in a file"
        score = 60
        attack = "T1059.004"
    strings:
        $bash = /bash -i >& ?\/dev\/tcp\/[0-9.]{7,15}\/[0-9]{2,5}/ ascii
        $nc = /\bnc(at)? (-[a-z]+ )*-e \/bin\/(ba)?sh/ ascii
        $py = "socket.socket(socket.AF_INET,socket.SOCK_STREAM)" ascii
        $fifo = /mkfifo \/tmp\/[a-z0-9]{1,16}; *(cat|nc)/ ascii
    condition:
        any of them
}

rule Ransom_Note_Phrases : ransomware
{
    meta:
        description = "Phrases of ransom notes"
        score = 55
        attack = "T1486"
    strings:
        $a = "your files have been encrypted" ascii wide nocase
        $b = "all your files are encrypted" ascii wide nocase
        $c = "to decrypt your files" ascii wide nocase
        $d = "bitcoin" ascii wide nocase
        $e = ".onion" ascii wide nocase
    condition:
        ($a or $b or $c) and ($d or $e)
}
