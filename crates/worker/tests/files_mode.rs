//! The embedded default: JSON Lines files through the same pipeline as Kafka.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use foundry_engine::DeadLetterReason;
use foundry_worker::Worker;
use serde_json::Value;

#[test]
fn files_mode_writes_the_engines_hits_and_dead_letters_each_bad_line() {
    let dir = common::tempdir();
    let mut config = common::config_with_rules(dir.path());
    config.batch_size = 64;
    config.max_in_flight = 256;
    let input = dir.path().join("events.jsonl");
    let mut lines: Vec<Vec<u8>> = (0..2000)
        .map(|i| serde_json::to_vec(&common::event(i)).unwrap())
        .collect();
    // Poison, one of each reason, between good lines.
    lines[100] = b"{\"EventID\": 4688, ".to_vec();
    lines[200] = b"[1, 2, 3]".to_vec();
    lines[300] = b"{\"CommandLine\": \"\xff\xfe\"}".to_vec();
    lines[400] = format!("{{\"pad\": \"{}\"}}", "x".repeat(10 << 20)).into_bytes(); // 10 MB, limit 1 MiB
    let mut text = Vec::new();
    for l in &lines {
        text.extend_from_slice(l);
        text.push(b'\n');
    }
    std::fs::write(&input, &text).unwrap();
    let input_name = input.display().to_string();
    config.files.input = vec![input_name.clone()];
    config.files.output = Some(dir.path().join("hits.jsonl").display().to_string());
    config.files.dead_letter_output = Some(dir.path().join("dead.jsonl").display().to_string());
    config.worker_id = Some("w-test".into());

    let events: Vec<(i32, i64, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (0, i as i64, l.clone()))
        .collect();
    let expected = common::expected_hits(&config, &events);
    assert!(
        expected.len() > 500,
        "the fixture should produce many hits, got {}",
        expected.len()
    );

    let worker = Worker::new(config).unwrap();
    let summary = worker.run().unwrap();
    assert_eq!(summary.events, 2000);
    assert_eq!(summary.unacknowledged, 0);

    let hits_text = std::fs::read_to_string(dir.path().join("hits.jsonl")).unwrap();
    let mut got = BTreeSet::new();
    for line in hits_text.lines() {
        let hit: Value = serde_json::from_str(line).unwrap();
        assert_eq!(hit["worker"], "w-test");
        assert_eq!(hit["event"]["source"], input_name.as_str());
        assert!(hit["ruleset"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()));
        assert!(hit["detected_at"].is_string() && hit["confidence"].is_u64());
        got.insert((
            0,
            hit["event"]["offset"].as_i64().unwrap(),
            hit["rule"]["id"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        hits_text.lines().count(),
        got.len(),
        "no duplicate hits in files mode"
    );
    assert_eq!(got, expected);

    let dead_text = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let reasons: BTreeMap<i64, String> = dead_text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["offset"].as_i64().unwrap(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeMap<i64, String> = [
        (100, "not_json"),
        (200, "not_object"),
        (300, "not_utf8"),
        (400, "too_large"),
    ]
    .into_iter()
    .map(|(o, r)| (o, r.to_string()))
    .collect();
    assert_eq!(reasons, want);
    let m = worker.metrics();
    for r in DeadLetterReason::ALL {
        assert_eq!(m.dead_letter_count(r), 1, "{}", r.as_str());
    }
    assert_eq!(m.events_consumed.get(), 2000);
}

/// The fixture's expected hits, which the delivery tests take from the engine, checked once
/// against a model of the four rules written out by hand from their texts.
#[test]
fn the_engines_answer_on_the_fixture_matches_a_hand_written_model() {
    let dir = common::tempdir();
    let config = common::config_with_rules(dir.path());
    let n = 3000u64;
    let events: Vec<(i32, i64, Vec<u8>)> = (0..n)
        .map(|i| (0, i as i64, serde_json::to_vec(&common::event(i)).unwrap()))
        .collect();
    let model = |e: &Value| {
        let s = |f: &str| e[f].as_str().unwrap_or("").to_lowercase();
        let mut ids = Vec::new();
        if s("CommandLine").contains("-enc") {
            ids.push("11111111-1111-4111-8111-111111111111");
        }
        if e["EventID"] == 4625 && s("TargetUserName") == "administrator" {
            ids.push("22222222-2222-4222-8222-222222222222");
        }
        let any_value = e.as_object().unwrap().values().any(|v| match v {
            Value::String(t) => t.to_lowercase().contains("sekurlsa"),
            other => other.to_string().contains("sekurlsa"),
        });
        if any_value {
            ids.push("33333333-3333-4333-8333-333333333333");
        }
        if s("Image").ends_with("\\rundll32.exe") && s("CommandLine").contains("\\temp\\") {
            ids.push("44444444-4444-4444-8444-444444444444");
        }
        ids
    };
    let mut want = BTreeSet::new();
    for (p, o, bytes) in &events {
        let e: Value = serde_json::from_slice(bytes).unwrap();
        for id in model(&e) {
            want.insert((*p, *o, id.to_string()));
        }
    }
    assert!(
        want.len() > 1000,
        "the model finds many hits: {}",
        want.len()
    );
    assert_eq!(common::expected_hits(&config, &events), want);
}
