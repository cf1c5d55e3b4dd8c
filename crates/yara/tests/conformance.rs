//! The shared conformance cases of kind `yara` (`../shared/cases/*.yml`), then neighbours
//! of each kind of fault they pin: regular-expression escapes, base64 patterns, duplicate
//! rule names. Expected values come from the YARA-X documentation ("Differences with
//! YARA", "Text patterns") or are worked out by hand in the comments.

mod common;

use base64::Engine as _;
use common::{compile_one, scan_bytes, shared_dir};
use foundry_yara::{extract_payloads, PayloadSpec, ScanLimits, YaraRuleSet, YaraSource};
use saphyr::{LoadableYamlNode, Yaml};

/// One payload of a case, as bytes: `{text: ...}` is taken as is, `{base64: ...}` goes
/// through the product's own base64 extraction.
fn case_payload(event: &Yaml) -> Vec<u8> {
    let field = |key: &str| event.as_mapping_get(key).and_then(Yaml::as_str);
    if let Some(text) = field("text") {
        return text.as_bytes().to_vec();
    }
    let encoded = field("base64").expect("event has `text` or `base64`");
    let spec: PayloadSpec = "p".parse().unwrap();
    let event = serde_json::json!({ "p": encoded });
    let (mut payloads, problems) = extract_payloads(&event, &[spec], &ScanLimits::default());
    assert!(problems.is_empty(), "{problems:?}");
    payloads.remove(0).bytes
}

#[test]
fn shared_yara_cases() {
    let dir = shared_dir().join("cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    let mut ran = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = Yaml::load_from_str(&text).unwrap();
        let case = &docs[0];
        if case.as_mapping_get("kind").and_then(Yaml::as_str) != Some("yara") {
            continue;
        }
        let id = case
            .as_mapping_get("id")
            .and_then(Yaml::as_str)
            .unwrap()
            .to_string();
        let rule = case.as_mapping_get("rule").and_then(Yaml::as_str).unwrap();
        let expect = case.as_mapping_get("expect").unwrap();
        let result = YaraRuleSet::compile(&[YaraSource::new(format!("case-{id}.yar"), rule)]);

        let compile_error = expect
            .as_mapping_get("compile_error")
            .and_then(Yaml::as_bool)
            .unwrap_or(false);
        if compile_error {
            let errors = result.expect_err(&format!("case {id}: must not compile"));
            let first = &errors[0];
            assert!(first.code.starts_with('E'), "case {id}: {first}");
            assert!(
                first.line.is_some() && first.column.is_some(),
                "case {id}: {first}"
            );
        } else {
            let set = result.unwrap_or_else(|e| panic!("case {id}: {e:?}"));
            let events = case
                .as_mapping_get("events")
                .and_then(Yaml::as_sequence)
                .unwrap();
            let wants = expect.as_sequence().expect("expect: list of booleans");
            assert_eq!(events.len(), wants.len(), "case {id}");
            for (i, (event, want)) in events.iter().zip(wants).enumerate() {
                let hit = !scan_bytes(&set, &case_payload(event)).is_empty();
                assert_eq!(Some(hit), want.as_bool(), "case {id}, payload {i}");
            }
        }
        ran.push(id);
    }
    // The cases folder holds these three today; new yara cases are picked up on their own.
    for id in ["039", "041", "043"] {
        assert!(
            ran.iter().any(|r| r == id),
            "case {id} not found in {}",
            dir.display()
        );
    }
}

// ---- Neighbours of 039: regular expressions YARA 4 accepted and YARA-X rejects. ----

fn regex_rule(re: &str) -> String {
    format!("rule r {{ strings: $a = /{re}/ condition: $a }}")
}

#[test]
fn regex_brace_and_escape_errors() {
    // From "Differences with YARA": `{1:5}` and `{,N}` typos, and unknown escapes (`\R` in
    // `\Release`, `\N` in `%TEMP%\NewGame`, `\g`) are errors in YARA-X.
    for re in [
        r"abc{",
        r"http:\/\/[^\/]+:[0-9]{1:5}",
        r"\d{1,3}\/.{,N}[0-9a-zA-Z].zip",
        r"\\x64\Release\\create.pdb",
        r"%TEMP%\NewGame",
        r"foo\gbar",
    ] {
        let rule = regex_rule(re);
        let errors = YaraRuleSet::compile(&[YaraSource::new("re.yar", rule.as_str())])
            .expect_err(&format!("/{re}/ must not compile"));
        assert_eq!(errors[0].code, "E014", "/{re}/: {}", errors[0]);
        assert!(errors[0].unsupported.is_some(), "/{re}/: {}", errors[0]);
    }
}

#[test]
fn regex_correct_forms_compile_and_match() {
    // The escaped forms the same page recommends.
    let cases: [(&str, &[u8], bool); 6] = [
        (r"abc\{", b"xabc{x", true),
        (r"abc\{", b"abc", false),
        (r"port:[0-9]{1,5}\/", b"port:8080/", true),
        (r"port:[0-9]{1,5}\/", b"port:/", false),
        (
            r"\\x64\\Release\\create\.pdb",
            br"C:\x64\Release\create.pdb",
            true,
        ),
        (r"foogbar", b"foogbar", true),
    ];
    for (re, payload, want) in cases {
        let set = compile_one(&regex_rule(re));
        assert_eq!(
            !scan_bytes(&set, payload).is_empty(),
            want,
            "/{re}/ on {payload:?}"
        );
    }
}

#[test]
fn regex_error_position_points_at_the_brace() {
    // `rule r { strings: $a = /abc{/ ...`: the `{` is the 28th character of the line.
    let rule = regex_rule("abc{");
    let errors = YaraRuleSet::compile(&[YaraSource::new("re.yar", rule.as_str())]).unwrap_err();
    assert_eq!((errors[0].line, errors[0].column), (Some(1), Some(28)));
}

// ---- Neighbours of 041: base64 patterns. ----

fn b64(bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

fn wide(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().flat_map(|&b| [b, 0]).collect()
}

#[test]
fn base64_pattern_at_each_offset_and_no_false_positive() {
    let set = compile_one(r#"rule b { strings: $a = "This program cannot" base64 condition: $a }"#);
    // The text at offsets 0, 1 and 2 of the encoded block: the three alignments the
    // modifier generates (YARA docs, "Base64 strings").
    for prefix in ["", "x", "xy", "xyz"] {
        let payload = b64(format!("{prefix}This program cannot be run").as_bytes());
        assert!(!scan_bytes(&set, &payload).is_empty(), "prefix {prefix:?}");
    }
    // YARA 4's documented false positive ("Dhis program cannow") at each alignment.
    for prefix in ["", "x", "xy"] {
        let payload = b64(format!("{prefix}Dhis program cannow be run").as_bytes());
        assert!(
            scan_bytes(&set, &payload).is_empty(),
            "false positive, prefix {prefix:?}"
        );
    }
    // Plain text and wide base64 are not what `base64` alone looks for.
    assert!(scan_bytes(&set, b"This program cannot be run").is_empty());
    assert!(scan_bytes(&set, &wide(&b64(b"This program cannot be run"))).is_empty());
}

#[test]
fn base64wide_pattern() {
    // `base64wide` = the base64 forms, then interleaved with zero bytes (YARA docs).
    let set =
        compile_one(r#"rule w { strings: $a = "This program cannot" base64wide condition: $a }"#);
    assert!(!scan_bytes(&set, &wide(&b64(b"xThis program cannot be run"))).is_empty());
    assert!(scan_bytes(&set, &b64(b"xThis program cannot be run")).is_empty());
    let both = compile_one(
        r#"rule bw { strings: $a = "This program cannot" base64 base64wide condition: $a }"#,
    );
    assert!(!scan_bytes(&both, &b64(b"This program cannot be run")).is_empty());
    assert!(!scan_bytes(&both, &wide(&b64(b"This program cannot be run"))).is_empty());
}

#[test]
fn base64_custom_alphabet() {
    // 0xfb 0xff 0xbf encodes to "-_-_" in the URL-safe alphabet and "+/+/" in the standard
    // one (RFC 4648 tables). Given the URL-safe alphabet explicitly, only that text matches.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let set = compile_one(&format!(
        r#"rule u {{ strings: $a = "\xfb\xff\xbf\xfb\xff\xbf" base64("{alphabet}") condition: $a }}"#
    ));
    assert!(!scan_bytes(&set, b"-_-_-_-_").is_empty());
    assert!(scan_bytes(&set, b"+/+/+/+/").is_empty());
}

// ---- Neighbours of 043: duplicate rule names. ----

#[test]
fn duplicate_names_fail_in_one_namespace_and_pass_across_namespaces() {
    let helper = "private rule elf_or_macho { condition: uint32(0) == 0x464c457f }\n\
                  rule uses_helper_{n} { condition: elf_or_macho }";
    let a = helper.replace("{n}", "a");
    let b = helper.replace("{n}", "b");
    // Two files: two namespaces, no conflict.
    let set = YaraRuleSet::compile(&[
        YaraSource::new("a.yar", a.as_str()),
        YaraSource::new("b.yar", b.as_str()),
    ])
    .expect("separate namespaces");
    assert_eq!(scan_bytes(&set, b"\x7fELF").len(), 2);
    // The same two texts in one namespace: E012 on the second declaration.
    let errors = YaraRuleSet::compile(&[
        YaraSource::new("a.yar", a.as_str()).with_namespace("one"),
        YaraSource::new("b.yar", b.as_str()).with_namespace("one"),
    ])
    .unwrap_err();
    assert_eq!(errors[0].code, "E012");
    assert_eq!(
        (errors[0].path.to_str(), errors[0].line),
        (Some("b.yar"), Some(1))
    );
    // Public rules too, and a global rule against a private one.
    let errors = YaraRuleSet::compile(&[YaraSource::new(
        "d.yar",
        "rule same { condition: true }\nglobal rule same { condition: true }",
    )])
    .unwrap_err();
    assert_eq!((errors[0].code, errors[0].line), ("E012", Some(2)));
}

#[test]
fn duplicate_between_a_file_and_its_include() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inc.yar"), "rule same { condition: true }").unwrap();
    let main = dir.path().join("main.yar");
    std::fs::write(
        &main,
        "include \"inc.yar\"\nrule same { condition: false }\n",
    )
    .unwrap();
    let err = foundry_yara::check_file(&main).unwrap_err();
    assert_eq!((err.code, err.line), ("E012", Some(2)));
}
