//! Scanning: hits and their fields, limits (size, time, matched strings), threads.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{compile_one, identifiers, scan_bytes, workspace_root, EICAR, EICAR_SHA256};
use foundry_yara::{
    extract_payloads, Payload, PayloadSpec, ScanError, ScanLimits, YaraRuleSet, YaraSource,
};
use serde_json::json;

fn eicar_rules() -> YaraRuleSet {
    let path = workspace_root().join("rules/yara/eicar.yar");
    YaraRuleSet::compile(&[YaraSource::read(path).unwrap()]).unwrap()
}

#[test]
fn eicar_in_a_base64_event_field_is_found_with_field_and_sha256() {
    let encoded = base64::engine::general_purpose::STANDARD.encode(EICAR);
    let event = json!({"mail": {"attachments": [
        {"name": "readme.txt", "content_b64": base64::engine::general_purpose::STANDARD.encode("hello")},
        {"name": "eicar.com", "content_b64": encoded},
    ]}});
    let spec: PayloadSpec = "mail.attachments[].content_b64".parse().unwrap();
    let limits = ScanLimits::default();
    let (payloads, problems) = extract_payloads(&event, &[spec], &limits);
    assert!(problems.is_empty());
    assert_eq!(EICAR.len(), 68);

    let rules = eicar_rules();
    let hits: Vec<_> = payloads
        .iter()
        .flat_map(|p| rules.scan(p, &limits).expect("scan"))
        .collect();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.identifier, "EICAR_Test_String");
    assert_eq!(hit.namespace, "eicar");
    assert_eq!(hit.tags, ["test"]);
    assert_eq!(hit.payload_field, "mail.attachments[1].content_b64");
    assert_eq!(hit.payload_sha256, EICAR_SHA256);
    assert_eq!(hit.payload_size, 68);
    assert_eq!(hit.strings.len(), 1);
    assert_eq!(hit.strings[0].identifier, "$eicar");
    assert_eq!((hit.strings[0].offset, hit.strings[0].length), (0, 68));

    let json = serde_json::to_value(hit).unwrap();
    assert_eq!(json["payload_sha256"], EICAR_SHA256);
    assert_eq!(json["meta"]["tlp"], "TLP:CLEAR");
}

#[test]
fn private_rules_do_not_produce_hits() {
    let set = compile_one(
        "private rule helper { strings: $a = \"abc\" condition: $a }\n\
         rule public { condition: helper }",
    );
    assert_eq!(identifiers(&scan_bytes(&set, b"xxabcxx")), ["public"]);
}

#[test]
fn meta_tlp_and_confidence_helpers() {
    let set = compile_one(
        r#"rule a { meta: tlp = "amber+strict" score = 75 hash = "h1" hash = "h2" condition: true }
           rule b { meta: tlp = "TLP:WHITE" confidence = "60" condition: true }
           rule c { meta: tlp = "purple" confidence = 250 condition: true }
           rule d { condition: true }"#,
    );
    let hits = scan_bytes(&set, b"x");
    let by_id = |id: &str| hits.iter().find(|h| h.identifier == id).unwrap();
    assert_eq!(by_id("a").tlp().as_deref(), Some("TLP:AMBER+STRICT"));
    assert_eq!(by_id("a").confidence(), Some(75));
    assert_eq!(by_id("a").meta["hash"], json!(["h1", "h2"]));
    assert_eq!(by_id("b").tlp().as_deref(), Some("TLP:CLEAR"));
    assert_eq!(by_id("b").confidence(), Some(60));
    assert_eq!(by_id("c").tlp(), None);
    assert_eq!(by_id("c").confidence(), Some(100));
    assert_eq!(by_id("d").tlp(), None);
    assert_eq!(by_id("d").confidence(), None);
}

#[test]
fn matched_strings_are_bounded() {
    let set = compile_one("rule many { strings: $a = \"ab\" condition: #a > 10 }");
    let payload = Payload::new("p", b"ab".repeat(100));
    let limits = ScanLimits {
        max_matched_strings: 5,
        ..ScanLimits::default()
    };
    let hits = set.scan(&payload, &limits).unwrap();
    assert_eq!(hits[0].strings.len(), 5);
    assert!(hits[0].strings_truncated);
    let offsets: Vec<usize> = hits[0].strings.iter().map(|s| s.offset).collect();
    assert_eq!(offsets, [0, 2, 4, 6, 8]);
}

#[test]
fn payload_over_the_size_limit_is_not_scanned() {
    // A rule that matches anything: had the payload been scanned, it would hit.
    let set = compile_one("rule anything { condition: true }");
    let size = 50 * 1000 * 1000;
    // Built by hand to skip hashing 50 MB in a debug build; the hash plays no part here.
    let payload = Payload {
        field: "big".into(),
        bytes: vec![b'A'; size],
        sha256: String::new(),
    };
    let limits = ScanLimits::default();
    assert_eq!(
        set.scan(&payload, &limits),
        Err(ScanError::TooLarge {
            size,
            limit: 32 * 1024 * 1024
        })
    );
}

#[test]
fn costly_regex_on_a_large_payload_times_out() {
    // Every byte of the payload starts a candidate match of `a{2,3000}` that runs for up to
    // 3000 bytes and then fails for want of a `b`: billions of steps, far over one second.
    let set = compile_one("rule slow { strings: $a = /a{2,3000}b/ condition: $a }");
    let payload = Payload::new("p", vec![b'a'; 8 * 1024 * 1024]);
    let limits = ScanLimits {
        timeout: Duration::from_secs(1),
        ..ScanLimits::default()
    };
    assert_eq!(set.scan(&payload, &limits), Err(ScanError::Timeout));
    // The thread's scanner is reusable after a timeout.
    assert!(
        set.scan(&Payload::new("p", b"aab".to_vec()), &limits)
            .unwrap()
            .len()
            == 1
    );
}

#[test]
fn rule_sets_are_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<YaraRuleSet>();

    let rules = eicar_rules();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let rules = rules.clone();
            std::thread::spawn(move || {
                let bytes = if i % 2 == 0 {
                    EICAR.to_vec()
                } else {
                    b"clean".to_vec()
                };
                rules
                    .scan(&Payload::new("p", bytes), &ScanLimits::default())
                    .unwrap()
                    .len()
            })
        })
        .collect();
    let counts: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(counts, [1, 0, 1, 0]);
}

#[test]
fn one_thread_cycling_through_rule_sets_uses_the_right_rules() {
    // More sets than the per-thread scanner cache holds, so scanners are evicted and rebuilt.
    let sets: Vec<_> = (0..6)
        .map(|i| compile_one(&format!("rule from_{i} {{ condition: true }}")))
        .collect();
    for _ in 0..3 {
        for (i, set) in sets.iter().enumerate() {
            assert_eq!(identifiers(&scan_bytes(set, b"x")), [format!("from_{i}")]);
        }
    }
}

#[test]
fn empty_payload_matches_only_content_free_rules() {
    let set = eicar_rules();
    assert!(scan_bytes(&set, b"").is_empty());
}
