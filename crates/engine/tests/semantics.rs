//! Sigma semantics, one test per kind of fault the conformance cases stand for, with the
//! neighbours of each case. Every expectation is read off the Sigma specification (v2,
//! "General", "Escape Character", "Condition", modifiers appendix) or worked out by hand.

mod common;

use foundry_engine::{RuleSetBuilder, RuleSource, SourceKind, SourceMeta};
use serde_json::Value;

fn rule(detection: &str) -> String {
    format!("title: t\nlogsource: {{product: test}}\ndetection:\n{detection}")
}

fn check(detection: &str, events: &[&str], want: &[bool]) {
    let text = rule(detection);
    let set = common::set_from_texts(&[&text]);
    let events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(common::hits(&set, &events), want, "rule:\n{text}");
}

fn compile_error(detection: &str) -> String {
    let mut b = RuleSetBuilder::new().strict(true);
    b.add_source(RuleSource {
        path: "r.yml".into(),
        text: rule(detection),
        kind: SourceKind::Sigma,
        meta: SourceMeta::default(),
    });
    match b.build() {
        Ok(_) => panic!("expected a compile error for:\n{detection}"),
        Err(e) => e.to_string(),
    }
}

// Case 001: escapes.
#[test]
fn escapes_and_wildcards() {
    // `\*` is a literal star, `\?` a literal question mark.
    check(
        "  s:\n    F: 'a\\*b'\n  condition: s",
        &[r#"{"F":"a*b"}"#, r#"{"F":"axb"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F: 'a\\?'\n  condition: s",
        &[r#"{"F":"a?"}"#, r#"{"F":"ab"}"#],
        &[true, false],
    );
    // `\\` is one backslash; `\\\\` two.
    check(
        "  s:\n    F: 'a\\\\\\\\b'\n  condition: s",
        &[r#"{"F":"a\\\\b"}"#, r#"{"F":"a\\b"}"#],
        &[true, false],
    );
    // A trailing backslash is plain.
    check(
        "  s:\n    F: 'C:\\'\n  condition: s",
        &[r#"{"F":"c:\\"}"#],
        &[true],
    );
    // `*` alone matches any present value, even empty, but not an absent field.
    check(
        "  s:\n    F: '*'\n  condition: s",
        &[r#"{"F":""}"#, r#"{"G":"x"}"#],
        &[true, false],
    );
}

// Case 003: modifiers wrap the parsed value in wildcards; they never re-read escapes.
#[test]
fn position_modifiers_after_trailing_backslash() {
    check(
        "  s:\n    F|startswith: 'C:\\Temp\\'\n  condition: s",
        &[r#"{"F":"c:\\temp\\x"}"#, r#"{"F":"C:\\Temp*"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F|endswith: '\\'\n  condition: s",
        &[r#"{"F":"x\\"}"#, r#"{"F":"x"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F|contains: 'a\\*'\n  condition: s",
        &[r#"{"F":"xa*y"}"#, r#"{"F":"xaby"}"#],
        &[true, false],
    );
}

// Case 004: `?` is exactly one character, everywhere.
#[test]
fn single_character_wildcard() {
    check(
        "  s:\n    F|startswith: 'ab?d'\n  condition: s",
        &[r#"{"F":"abcdef"}"#, r#"{"F":"abdef"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F|contains: 'x?z'\n  condition: s",
        &[r#"{"F":"..xyz.."}"#, r#"{"F":"..xz.."}"#],
        &[true, false],
    );
    check(
        "  s:\n    F: '??'\n  condition: s",
        &[r#"{"F":"é1"}"#, r#"{"F":"abc"}"#],
        &[true, false],
    );
}

// Case 006: case-insensitive by default for every string modifier; `cased` opts out.
#[test]
fn case_insensitivity_and_cased() {
    check(
        "  s:\n    F|startswith: 'POWER'\n  condition: s",
        &[r#"{"F":"powershell"}"#],
        &[true],
    );
    check(
        "  s:\n    F|contains: 'ShElL'\n  condition: s",
        &[r#"{"F":"POWERSHELL"}"#],
        &[true],
    );
    check(
        "  s:\n    F: 'ÄBC'\n  condition: s",
        &[r#"{"F":"äbc"}"#],
        &[true],
    );
    check(
        "  s:\n    F|cased: 'Abc'\n  condition: s",
        &[r#"{"F":"Abc"}"#, r#"{"F":"abc"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F|contains|cased: 'Abc'\n  condition: s",
        &[r#"{"F":"xAbc"}"#, r#"{"F":"xABC"}"#],
        &[true, false],
    );
    check(
        "  s:\n    - 'EvIl'\n  condition: s",
        &[r#"{"F":"an evil thing"}"#],
        &[true],
    );
}

// Case 008: `all` turns a list into AND, with every position modifier.
#[test]
fn all_modifier() {
    check(
        "  s:\n    F|startswith|all:\n      - 'ab'\n      - 'abc'\n  condition: s",
        &[r#"{"F":"abcd"}"#, r#"{"F":"abx"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F|endswith|all:\n      - 'z'\n      - 'yz'\n  condition: s",
        &[r#"{"F":"xyz"}"#, r#"{"F":"xz"}"#],
        &[true, false],
    );
    // Without all the list is OR.
    check(
        "  s:\n    F|contains:\n      - 'a'\n      - 'q'\n  condition: s",
        &[r#"{"F":"a"}"#],
        &[true],
    );
    // Keywords with `|all`: every keyword somewhere in the event.
    check(
        "  k:\n    '|all':\n      - 'one'\n      - 'two'\n  condition: k",
        &[r#"{"A":"one","B":"two"}"#, r#"{"A":"one"}"#],
        &[true, false],
    );
}

// Case 010: `them` and patterns skip `_` identifiers unless the pattern starts with `_`.
#[test]
fn x_of_selectors() {
    let d = "  sel_a:\n    A: 1\n  sel_b:\n    B: 1\n  _h:\n    C: 1\n";
    check(
        &format!("{d}  condition: 1 of them"),
        &[r#"{"C":1}"#, r#"{"B":1}"#],
        &[false, true],
    );
    check(
        &format!("{d}  condition: all of sel_*"),
        &[r#"{"A":1,"B":1}"#, r#"{"A":1}"#],
        &[true, false],
    );
    check(
        &format!("{d}  condition: 1 of _*"),
        &[r#"{"C":1}"#],
        &[true],
    );
    check(
        &format!("{d}  condition: any of sel*"),
        &[r#"{"A":1}"#],
        &[true],
    );
    assert!(compile_error(&format!("{d}  condition: 1 of nothing_*")).contains("S021"));
}

// Case 012: precedence or < and < not < x of < brackets.
#[test]
fn precedence() {
    let d = "  a:\n    A: 1\n  b:\n    B: 1\n  c:\n    C: 1\n";
    // not a and b == (not a) and b
    check(
        &format!("{d}  condition: not a and b"),
        &[r#"{"B":1}"#, r#"{"A":1,"B":1}"#],
        &[true, false],
    );
    // a and b or c == (a and b) or c
    check(
        &format!("{d}  condition: a and b or c"),
        &[r#"{"C":1}"#, r#"{"A":1}"#],
        &[true, false],
    );
    // brackets override
    check(
        &format!("{d}  condition: a and (b or c)"),
        &[r#"{"C":1}"#, r#"{"A":1,"C":1}"#],
        &[false, true],
    );
    check(
        &format!("{d}  condition: not not a"),
        &[r#"{"A":1}"#],
        &[true],
    );
    // `not 1 of` negates the whole OR
    check(
        &format!("{d}  condition: not 1 of a or c"),
        &[r#"{"A":1}"#, r#"{"C":1}"#],
        &[false, true],
    );
    assert!(compile_error(&format!("{d}  condition: a and (b")).contains("S020"));
    assert!(compile_error(&format!("{d}  condition: a and")).contains("S020"));
}

// Case 013: maps are AND, lists of maps OR, and `not 1 of` is not(OR).
#[test]
fn maps_and_lists_of_maps() {
    let d = "  f:\n    - A: 1\n      B: 1\n    - C: 1\n";
    check(
        &format!("{d}  condition: f"),
        &[r#"{"A":1}"#, r#"{"A":1,"B":1}"#, r#"{"C":1}"#],
        &[false, true, true],
    );
    check(&format!("{d}  condition: not f"), &[r#"{"A":1}"#], &[true]);
}

// Case 015: null means absent or null; '' is a value.
#[test]
fn null_and_empty() {
    check(
        "  s:\n    F: null\n  condition: s",
        &[r#"{}"#, r#"{"F":null}"#, r#"{"F":""}"#],
        &[true, true, false],
    );
    check(
        "  s:\n    F: ''\n  condition: s",
        &[r#"{}"#, r#"{"F":""}"#],
        &[false, true],
    );
    check(
        "  s:\n    F:\n      - null\n      - 'x'\n  condition: s",
        &[r#"{}"#, r#"{"F":"X"}"#, r#"{"F":"y"}"#],
        &[true, true, false],
    );
}

// Case 017: exists checks presence only.
#[test]
fn exists_modifier() {
    check(
        "  s:\n    F|exists: true\n  condition: s",
        &[r#"{"F":null}"#, r#"{"F":{"x":1}}"#, r#"{}"#],
        &[true, true, false],
    );
    check(
        "  s:\n    a.b|exists: true\n  condition: s",
        &[r#"{"a":{"b":""}}"#, r#"{"a":{}}"#],
        &[true, false],
    );
    assert!(compile_error("  s:\n    F|exists: 'yes'\n  condition: s").contains("S032"));
}

// Case 019: numbers compare as values whatever their JSON type.
#[test]
fn numbers_and_strings() {
    check(
        "  s:\n    E: 10\n  condition: s",
        &[
            r#"{"E":10}"#,
            r#"{"E":"10"}"#,
            r#"{"E":10.0}"#,
            r#"{"E":100}"#,
            r#"{"E":"010"}"#,
        ],
        &[true, true, true, false, false],
    );
    check(
        "  s:\n    E: '10'\n  condition: s",
        &[r#"{"E":10}"#],
        &[true],
    );
    check(
        "  s:\n    B: true\n  condition: s",
        &[r#"{"B":true}"#, r#"{"B":"true"}"#, r#"{"B":false}"#],
        &[true, true, false],
    );
    check(
        "  s:\n    E|contains: 12\n  condition: s",
        &[r#"{"E":41234}"#],
        &[true],
    );
    check(
        "  s:\n    E|gt: 4\n  condition: s",
        &[r#"{"E":5}"#, r#"{"E":"4"}"#, r#"{"E":"x"}"#],
        &[true, false, false],
    );
    check(
        "  s:\n    E|lte: 4.5\n  condition: s",
        &[r#"{"E":"4.5"}"#, r#"{"E":4.6}"#],
        &[true, false],
    );
    check(
        "  s:\n    E: 7\n  condition: s",
        &[r#"{"E":[1,7]}"#, r#"{"E":[1,2]}"#],
        &[true, false],
    );
}

// Case 022: regex substring, case-sensitive, flags.
#[test]
fn regular_expressions() {
    check(
        "  s:\n    F|re: '^ab'\n  condition: s",
        &[r#"{"F":"abc"}"#, r#"{"F":"cab"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F|re|i: 'ABC'\n  condition: s",
        &[r#"{"F":"xabcx"}"#],
        &[true],
    );
    check(
        "  s:\n    F|re|m: '^b$'\n  condition: s",
        &[r#"{"F":"a\nb\nc"}"#],
        &[true],
    );
    check(
        "  s:\n    F|re: 'a.b'\n  condition: s",
        &[r#"{"F":"a\nb"}"#],
        &[false],
    );
    check(
        "  s:\n    F|re|s: 'a.b'\n  condition: s",
        &[r#"{"F":"a\nb"}"#],
        &[true],
    );
    // A pattern that backtracking engines take exponential time on finishes: linear time.
    let long = format!(r#"{{"F":"{}!"}}"#, "a".repeat(5000));
    check(
        "  s:\n    F|re: '^(a+)+$'\n  condition: s",
        &[&long],
        &[false],
    );
    assert!(compile_error("  s:\n    F|re: '(unclosed'\n  condition: s").contains("S030"));
    assert!(compile_error("  s:\n    F|re|contains: 'x'\n  condition: s").contains("S011"));
}

// Case 024: cidr membership by address.
#[test]
fn cidr() {
    check(
        "  s:\n    IP|cidr: '10.0.0.0/8'\n  condition: s",
        &[
            r#"{"IP":"10.255.0.1"}"#,
            r#"{"IP":"11.0.0.1"}"#,
            r#"{"IP":"not an ip"}"#,
        ],
        &[true, false, false],
    );
    check(
        "  s:\n    IP|cidr: '0.0.0.0/0'\n  condition: s",
        &[r#"{"IP":"8.8.8.8"}"#, r#"{"IP":"::1"}"#],
        &[true, false],
    );
    check(
        "  s:\n    IP|cidr: '::1/128'\n  condition: s",
        &[r#"{"IP":"0:0:0:0:0:0:0:1"}"#],
        &[true],
    );
    check(
        "  s:\n    IP|cidr: '192.168.1.7'\n  condition: s",
        &[r#"{"IP":"192.168.1.7"}"#, r#"{"IP":"192.168.1.8"}"#],
        &[true, false],
    );
    assert!(compile_error("  s:\n    IP|cidr: '10.0.0.0/33'\n  condition: s").contains("S031"));
}

// Case 026: encodings.
#[test]
fn encodings() {
    // base64('Invoke-Thing') is SW52b2tlLVRoaW5n.
    check(
        "  s:\n    F|base64: 'Invoke-Thing'\n  condition: s",
        &[r#"{"F":"SW52b2tlLVRoaW5n"}"#],
        &[true],
    );
    check(
        "  s:\n    F|base64|contains: 'Invoke-Thing'\n  condition: s",
        &[r#"{"F":"x SW52b2tlLVRoaW5n y"}"#],
        &[true],
    );
    // UTF-16LE of 'ab' is 61 00 62 00, whose base64 is YQBiAA==.
    check(
        "  s:\n    F|wide|base64: 'ab'\n  condition: s",
        &[r#"{"F":"YQBiAA=="}"#],
        &[true],
    );
    check(
        "  s:\n    F|utf16be|base64: 'ab'\n  condition: s",
        &[r#"{"F":"AGEAYg=="}"#],
        &[true],
    );
    // base64 output is compared as written: case changes the encoded bytes.
    check(
        "  s:\n    F|base64|contains: 'Invoke-Thing'\n  condition: s",
        &[r#"{"F":"sw52b2tllvroaw5n"}"#],
        &[false],
    );
    assert!(compile_error("  s:\n    F|base64: 'a*b'\n  condition: s").contains("S032"));
}

#[test]
fn windash_fieldref_time_neq_expand() {
    check(
        "  s:\n    C|windash|contains: ' -enc '\n  condition: s",
        &[
            r#"{"C":"x /enc y"}"#,
            "{\"C\":\"x \u{2013}enc y\"}",
            r#"{"C":"x enc y"}"#,
        ],
        &[true, true, false],
    );
    check(
        "  s:\n    A|fieldref: B\n  condition: s",
        &[
            r#"{"A":"x","B":"X"}"#,
            r#"{"A":"x","B":"y"}"#,
            r#"{"A":"x"}"#,
        ],
        &[true, false, false],
    );
    check(
        "  s:\n    T|hour: 3\n  condition: s",
        &[
            r#"{"T":"2024-01-01T03:10:00Z"}"#,
            r#"{"T":"2024-01-01 04:00:00"}"#,
        ],
        &[true, false],
    );
    check(
        "  s:\n    F|neq: 'a'\n  condition: s",
        &[r#"{"F":"b"}"#, r#"{"F":"A"}"#],
        &[true, false],
    );
    // A placeholder with no configured value never matches (and warns).
    check(
        "  s:\n    F|expand: '%admins%'\n  condition: s",
        &[r#"{"F":"%admins%"}"#],
        &[false],
    );
}

#[test]
fn keywords_search_every_value() {
    check(
        "  k:\n    - 'mimikatz'\n    - 'sekurlsa'\n  condition: k",
        &[r#"{"a":{"b":["x","SEKURLSA::x"]}}"#, r#"{"a":"clean"}"#],
        &[true, false],
    );
    check(
        "  k: 'single'\n  condition: k",
        &[r#"{"x":"a single word"}"#],
        &[true],
    );
}

#[test]
fn bad_rules_name_line_column_and_code() {
    let e = compile_error("  s:\n    F|nonsense: 'x'\n  condition: s");
    // detection starts on line 3 of the generated rule; the key is on line 5, column 5.
    assert!(
        e.contains("r.yml:5:5: error[S010]: unknown modifier 'nonsense'"),
        "{e}"
    );
    let e = compile_error("  s:\n    F: 'x'\n  condition: s and t");
    assert!(e.contains("error[S021]") && e.contains(":6:"), "{e}");
}

#[test]
fn filters_apply_to_the_rules_they_name() {
    let r = "title: r\nid: 11111111-1111-1111-1111-111111111111\nlogsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    Image|endswith: '\\rar.exe'\n  condition: s\n";
    let f = "title: f\nlogsource: {product: windows}\nfilter:\n  rules:\n    - 11111111-1111-1111-1111-111111111111\n  sel:\n    User|startswith: 'adm_'\n  condition: not sel\n";
    let other = "title: f2\nlogsource: {product: linux}\nfilter:\n  sel:\n    User: 'x'\n  condition: not sel\n";
    let set = common::set_from_texts(&[r, f, other]);
    let events: Vec<Value> = [
        r#"{"Image":"C:\\rar.exe","User":"adm_1"}"#,
        r#"{"Image":"C:\\rar.exe","User":"x"}"#,
    ]
    .iter()
    .map(|e| serde_json::from_str(e).unwrap())
    .collect();
    assert_eq!(common::hits(&set, &events), [false, true]);
}

#[test]
fn correlations_parse_but_are_not_evaluated() {
    let spec = common::shared().join("corpus/sigma-spec/tests/schema/correlation");
    for entry in std::fs::read_dir(spec).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let docs = foundry_sigma::parse_documents(&text).unwrap();
        assert!(matches!(docs[0], foundry_sigma::Document::Correlation(_)));
    }
}

#[test]
fn v1_aggregation_rules_compile_but_never_fire_per_event() {
    // `selection | count() by host > 2` says nothing about one event: the selection alone
    // matching must not raise a hit; the rule is reported as not evaluated.
    let counted = "title: brute force\nlogsource: {product: linux}\ndetection:\n  selection:\n    \
                   outcome: failure\n  timeframe: 10m\n  condition: selection | count() by host > 2\n";
    let plain = "title: plain\nlogsource: {product: linux}\ndetection:\n  selection:\n    \
                 outcome: success\n  condition: selection\n";
    let (set, report) = common::build(&[counted, plain], None);
    assert_eq!(report.sigma_rules, 1, "only the plain rule evaluates");
    assert_eq!(report.aggregations_not_evaluated.len(), 1);
    assert!(report.aggregations_not_evaluated[0].contains("count() by host > 2"));
    let events: Vec<Value> = [
        r#"{"outcome":"failure","host":"a"}"#,
        r#"{"outcome":"failure","host":"a"}"#,
        r#"{"outcome":"failure","host":"a"}"#,
        r#"{"outcome":"success","host":"a"}"#,
    ]
    .iter()
    .map(|e| serde_json::from_str(e).unwrap())
    .collect();
    assert_eq!(common::hits(&set, &events), [false, false, false, true]);
    // A broken aggregation is still a compile error, with the condition's line.
    let broken = counted.replace("count() by host > 2", "count() by host");
    let e = foundry_sigma::check_text(&broken, &Default::default()).unwrap_err();
    assert_eq!(e.code, foundry_sigma::ErrorCode::ConditionSyntax);
    assert_eq!(e.position.line, 7);
}

#[test]
fn routing_sends_events_only_to_rules_of_their_logsource() {
    let sysmon = "title: a\nlogsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    Image|endswith: '\\x.exe'\n  condition: s\n";
    let security = "title: b\nlogsource: {product: windows, service: security}\ndetection:\n  s:\n    Image|endswith: '\\x.exe'\n  condition: s\n";
    let set = common::build(&[sysmon, security], Some(common::windows_mapping())).0;
    let ev =
        |c: &str, id: u32| serde_json::json!({"Channel": c, "EventID": id, "Image": "C:\\x.exe"});
    let titles = |e: &Value| -> Vec<String> {
        set.evaluate(e, &Default::default(), None)
            .hits
            .into_iter()
            .map(|h| h.rule.title)
            .collect()
    };
    assert_eq!(
        titles(&ev("Microsoft-Windows-Sysmon/Operational", 1)),
        ["a"]
    );
    // Channel spellings differ between collectors: `security` is Security.
    assert_eq!(titles(&ev("security", 4688)), ["b"]);
    // Unclassified events meet every rule.
    assert_eq!(
        titles(&serde_json::json!({"Image": "C:\\x.exe"})),
        ["a", "b"]
    );
}

#[test]
fn every_corpus_layout_reaches_only_rules_of_its_own_logsource() {
    // A rule that fires on any event lacking a field (`not selection`, as SigmaHQ's Zeek
    // "Publicly Accessible RDP Service"), one per logsource; with the shipped mappings each
    // layout meets only the rule of its own logsource (or those naming only its product).
    let rule = |title: &str, logsource: &str| {
        format!(
            "title: {title}\nlogsource: {logsource}\ndetection:\n  s:\n    \
             never_present_field: x\n  condition: not s\n"
        )
    };
    let rules = [
        rule("zeek", "{product: zeek, service: rdp}"),
        rule("windows", "{product: windows}"),
        rule("security", "{product: windows, service: security}"),
        rule("cloudtrail", "{product: aws, service: cloudtrail}"),
        rule("syslog", "{product: linux, service: syslog}"),
        rule("auditlogs", "{product: azure, service: auditlogs}"),
    ];
    let mut mapping = common::windows_mapping();
    mapping.merge(
        foundry_engine::Mapping::from_file(
            &common::repo().join("config/mappings/cloud-and-syslog.toml"),
        )
        .expect("cloud mapping"),
    );
    let texts: Vec<&str> = rules.iter().map(String::as_str).collect();
    let set = common::build(&texts, Some(mapping)).0;
    let titles = |e: Value| -> Vec<String> {
        let mut t: Vec<String> = set
            .evaluate(&e, &Default::default(), None)
            .hits
            .into_iter()
            .map(|h| h.rule.title)
            .collect();
        t.sort();
        t
    };
    use serde_json::json;
    assert_eq!(
        titles(json!({"Channel": "Security", "EventID": 4624})),
        ["security", "windows"]
    );
    // A channel no entry names is still a Windows event.
    assert_eq!(
        titles(json!({"Channel": "Microsoft-Exchange-ActiveMonitoring/MonitorResult"})),
        ["windows"]
    );
    assert_eq!(
        titles(json!({"eventType": "AwsApiCall", "eventSource": "s3.amazonaws.com"})),
        ["cloudtrail"]
    );
    assert_eq!(
        titles(json!({"Type": "Syslog", "SyslogMessage": "x"})),
        ["syslog"]
    );
    assert_eq!(titles(json!({"Type": "AuditLogs"})), ["auditlogs"]);
    // A table no rule declares meets none.
    assert!(titles(json!({"Type": "VMConnection"})).is_empty());
    // `*` needs a value: a null channel classifies nothing, so every rule sees the event.
    assert_eq!(titles(json!({"Channel": null})).len(), rules.len());
}

// Case 026, its neighbours: `base64offset` must find a value at each of the three byte
// alignments, for values of every length modulo 3. The event strings are the standard base64
// of `PREFIX + value + "-tail"` with prefixes of 0, 1 and 2 bytes (encoded with Python's
// `base64.b64encode`, an encoder independent of ours).
#[test]
fn base64offset_finds_every_alignment_for_every_length() {
    let cases: [(&str, [&str; 3]); 3] = [
        ("ab", ["YWItdGFpbA==", "eGFiLXRhaWw=", "eHlhYi10YWls"]),
        ("abc", ["YWJjLXRhaWw=", "eGFiYy10YWls", "eHlhYmMtdGFpbA=="]),
        (
            "ping",
            ["cGluZy10YWls", "eHBpbmctdGFpbA==", "eHlwaW5nLXRhaWw="],
        ),
    ];
    for (value, encoded) in cases {
        let detection = format!("  s:\n    F|base64offset|contains: '{value}'\n  condition: s");
        let mut events: Vec<String> = encoded
            .iter()
            .map(|e| format!(r#"{{"F":"prefix {e} suffix"}}"#))
            .collect();
        // base64 of "nothing to see": contains none of the values at any alignment.
        events.push(r#"{"F":"bm90aGluZyB0byBzZWU="}"#.to_string());
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        check(&detection, &refs, &[true, true, true, false]);
    }
}

// Case 017, its neighbour: `exists: false` is the absence of the field, whatever its value.
#[test]
fn exists_false_is_absence() {
    check(
        "  s:\n    F|exists: false\n  condition: s",
        &[r#"{}"#, r#"{"F":null}"#, r#"{"F":""}"#, r#"{"G":"F"}"#],
        &[true, false, false, true],
    );
}

// Case 024, its neighbours: prefixes that do not fall on a byte (or 16-bit group) boundary.
#[test]
fn cidr_prefixes_off_the_byte_boundary() {
    // 2001:db8::/20 covers 2001:0000:: to 2001:0fff:ffff:…
    check(
        "  s:\n    IP|cidr: '2001:db8::/20'\n  condition: s",
        &[
            r#"{"IP":"2001:0fff::1"}"#,
            r#"{"IP":"2001:1000::1"}"#,
            r#"{"IP":"2001:0:0:0:0:0:0:5"}"#,
        ],
        &[true, false, true],
    );
    // 172.16.0.0/12 covers 172.16.0.0 to 172.31.255.255.
    check(
        "  s:\n    IP|cidr: '172.16.0.0/12'\n  condition: s",
        &[
            r#"{"IP":"172.31.255.255"}"#,
            r#"{"IP":"172.32.0.0"}"#,
            r#"{"IP":"172.15.255.255"}"#,
        ],
        &[true, false, false],
    );
}

// The time-part modifiers, read off one instant: 2024-03-15T10:42:07Z is a Friday in ISO
// week 11 of 2024.
#[test]
fn time_part_modifiers() {
    let event = r#"{"T":"2024-03-15T10:42:07Z"}"#;
    for (part, right, wrong) in [
        ("minute", 42, 43),
        ("hour", 10, 11),
        ("day", 15, 14),
        ("week", 11, 12),
        ("month", 3, 4),
        ("year", 2024, 2023),
    ] {
        check(
            &format!("  s:\n    T|{part}: {right}\n  condition: s"),
            &[event],
            &[true],
        );
        check(
            &format!("  s:\n    T|{part}: {wrong}\n  condition: s"),
            &[event],
            &[false],
        );
    }
}

// Case 019, its neighbour: a number written unusually (`010` is 10 in YAML 1.2, `0x10` is
// 16, `1.0` is 1) compares by value with numeric event values and as written with strings
// (the README's rule), and the literal prefilter must not require its text of a number.
#[test]
fn numbers_written_unusually_compare_by_value() {
    check(
        "  s:\n    E: 010\n  condition: s",
        &[
            r#"{"E":10}"#,
            r#"{"E":"010"}"#,
            r#"{"E":"10"}"#,
            r#"{"E":11}"#,
        ],
        &[true, true, false, false],
    );
    check(
        "  s:\n    E: 0x10\n  condition: s",
        &[r#"{"E":16}"#, r#"{"E":"0x10"}"#, r#"{"E":10}"#],
        &[true, true, false],
    );
    check(
        "  s:\n    E: 1.0\n  condition: s",
        &[r#"{"E":1}"#, r#"{"E":2}"#],
        &[true, false],
    );
}

// `expand` with placeholder values from the configuration: the placeholder stands for any
// of its values (OR), each matched as a plain value with the other modifiers.
#[test]
fn expand_uses_the_configured_placeholder_values() {
    let mapping =
        foundry_engine::Mapping::from_toml("[placeholders]\nadmins = ['root', 'adm_*']\n").unwrap();
    let mut b = RuleSetBuilder::new().strict(true).mapping(mapping);
    b.add_source(RuleSource {
        path: "r.yml".into(),
        text: rule("  s:\n    User|expand: '%admins%'\n  condition: s"),
        kind: SourceKind::Sigma,
        meta: SourceMeta::default(),
    });
    let set = b.build().unwrap().0;
    let events: Vec<Value> = [
        r#"{"User":"root"}"#,
        r#"{"User":"ADM_alice"}"#,
        r#"{"User":"alice"}"#,
        r#"{"User":"%admins%"}"#,
    ]
    .iter()
    .map(|e| serde_json::from_str(e).unwrap())
    .collect();
    assert_eq!(common::hits(&set, &events), [true, true, false, false]);
}

// The literal prefilter skips literals too common to be worth finding (one or two bytes,
// short numbers). A rule whose values are only such literals must still be evaluated, and
// under `and`/`all` the other item's literal stands for it; the answers are those the spec's
// `contains`, `all` and plain equality give, prefilter or not.
#[test]
fn unselective_literals_still_match() {
    check(
        "  s:\n    F|contains: '.'\n  condition: s",
        &[r#"{"F":"a.b"}"#, r#"{"F":"ab"}"#],
        &[true, false],
    );
    check(
        "  s:\n    F|contains: '.'\n  t:\n    G: 'abc'\n  condition: s and t",
        &[
            r#"{"F":"x.y","G":"abc"}"#,
            r#"{"F":"xy","G":"abc"}"#,
            r#"{"F":"x.y","G":"abd"}"#,
        ],
        &[true, false, false],
    );
    // Any of the values: the short one alone must be enough.
    check(
        "  s:\n    F|contains:\n      - '.'\n      - 'longer'\n  condition: s",
        &[r#"{"F":"a.b"}"#, r#"{"F":"longer"}"#, r#"{"F":"ab"}"#],
        &[true, true, false],
    );
    check(
        "  s:\n    F|contains|all:\n      - '.'\n      - 'longer'\n  condition: s",
        &[r#"{"F":"a.longer"}"#, r#"{"F":"longer"}"#, r#"{"F":"a.b"}"#],
        &[true, false, false],
    );
    check(
        "  s:\n    EventID: 2\n  condition: s",
        &[r#"{"EventID":2}"#, r#"{"EventID":"2"}"#, r#"{"EventID":3}"#],
        &[true, true, false],
    );
    check(
        "  s:\n    EventID:\n      - 2\n      - 4688\n  condition: s",
        &[
            r#"{"EventID":4688}"#,
            r#"{"EventID":2}"#,
            r#"{"EventID":12}"#,
        ],
        &[true, true, false],
    );
}
