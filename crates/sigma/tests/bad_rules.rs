//! Hostile rule files: each is refused with an error that names where it went wrong, and none
//! panics or overflows the stack. Each test is named after the bug it pins.

use foundry_sigma::{check_text, parse_documents, CompileOptions, ErrorCode, SigmaError};

fn check(text: &str) -> Result<usize, SigmaError> {
    check_text(text, &CompileOptions::default()).map(|c| c.documents)
}

fn rule_with_condition(condition: &str) -> String {
    format!(
        "title: t\nlogsource: {{product: windows}}\ndetection:\n  sel:\n    a: 1\n  \
         condition: '{condition}'\n"
    )
}

#[test]
fn correlation_timespan_ending_in_a_multibyte_character_is_an_error_not_a_panic() {
    let text = "title: t\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 5é\n  \
                condition: {gte: 2}\n";
    let e = parse_documents(text).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidCorrelation);
    assert_eq!(e.position.line, 5, "the error points at the timespan: {e}");
    // A well-formed timespan still parses.
    assert!(parse_documents(&text.replace("5é", "5m")).is_ok());
}

#[test]
fn condition_with_100k_nested_parentheses_is_refused_not_a_stack_overflow() {
    let deep = format!("{}sel{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = check(&rule_with_condition(&deep)).unwrap_err();
    assert_eq!(e.code, ErrorCode::ConditionSyntax);
    assert_eq!(e.position.line, 6, "the error points at the condition: {e}");
}

#[test]
fn condition_with_100k_nots_is_refused_not_a_stack_overflow() {
    let deep = format!("{}sel", "not ".repeat(100_000));
    let e = check(&rule_with_condition(&deep)).unwrap_err();
    assert_eq!(e.code, ErrorCode::ConditionSyntax);
}

#[test]
fn condition_nested_as_deep_as_real_rules_still_parses() {
    let nested = format!("{}not sel{}", "(".repeat(20), ")".repeat(20));
    assert_eq!(check(&rule_with_condition(&nested)), Ok(1));
}

#[test]
fn yaml_with_100k_nested_block_sequences_is_refused_not_a_stack_overflow() {
    let text = format!(
        "title: t\nlogsource: {{product: w}}\ndetection:\n  sel:\n    a:\n      {}x\n  \
         condition: sel\n",
        "- ".repeat(100_000)
    );
    let e = parse_documents(&text).unwrap_err();
    assert_eq!(e.code, ErrorCode::YamlSyntax);
    assert_eq!(
        e.position.line, 6,
        "the error points into the nested list: {e}"
    );
}

#[test]
fn yaml_with_100k_nested_mapping_keys_is_refused_not_a_stack_overflow() {
    let text = format!("title: t\n{}x\n", "? ".repeat(100_000));
    assert_eq!(
        parse_documents(&text).unwrap_err().code,
        ErrorCode::YamlSyntax
    );
}

#[test]
fn aliases_that_nest_anchors_past_the_depth_limit_are_refused_not_a_stack_overflow() {
    // Each anchor nests 40 levels, well inside the limit as written; expanded through the
    // aliases the tree is 40 levels deeper per anchor.
    let mut text = String::from("title: t\n");
    let mut inner = "x".to_string();
    for i in 0..6 {
        text.push_str(&format!(
            "a{i}: &a{i} {}{inner}{}\n",
            "[".repeat(40),
            "]".repeat(40)
        ));
        inner = format!("*a{i}");
    }
    let e = parse_documents(&text).unwrap_err();
    assert_eq!(e.code, ErrorCode::YamlSyntax);
}

#[test]
fn a_filter_with_an_aggregation_is_refused_at_its_bar() {
    // `  condition: sel | count() > 5`: the value starts in column 14, its `|` in column 18.
    let text = "title: f\nlogsource: {product: windows}\nfilter:\n  rules: [x]\n  sel:\n    \
                a: 1\n  condition: sel | count() > 5\n";
    let e = check(text).unwrap_err();
    assert_eq!(e.code, ErrorCode::ConditionSyntax);
    assert_eq!((e.position.line, e.position.column), (7, 18), "{e}");
}
