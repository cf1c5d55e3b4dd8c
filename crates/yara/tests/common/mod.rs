//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use foundry_yara::{Payload, ScanLimits, YaraHit, YaraRuleSet, YaraSource};

/// The 68-byte EICAR test string, written out from its published definition.
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// SHA-256 of [`EICAR`], as published with the test file.
pub const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

/// The workspace root (`crates/yara/../..`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `shared/`, beside the workspace root (`/work/shared` next to `/work/main`, and the same
/// layout in CI).
pub fn shared_dir() -> PathBuf {
    workspace_root().join("../shared")
}

/// Compiles one in-memory rule text, panicking with the rendered errors.
pub fn compile_one(text: &str) -> YaraRuleSet {
    YaraRuleSet::compile(&[YaraSource::new("test.yar", text)]).unwrap_or_else(|errors| {
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("rule did not compile:\n{}", rendered.join("\n"))
    })
}

/// Scans raw bytes under default limits.
pub fn scan_bytes(set: &YaraRuleSet, bytes: &[u8]) -> Vec<YaraHit> {
    let payload = Payload::new("test", bytes.to_vec());
    set.scan(&payload, &ScanLimits::default())
        .expect("scan failed")
}

/// Identifiers of the hits.
pub fn identifiers(hits: &[YaraHit]) -> Vec<&str> {
    hits.iter().map(|h| h.identifier.as_str()).collect()
}
