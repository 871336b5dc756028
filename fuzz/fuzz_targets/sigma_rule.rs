//! Sigma rules come from rule folders an admin points Vigil at (SigmaHQ's, a vendor's, a
//! colleague's): any bytes must load as a rule or be refused with a reason, and a loaded rule
//! must evaluate on records without a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_sigma::fuzz_rule(data);
});
