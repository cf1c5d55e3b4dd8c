//! The pathological pair of the YARA issue: a payload over the size limit and a costly regex
//! over a large payload. Each is refused or cut off, counted by reason, and the rest of the
//! batch — including another payload of the same event — goes on.

// Configurations are written setting by setting, as a reader compares them with the TOML.
#![allow(clippy::field_reassign_with_default)]

mod common;

use base64::Engine as _;
use foundry_worker::Worker;
use serde_json::{json, Value};

const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

#[test]
fn a_huge_payload_and_a_slow_scan_are_counted_and_the_batch_goes_on() {
    let dir = common::tempdir();
    let yara = dir.path().join("yara");
    std::fs::create_dir_all(&yara).unwrap();
    std::fs::write(
        yara.join("eicar.yar"),
        "rule eicar { strings: $a = \"EICAR-STANDARD\" condition: $a }\n",
    )
    .unwrap();
    // Every byte of a run of `a`s starts a candidate match that runs far and then fails.
    std::fs::write(
        yara.join("slow.yar"),
        "rule slow { strings: $a = /a{2,3000}b/ condition: $a }\n",
    )
    .unwrap();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let events = [
        json!({"n": 0, "payload": [b64(&vec![b'x'; 50 * 1000 * 1000])]}),
        json!({"n": 1, "payload": [b64(&vec![b'a'; 8 << 20]), b64(EICAR.as_bytes())]}),
        json!({"n": 2, "payload": [b64(EICAR.as_bytes())]}),
    ];
    let input = dir.path().join("events.jsonl");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&input, text).unwrap();

    let mut config = foundry_worker::WorkerConfig::default();
    config.yara = vec![yara];
    config.payload_fields = vec!["payload[]".into()];
    config.yara_scan.timeout_secs = 1;
    config.yara_scan.max_payload_bytes = 32 << 20;
    config.max_event_bytes = 100 << 20;
    config.reload.watch = false;
    config.files.input = vec![input.display().to_string()];
    let hits_path = dir.path().join("hits.jsonl");
    config.files.output = Some(hits_path.display().to_string());
    config.files.dead_letter_output = Some(dir.path().join("dead.jsonl").display().to_string());

    let worker = Worker::new(config).unwrap();
    let summary = worker.run().unwrap();
    assert_eq!((summary.events, summary.dead_letters), (3, 0));
    let problems = &worker.metrics().payload_problems;
    assert_eq!(
        problems.with_label_values(&["too_large"]).get(),
        1,
        "the 50 MB payload"
    );
    assert_eq!(
        problems.with_label_values(&["timeout"]).get(),
        1,
        "the slow scan"
    );
    let hits: Vec<Value> = std::fs::read_to_string(&hits_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got: Vec<(u64, String)> = hits
        .iter()
        .map(|h| {
            (
                h["event"]["offset"].as_u64().unwrap(),
                h["payload"]["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![(1, "payload[1]".to_string()), (2, "payload[0]".to_string())],
        "EICAR beside the slow payload, and in the next event"
    );
}
