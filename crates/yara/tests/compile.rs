//! Compilation: error rendering, deliberate YARA-X differences, namespaces, includes and
//! external variables.

mod common;

use common::{compile_one, identifiers, scan_bytes, workspace_root, EICAR};
use foundry_yara::{check_file, YaraCompileError, YaraRuleSet, YaraSource, IO_ERROR_CODE};

fn compile_err(text: &str) -> Vec<YaraCompileError> {
    YaraRuleSet::compile(&[YaraSource::new("rules/test.yar", text)])
        .expect_err("rule should not compile")
}

#[test]
fn syntax_error_is_rendered_like_a_compiler() {
    let text = "rule ok { condition: true }\nrule broken {\n  condition:\n    true and\n}\n";
    let errors = compile_err(text);
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.code, "E001");
    assert_eq!(e.path, std::path::Path::new("rules/test.yar"));
    // The condition ends at the `}` on line 5, column 1.
    assert_eq!((e.line, e.column), (Some(5), Some(1)));
    assert!(e.unsupported.is_none());
    let rendered = e.to_string();
    assert!(
        rendered.starts_with("rules/test.yar:5:1: error[E001]: syntax error"),
        "{rendered}"
    );
    assert!(
        e.report.contains('^'),
        "the full report carries a caret: {}",
        e.report
    );
}

#[test]
fn every_error_of_every_source_is_returned() {
    let sources = [
        YaraSource::new("a.yar", "rule a { condition: nope }"),
        YaraSource::new("b.yar", "rule b { condition: true }"),
        YaraSource::new("c.yar", "rule c { strings: $x = \"abc\" condition: true }"),
    ];
    let errors = YaraRuleSet::compile(&sources).expect_err("two sources are broken");
    let mut seen: Vec<(String, &str)> = errors
        .iter()
        .map(|e| (e.path.display().to_string(), e.code))
        .collect();
    seen.sort();
    // a.yar: unknown identifier `nope`; c.yar: pattern `$x` never used in the condition.
    assert_eq!(seen.len(), 2, "{errors:?}");
    assert_eq!(seen[0], ("a.yar".to_string(), "E009"));
    assert_eq!(seen[1].0, "c.yar");
}

#[test]
fn unknown_yara4_module_is_unsupported_and_so_are_its_uses() {
    let errors = compile_err(
        "import \"androguard\"\nrule apk { condition: androguard.package_name(/evil/) }\n",
    );
    assert_eq!(errors[0].code, "E010");
    assert_eq!((errors[0].line, errors[0].column), (Some(1), Some(1)));
    assert!(errors[0].unsupported.is_some());
    assert!(errors[0].to_string().contains("androguard"));
    assert!(
        errors.iter().skip(1).all(|e| e.unsupported.is_some()),
        "{errors:#?}"
    );
}

#[test]
fn misspelled_module_is_a_plain_error() {
    let errors = compile_err("import \"pee\"\nrule x { condition: true }\n");
    assert_eq!(errors[0].code, "E010");
    assert!(errors[0].unsupported.is_none());
}

#[test]
fn forgotten_import_is_a_plain_error() {
    let errors = compile_err("rule x { condition: pe.is_dll() }\n");
    assert_eq!(errors[0].code, "E009");
    assert!(errors[0].unsupported.is_none());
}

#[test]
fn cuckoo_module_exists_in_yara_x() {
    // YARA-X ships a `cuckoo` module (a default feature of the crate), so old sandbox rules
    // compile; on a payload without a sandbox report they simply do not match.
    let set = compile_one(
        "import \"cuckoo\"\nrule c { condition: cuckoo.network.http_request(/evil/) }\n",
    );
    assert!(scan_bytes(&set, b"anything").is_empty());
}

#[test]
fn short_base64_pattern_is_unsupported() {
    // YARA-X docs, "Differences in base64 patterns": at least 3 characters are required.
    let errors = compile_err("rule b { strings: $a = \"ab\" base64 condition: $a }");
    assert_eq!(errors[0].code, "E024");
    assert!(errors[0].unsupported.is_some());
}

#[test]
fn duplicate_private_helpers_in_two_files_compile() {
    // Each file has its own namespace (its stem), so the helper names do not collide.
    let a = "private rule helper { condition: uint16(0) == 0x5a4d }\n\
             rule is_mz { condition: helper }";
    let b = "private rule helper { condition: uint32(0) == 0x464c457f }\n\
             rule is_elf { condition: helper }";
    let set = YaraRuleSet::compile(&[YaraSource::new("x/a.yar", a), YaraSource::new("x/b.yar", b)])
        .expect("separate namespaces");
    assert_eq!(set.namespaces(), ["a", "b"]);
    let hits = scan_bytes(&set, b"\x7fELF\x02\x01");
    assert_eq!(identifiers(&hits), ["is_elf"]);
    assert_eq!(hits[0].namespace, "b");
}

#[test]
fn same_stem_in_two_folders_gets_two_namespaces() {
    let one = YaraSource::new("one/rules.yar", "rule r { condition: true }");
    let two = YaraSource::new("two/rules.yar", "rule r { condition: true }");
    let set = YaraRuleSet::compile(&[one, two]).expect("renamed namespace");
    assert_eq!(set.namespaces(), ["rules", "rules_2"]);
}

#[test]
fn duplicate_rule_in_one_explicit_namespace_fails() {
    let one = YaraSource::new("one.yar", "rule r { condition: true }").with_namespace("shared");
    let two = YaraSource::new("two.yar", "rule r { condition: true }").with_namespace("shared");
    let errors = YaraRuleSet::compile(&[one, two]).expect_err("same namespace on purpose");
    assert_eq!(errors[0].code, "E012");
    assert_eq!(errors[0].path, std::path::Path::new("two.yar"));
}

#[test]
fn external_variables_are_defined_as_empty_strings() {
    let set = compile_one(
        "rule ext { condition: filename == \"\" and filepath == \"\" and extension == \"\" \
         and filetype == \"\" and owner == \"\" }",
    );
    assert_eq!(identifiers(&scan_bytes(&set, b"x")), ["ext"]);
}

#[test]
fn includes_resolve_relative_to_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("sub");
    std::fs::create_dir_all(nested.join("deeper")).unwrap();
    std::fs::write(
        nested.join("deeper/leaf.yar"),
        "rule leaf { condition: true }",
    )
    .unwrap();
    // `sub/mid.yar` includes relative to itself, not to the index or the process cwd.
    std::fs::write(
        nested.join("mid.yar"),
        "include \"deeper/leaf.yar\"\nrule mid { condition: leaf }",
    )
    .unwrap();
    let index = dir.path().join("index.yar");
    std::fs::write(&index, "include \"./sub/mid.yar\"\n").unwrap();
    assert_eq!(check_file(&index).expect("includes resolve").rules, 2);
}

#[test]
fn error_inside_an_include_points_at_the_included_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yar"),
        "rule bad {\n  condition: nope\n}\n",
    )
    .unwrap();
    let index = dir.path().join("index.yar");
    std::fs::write(&index, "include \"bad.yar\"\n").unwrap();
    let err = check_file(&index).expect_err("included file is broken");
    assert_eq!(err.code, "E009");
    assert!(err.path.ends_with("bad.yar"), "{}", err.path.display());
    assert_eq!((err.line, err.column), (Some(2), Some(14)));
}

#[test]
fn missing_include_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.yar");
    std::fs::write(&index, "include \"nowhere.yar\"\n").unwrap();
    assert_eq!(
        check_file(&index).expect_err("missing include").code,
        "E043"
    );
}

#[test]
fn unreadable_file_is_an_io_error() {
    let err = check_file("/nonexistent/rules.yar").expect_err("no such file");
    assert_eq!(err.code, IO_ERROR_CODE);
    assert!(err
        .to_string()
        .starts_with("/nonexistent/rules.yar: error[io]: cannot read"));
}

#[test]
fn shipped_eicar_rule_compiles_and_fires() {
    let path = workspace_root().join("rules/yara/eicar.yar");
    assert_eq!(check_file(&path).expect("eicar.yar compiles").rules, 1);
    let set = YaraRuleSet::compile(&[YaraSource::read(&path).unwrap()]).unwrap();
    let hits = scan_bytes(&set, EICAR);
    assert_eq!(identifiers(&hits), ["EICAR_Test_String"]);
    assert_eq!(hits[0].namespace, "eicar");
    assert_eq!(hits[0].tlp().as_deref(), Some("TLP:CLEAR"));
    assert_eq!(hits[0].confidence(), Some(100));
    assert_eq!(hits[0].meta["author"], "Threat Foundry");
    assert!(scan_bytes(&set, b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR").is_empty());
}
