//! The conformance cases in `../shared/cases` as a data-driven test, run twice: through the
//! engine's API and through the `foundry scan` / `foundry rules check` binary. Each case's
//! expected outcome comes from the Sigma specification or the YARA-X documentation, quoted
//! in the case file's `why`.

use std::path::{Path, PathBuf};
use std::process::Command;

use foundry_engine::{EventOrigin, RuleSetBuilder, RuleSource, SourceKind, SourceMeta, YaraConfig};
use foundry_sigma::yaml::{load_documents, Node, NodeValue};
use serde_json::Value;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/cases")
}

fn to_json(node: &Node) -> Value {
    match &node.value {
        NodeValue::Null => Value::Null,
        NodeValue::Bool(b) => Value::Bool(*b),
        NodeValue::Int(i, _) => Value::from(*i),
        NodeValue::Float(f, _) => Value::from(*f),
        NodeValue::Str(s) => Value::String(s.clone()),
        NodeValue::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), to_json(v)))
                .collect(),
        ),
    }
}

struct Case {
    name: String,
    kind: String,
    rule: String,
    events: Vec<Value>,
    expect: Value,
}

fn load_cases() -> Vec<Case> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("../shared/cases beside the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yml"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let doc = to_json(&load_documents(&text).unwrap()[0]);
            Case {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                kind: doc["kind"].as_str().unwrap().to_string(),
                rule: doc["rule"].as_str().unwrap().to_string(),
                events: doc["events"].as_array().cloned().unwrap_or_default(),
                expect: doc["expect"].clone(),
            }
        })
        .collect()
}

fn compile_error_expected(case: &Case) -> bool {
    case.expect.get("compile_error").and_then(Value::as_bool) == Some(true)
}

/// The YARA cases give payloads as `{text: …}` or `{base64: …}`; they go in field `payload`.
fn yara_event(e: &Value) -> (Value, &'static str) {
    if let Some(t) = e.get("text") {
        (serde_json::json!({ "payload": t }), "text")
    } else {
        (serde_json::json!({ "payload": e["base64"] }), "base64")
    }
}

#[test]
fn every_case_passes_through_the_engine() {
    let cases = load_cases();
    assert!(cases.len() >= 17, "found only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let kind = if case.kind == "yara" {
            SourceKind::Yara
        } else {
            SourceKind::Sigma
        };
        let mut events: Vec<Value> = case.events.clone();
        let mut config = YaraConfig::default();
        if kind == SourceKind::Yara && !events.is_empty() {
            let enc = yara_event(&events[0]).1;
            config.payload_fields = vec![format!("payload:{enc}").parse().unwrap()];
            events = case.events.iter().map(|e| yara_event(e).0).collect();
        }
        let mut b = RuleSetBuilder::new().strict(true).yara_config(config);
        b.add_source(RuleSource {
            path: format!("{}.rule", case.name),
            text: case.rule.clone(),
            kind,
            meta: SourceMeta::default(),
        });
        let built = b.build();
        if compile_error_expected(case) {
            if built.is_ok() {
                failures.push(format!("{}: expected a compile error", case.name));
            }
            continue;
        }
        let set = match built {
            Ok((set, _)) => set,
            Err(e) => {
                failures.push(format!("{}: did not compile: {e}", case.name));
                continue;
            }
        };
        let want: Vec<bool> = case
            .expect
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        let got: Vec<bool> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let origin = EventOrigin {
                    source: "case".into(),
                    offset: i as u64,
                    ..Default::default()
                };
                !set.evaluate(e, &origin, None).hits.is_empty()
            })
            .collect();
        if got != want {
            failures.push(format!("{}: want {want:?} got {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_case_passes_through_the_command_line() {
    let foundry = env!("CARGO_BIN_EXE_foundry");
    let mut failures = Vec::new();
    for case in load_cases() {
        let dir = tempfile::tempdir().unwrap();
        let ext = if case.kind == "yara" { "yar" } else { "yml" };
        let rule = dir.path().join(format!("rule.{ext}"));
        std::fs::write(&rule, &case.rule).unwrap();
        if compile_error_expected(&case) {
            let out = Command::new(foundry)
                .args(["rules", "check", "--format", "json"])
                .arg(&rule)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let summary: Value =
                serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();
            if summary["failed"].as_array().is_none_or(|f| f.is_empty()) || out.status.success() {
                failures.push(format!(
                    "{}: expected a reported compile error, got {stdout}",
                    case.name
                ));
            }
            continue;
        }
        let events_path = dir.path().join("events.jsonl");
        let mut lines = String::new();
        let mut args: Vec<String> = vec!["scan".into()];
        if case.kind == "yara" {
            let enc = yara_event(&case.events[0]).1;
            for e in &case.events {
                lines.push_str(&yara_event(e).0.to_string());
                lines.push('\n');
            }
            args.extend([
                "--yara".into(),
                rule.display().to_string(),
                "--payload-field".into(),
                format!("payload:{enc}"),
            ]);
        } else {
            for e in &case.events {
                lines.push_str(&e.to_string());
                lines.push('\n');
            }
            args.extend(["--rules".into(), rule.display().to_string()]);
        }
        std::fs::write(&events_path, lines).unwrap();
        args.push(events_path.display().to_string());
        let out = Command::new(foundry).args(&args).output().unwrap();
        let mut hit = vec![false; case.events.len()];
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let h: Value = serde_json::from_str(line).unwrap();
            hit[h["event"]["offset"].as_u64().unwrap() as usize] = true;
        }
        let want: Vec<bool> = case
            .expect
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        if hit != want || !out.status.success() {
            failures.push(format!(
                "{}: want {want:?} got {hit:?} (status {}, stderr {})",
                case.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
