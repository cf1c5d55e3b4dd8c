//! YARA-X on payloads attached to events, through the `foundry` binary: the EICAR test
//! string found by the shipped rule via `foundry scan` and via `foundry worker`, and a payload
//! that cannot be decoded reported with its event while the event's other hits still count.
//!
//! Expected values are facts, not our output: the 68-byte EICAR string as EICAR publishes it,
//! and its published SHA-256.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_foundry");
/// The EICAR anti-virus test string (68 bytes).
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// Its SHA-256, as published with it.
const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Three events: no payload, a mail with a harmless attachment and EICAR as the second one,
/// and one whose attachment is not base64.
fn write_events(dir: &Path) -> PathBuf {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let events = [
        json!({"Channel": "Mail", "Subject": "hello"}),
        json!({"Channel": "Mail", "Subject": "invoice", "attachments": [
            {"name": "readme.txt", "content_b64": b64("just text")},
            {"name": "eicar.com", "content_b64": b64(EICAR)}]}),
        json!({"Channel": "Mail", "Subject": "broken", "attachments": [
            {"name": "x.bin", "content_b64": "this is %%% not base64"}]}),
    ];
    let path = dir.join("mail.jsonl");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn yara_hits(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|h| h["rule"]["kind"] == "yara")
        .collect()
}

fn assert_eicar_hit(hits: &[Value]) {
    assert_eq!(hits.len(), 1, "exactly one YARA hit: {hits:?}");
    let hit = &hits[0];
    assert_eq!(hit["rule"]["title"], "EICAR_Test_String");
    assert_eq!(hit["rule"]["id"], "eicar:EICAR_Test_String");
    assert_eq!(hit["event"]["offset"], 1);
    assert_eq!(hit["payload"]["sha256"], EICAR_SHA256);
    assert_eq!(hit["payload"]["field"], "attachments[1].content_b64");
    assert_eq!(hit["payload"]["size"], 68);
}

#[test]
fn eicar_attached_as_base64_is_found_by_foundry_scan() {
    let dir = tempfile::tempdir().unwrap();
    let events = write_events(dir.path());
    let out = Command::new(BIN)
        .current_dir(repo())
        .args([
            "scan",
            "--yara",
            "rules/yara",
            "--payload-field",
            "attachments[].content_b64",
        ])
        .arg(&events)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eicar_hit(&yara_hits(&stdout));
    // The undecodable attachment is named with its event, and nothing else went wrong.
    assert!(
        stderr.contains("event 2: payload attachments[0].content_b64 not scanned: undecodable"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn eicar_attached_as_base64_is_found_by_foundry_worker() {
    let dir = tempfile::tempdir().unwrap();
    let events = write_events(dir.path());
    let hits = dir.path().join("hits.jsonl");
    let out = Command::new(BIN)
        .current_dir(repo())
        .args([
            "worker",
            "--yara",
            "rules/yara",
            "--payload-field",
            "attachments[].content_b64",
        ])
        .args(["--worker-id", "w-eicar", "--input"])
        .arg(&events)
        .arg("--output")
        .arg(&hits)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&hits).unwrap();
    let found = yara_hits(&text);
    assert_eicar_hit(&found);
    assert_eq!(found[0]["worker"], "w-eicar");
    assert_eq!(
        found[0]["confidence"], 100,
        "the rule's own meta confidence"
    );
    assert_eq!(found[0]["tlp"], "TLP:CLEAR");
}
