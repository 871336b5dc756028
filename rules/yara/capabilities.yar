/*
 * Vigil's default rules: import combinations that malware capabilities need. Each also has
 * legitimate users (debuggers, security tools, installers): scores are moderate.
 */

import "pe"

rule Capability_Process_Injection : injection
{
    meta:
        description = "Imports for remote thread injection: VirtualAllocEx + WriteProcessMemory + CreateRemoteThread"
        score = 60
        attack = "T1055.002"
    condition:
        pe.imports(/kernel32\.dll/i, /^VirtualAllocEx$/) > 0
        and pe.imports(/kernel32\.dll/i, /^WriteProcessMemory$/) > 0
        and pe.imports(/kernel32\.dll/i, /^CreateRemoteThread(Ex)?$/) > 0
}

rule Capability_Process_Hollowing : injection
{
    meta:
        description = "Imports for process hollowing: WriteProcessMemory + SetThreadContext + ResumeThread"
        score = 45
        attack = "T1055.012"
    condition:
        pe.imports(/kernel32\.dll/i, /^WriteProcessMemory$/) > 0
        and pe.imports(/kernel32\.dll/i, /^(Wow64)?SetThreadContext$/) > 0
        and pe.imports(/kernel32\.dll/i, /^ResumeThread$/) > 0
}

rule Capability_Keylogger : keylogger
{
    meta:
        description = "Imports for keystroke capture: SetWindowsHookEx + GetAsyncKeyState/GetKeyState"
        score = 50
        attack = "T1056.001"
    condition:
        pe.imports(/user32\.dll/i, /^SetWindowsHookEx[AW]$/) > 0
        and pe.imports(/user32\.dll/i, /^(GetAsyncKeyState|GetKeyState|GetKeyboardState)$/) > 0
}

rule Capability_Download_Execute : downloader
{
    meta:
        description = "Downloads a file and runs it: URLDownloadToFile + WinExec/ShellExecute/CreateProcess"
        score = 50
        attack = "T1105"
    condition:
        pe.imports(/urlmon\.dll/i, /^URLDownloadToFile[AW]$/) > 0
        and (pe.imports(/kernel32\.dll/i, /^(WinExec|CreateProcess[AW])$/) > 0
             or pe.imports(/shell32\.dll/i, /^ShellExecute(Ex)?[AW]$/) > 0)
}

rule Capability_Runtime_Import_Resolution : packer
{
    meta:
        description = "Imports only LoadLibrary and GetProcAddress (and a few more): the real imports are resolved at run time"
        score = 30
    condition:
        pe.number_of_imported_functions <= 6
        and pe.imports(/kernel32\.dll/i, /^LoadLibrary(Ex)?[AW]$/) > 0
        and pe.imports(/kernel32\.dll/i, /^GetProcAddress$/) > 0
}
