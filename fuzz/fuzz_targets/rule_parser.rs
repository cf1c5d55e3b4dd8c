//! Any bytes, read as a Sigma file: parsing and checking must return, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = foundry_sigma::parse_documents(&text);
    let _ = foundry_sigma::check_text(&text, &Default::default());
});
