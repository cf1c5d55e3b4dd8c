//! Shared fixtures: a small rule set, synthetic events, and the engine's own answer on them.
#![allow(dead_code)]
// Configurations are written setting by setting, as a reader compares them with the TOML.
#![allow(clippy::field_reassign_with_default)]

pub mod kafka;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use foundry_engine::EventOrigin;
use foundry_worker::{build_rule_set, WorkerConfig};
use serde_json::{json, Value};

/// Four rules with different shapes: contains, two-field selection, keyword, endswith + level.
pub const RULES: &[(&str, &str)] = &[
    (
        "powershell.yml",
        "title: Encoded PowerShell\nid: 11111111-1111-4111-8111-111111111111\nlevel: high\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  selection:\n    CommandLine|contains: '-enc'\n  condition: selection\n",
    ),
    (
        "admin_logon.yml",
        "title: Admin logon failure\nid: 22222222-2222-4222-8222-222222222222\nlevel: medium\nlogsource:\n  product: windows\n  service: security\ndetection:\n  selection:\n    EventID: 4625\n    TargetUserName: administrator\n  condition: selection\n",
    ),
    (
        "mimikatz.yml",
        "title: Mimikatz keyword\nid: 33333333-3333-4333-8333-333333333333\nlevel: critical\nlogsource:\n  product: windows\ndetection:\n  keywords:\n    - 'sekurlsa'\n  condition: keywords\n",
    ),
    (
        "lolbin.yml",
        "title: Rundll32 from temp\nid: 44444444-4444-4444-8444-444444444444\nlevel: low\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  selection:\n    Image|endswith: '\\rundll32.exe'\n    CommandLine|contains: '\\Temp\\'\n  condition: selection\n",
    ),
];

/// Writes the rules to `dir` and returns a files-mode configuration using them.
pub fn config_with_rules(dir: &Path) -> WorkerConfig {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for (name, text) in RULES {
        std::fs::write(rules.join(name), text).unwrap();
    }
    let mut c = WorkerConfig::default();
    c.rules = vec![rules];
    c
}

/// Event `i` of a deterministic synthetic stream; about a third match some rule.
pub fn event(i: u64) -> Value {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let users = ["alice", "bob", "administrator", "svc_backup"];
    let images = [
        "C:\\Windows\\System32\\cmd.exe",
        "C:\\Windows\\System32\\rundll32.exe",
        "C:\\Tools\\app.exe",
    ];
    let commands = [
        "cmd.exe /c whoami",
        "powershell.exe -enc SQBFAFgA",
        "rundll32.exe C:\\Users\\bob\\AppData\\Local\\Temp\\x.dll,Run",
        "notepad.exe report.txt",
        "mimikatz.exe sekurlsa::logonpasswords",
        "explorer.exe",
    ];
    json!({
        "EventID": if x.is_multiple_of(5) { 4625 } else { 4688 },
        "TargetUserName": users[(x % 4) as usize],
        "Image": images[(x / 7 % 3) as usize],
        "CommandLine": commands[(x / 3 % 6) as usize],
        "seq": i,
    })
}

/// The engine's own answer: (source partition, offset, rule id) for each hit, by evaluating
/// each event directly with a rule set built from the same configuration.
pub fn expected_hits(
    config: &WorkerConfig,
    events: &[(i32, i64, Vec<u8>)],
) -> BTreeSet<(i32, i64, String)> {
    let (set, _) = build_rule_set(config, false).unwrap();
    let mut out = BTreeSet::new();
    for (p, o, bytes) in events {
        let Ok(value) = foundry_engine::decode_event(bytes, config.max_event_bytes) else {
            continue;
        };
        let origin = EventOrigin {
            source: "x".into(),
            offset: *o as u64,
            ..EventOrigin::default()
        };
        for hit in set.evaluate(&value, &origin, None).hits {
            out.insert((*p, *o, hit.rule.id));
        }
    }
    out
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
