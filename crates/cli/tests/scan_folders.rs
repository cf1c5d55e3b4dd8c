//! `foundry scan` given a folder reads the event files in it and its subfolders, in path
//! order, and nothing else; a folder without event files is an error in the exit status.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_foundry");

const RULE: &str = "title: Marker\nid: 0b7d6c1e-3f7a-4c55-9a0e-7b1d2c3e4f50\nlogsource: {product: test}\ndetection:\n  s:\n    Marker: hit\n  condition: s\n";

/// Runs `foundry scan --rules RULES INPUT`.
fn scan(rules: &Path, input: &Path) -> std::process::Output {
    Command::new(BIN)
        .arg("scan")
        .arg("--rules")
        .arg(rules)
        .arg(input)
        .output()
        .unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_folder_input_is_every_event_file_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules/marker.yml");
    write(&rules, RULE);
    let events = dir.path().join("events");
    write(
        &events.join("b.jsonl"),
        "{\"Marker\":\"hit\"}\n{\"Marker\":\"miss\"}\n",
    );
    write(&events.join("a/deeper/c.json"), "{\"Marker\":\"hit\"}\n");
    write(&events.join("a.ndjson"), "{\"Marker\":\"hit\"}\n");
    // Not event files: another extension, and a hidden editor file.
    write(&events.join("notes.txt"), "{\"Marker\":\"hit\"}\n");
    write(&events.join(".b.jsonl.swp"), "{\"Marker\":\"hit\"}\n");
    let out = scan(&rules, &events);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let sources: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|h| h["event"]["source"].as_str().unwrap().to_string())
        .collect();
    // Path order compares component by component: the folder `a` before `a.ndjson` before
    // `b.jsonl`. One hit each; four events read (the `miss` line too).
    let names: Vec<&str> = sources
        .iter()
        .map(|s| Path::new(s).file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["c.json", "a.ndjson", "b.jsonl"], "stderr: {stderr}");
    assert!(
        stderr.contains("4 events, 3 hits") && stderr.contains("from 3 input(s)"),
        "{stderr}"
    );
}

#[test]
fn a_folder_without_event_files_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules/marker.yml");
    write(&rules, RULE);
    let empty = dir.path().join("empty");
    write(&empty.join("readme.md"), "no events here\n");
    let out = scan(&rules, &empty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("empty: the folder holds no event files"),
        "{stderr}"
    );
}
