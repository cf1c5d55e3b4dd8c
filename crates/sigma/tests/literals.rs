//! The literals a rule offers the engine's prefilter: what some event value must contain
//! (or, for an exact literal, equal, both lower-cased) for the rule to match. Expected sets
//! are worked out by hand from the Sigma matching rules: a plain value matches only a value
//! equal to it, a wildcard or a position modifier only asks for the literal part, and
//! transforms change what the event holds.

use foundry_sigma::{compile_rule, parse_documents, CompileOptions, Document, FieldTable};

/// The literals of a rule whose detection is `detection` (YAML, indented two spaces), as
/// (field name or "*" for any, text, exact), sorted; `None` when it offers no set.
fn literals(detection: &str) -> Option<Vec<(String, String, bool)>> {
    let text = format!("title: t\nlogsource: {{product: windows}}\ndetection:\n{detection}");
    let docs = parse_documents(&text).unwrap();
    let Document::Rule(doc) = &docs[0] else {
        panic!("a rule")
    };
    let mut fields = FieldTable::default();
    let rule = compile_rule(doc, &mut fields, &CompileOptions::default()).unwrap();
    let mut out: Vec<(String, String, bool)> = rule
        .required_literals()?
        .into_iter()
        .map(|l| {
            let field = l
                .field
                .map_or("*".to_string(), |f| fields.name(f).to_string());
            (field, l.text, l.exact)
        })
        .collect();
    out.sort();
    Some(out)
}

fn l(field: &str, text: &str, exact: bool) -> (String, String, bool) {
    (field.into(), text.into(), exact)
}

/// The literals of a rule whose one search `s` holds the item (`Field|mods: value`).
fn of_item(item: &str) -> Option<Vec<(String, String, bool)>> {
    literals(&format!("  s:\n    {item}\n  condition: s\n"))
}

type Case<'a> = (&'a str, Option<Vec<(String, String, bool)>>);

fn check_items(cases: Vec<Case<'_>>) {
    for (item, want) in cases {
        assert_eq!(of_item(item), want, "{item}");
    }
}

#[test]
fn plain_values_are_exact_literals_and_short_numbers_count_then() {
    check_items(vec![
        (
            "EventID: [16, 4688]",
            Some(vec![l("EventID", "16", true), l("EventID", "4688", true)]),
        ),
        (
            "Image: 'C:\\Windows\\CMD.exe'",
            Some(vec![l("Image", "c:\\windows\\cmd.exe", true)]),
        ),
    ]);
}

#[test]
fn wildcards_positions_and_transforms_ask_only_for_containment() {
    check_items(vec![
        (
            "Image|endswith: '\\cmd.exe'",
            Some(vec![l("Image", "\\cmd.exe", false)]),
        ),
        (
            "Image: '*\\rundll32.exe'",
            Some(vec![l("Image", "\\rundll32.exe", false)]),
        ),
        // `\*` is an escaped star, not a wildcard: the value is plain.
        (
            "Image: 'C:\\*\\rundll32.exe'",
            Some(vec![l("Image", "c:*\\rundll32.exe", true)]),
        ),
        (
            "CommandLine|windash|contains: '-encoded'",
            Some(vec![l("CommandLine", "encoded", false)]),
        ),
        // A short number inside a value says too little: a position makes it no set at all.
        ("Port|startswith: 80", None),
    ]);
    // Keywords are found anywhere in a value, never by equality.
    assert_eq!(
        literals("  keywords:\n    - 'Mimikatz'\n  condition: keywords\n"),
        Some(vec![l("*", "mimikatz", false)])
    );
}

#[test]
fn under_and_the_most_selective_set_stands_for_the_rule() {
    // The image name says more than an EventID that every process creation carries.
    assert_eq!(
        literals("  s:\n    EventID: 1\n    Image|endswith: '\\certutil.exe'\n  condition: s\n"),
        Some(vec![l("Image", "\\certutil.exe", false)])
    );
    check_items(vec![
        // A number written other than events print it matches numerically: no literal.
        // Quoted, it is text, and only the same text matches.
        ("EventID: 0016", None),
        ("EventID: '0016'", Some(vec![l("EventID", "0016", true)])),
        ("EventID|neq: 16", None),
    ]);
}
