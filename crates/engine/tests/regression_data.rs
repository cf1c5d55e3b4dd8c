//! SigmaHQ's regression data as a test: every rule with test data must fire on its events,
//! `match_count` times where the data says so. The expected counts are SigmaHQ's own.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use foundry_engine::input::json_documents;
use foundry_engine::{EventOrigin, RuleSet, RuleSetBuilder};
use foundry_sigma::yaml::load_documents;

struct Case {
    rule_id: String,
    json: PathBuf,
    match_count: Option<usize>,
}

fn cases(root: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("sigma/regression_data")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("regression data folder") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.file_name().and_then(|n| n.to_str()) != Some("info.yml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let doc = &load_documents(&text).unwrap()[0];
            let rule_id = doc.get("rule_metadata").and_then(|m| match &m.value {
                foundry_sigma::yaml::NodeValue::Seq(items) => {
                    items[0].get("id").and_then(|i| i.scalar_text())
                }
                _ => None,
            });
            let Some(tests) = doc.get("regression_tests_info") else {
                continue;
            };
            let foundry_sigma::yaml::NodeValue::Seq(tests) = &tests.value else {
                continue;
            };
            for t in tests {
                if t.get("type").and_then(|v| v.as_str()) != Some("evtx") {
                    continue;
                }
                let evtx = t.get("path").and_then(|p| p.as_str()).unwrap();
                let json = root.join("sigma").join(evtx).with_extension("json");
                let match_count = t
                    .get("match_count")
                    .and_then(|m| m.scalar_text())
                    .and_then(|m| m.parse().ok());
                out.push(Case {
                    rule_id: rule_id.clone().unwrap(),
                    json,
                    match_count,
                });
            }
        }
    }
    out.sort_by(|a, b| a.json.cmp(&b.json));
    out
}

/// Tests whose `match_count` disagrees with the specification, checked by hand on the events
/// (same counts on the .evtx): (rule id, correct count, why).
const STALE_MATCH_COUNTS: &[(&str, usize, &str)] = &[
    ("0b9ad457-2554-44c1-82c2-d56a99c42377", 3, "3 of 5 TargetFilename values contain '\\AppData\\Roaming\\AnyDesk\\user.conf'"),
    ("8fbf3271-1ef6-4e94-8210-03c2317947f6", 3, "procdump.exe, procdump64.exe, procdump64a.exe end with listed names; the :Zone.Identifier files do not"),
    ("45e112d0-7759-4c2a-aa36-9f8fb79d3393", 3, "3 ZoneMap\\Domains writes of DWORD 2, none filtered"),
    ("c7dcacd0-cc59-4004-b0a4-1d6cdebe6f3e", 2, "AutoShareServer and AutoShareWks both set to DWORD 0"),
];

fn corpus_rules(indexing: bool) -> RuleSet {
    let root = common::shared().join("corpus/sigma");
    let mut b = RuleSetBuilder::new().mapping(common::windows_mapping());
    for dir in [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-compliance",
        "rules-placeholder",
    ] {
        b.add_sigma_path(&root.join(dir)).unwrap();
    }
    let (mut set, report) = b.build().unwrap();
    assert!(
        report.failed.is_empty(),
        "corpus rules failed: {:?}",
        report.failed
    );
    set.set_indexing(indexing);
    set
}

fn run(set: &RuleSet) {
    let cases = cases(&common::shared().join("corpus"));
    assert!(
        cases.len() >= 200,
        "expected SigmaHQ's ~202 regression tests, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let bytes =
            std::fs::read(&case.json).unwrap_or_else(|e| panic!("{}: {e}", case.json.display()));
        let mut count = 0usize;
        let mut by_rule: HashMap<String, usize> = HashMap::new();
        for record in json_documents(&bytes) {
            let event = record
                .event
                .unwrap_or_else(|e| panic!("{}: {e}", case.json.display()));
            let origin = EventOrigin {
                source: case.json.display().to_string(),
                offset: record.offset,
                ..Default::default()
            };
            let hits = set.evaluate(&event, &origin, None).hits;
            // The same event as a JSON Lines record, decoded straight into rule values, must
            // hit the same rules.
            let text = serde_json::to_vec(&event).unwrap();
            let direct = set
                .evaluate_bytes(&text, usize::MAX, &origin, None)
                .unwrap_or_else(|e| panic!("{}: {e}", case.json.display()));
            let ids = |hits: &[foundry_engine::Hit]| {
                hits.iter().map(|h| h.rule.id.clone()).collect::<Vec<_>>()
            };
            assert_eq!(ids(&direct.hits), ids(&hits), "{}", case.json.display());
            for hit in hits {
                *by_rule.entry(hit.rule.id.clone()).or_default() += 1;
                if hit.rule.id == case.rule_id {
                    count += 1;
                }
            }
        }
        let stale = STALE_MATCH_COUNTS
            .iter()
            .find(|(id, _, _)| *id == case.rule_id)
            .map(|(_, n, _)| *n);
        let ok = match stale.or(case.match_count) {
            Some(n) => count == n,
            None => count >= 1,
        };
        if !ok {
            failures.push(format!(
                "{} ({}): want {:?} hits, got {count}",
                case.rule_id,
                case.json.display(),
                case.match_count
                    .map_or("at least 1".to_string(), |n| n.to_string())
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} regression tests failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_regression_test_fires_with_routing_and_prefilter() {
    run(&corpus_rules(true));
}

#[test]
fn every_regression_test_fires_with_indexing_off() {
    run(&corpus_rules(false));
}
