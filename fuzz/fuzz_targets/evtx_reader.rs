//! EVTX logs come from uploads and disks of compromised hosts: any bytes must read as records
//! and `Err` items (never a panic, a hang or unbounded memory). libfuzzer-sys aborts on any
//! panic, even one the reader catches, so a panic inside the evtx crate is still found here.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_evtx::fuzz_bytes(data);
});
