//! Payload specs and extraction: paths, arrays, encodings, problems and limits.

use base64::Engine as _;
use foundry_yara::{
    extract_payloads, PayloadEncoding, PayloadProblemKind, PayloadSpec, ScanLimits,
};
use serde_json::json;

fn spec(s: &str) -> PayloadSpec {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn spec_parsing() {
    assert_eq!(spec("ScriptBlockText").encoding, PayloadEncoding::Base64);
    assert_eq!(spec("ScriptBlockText:text").encoding, PayloadEncoding::Text);
    assert_eq!(spec("a.b:sha256ref").encoding, PayloadEncoding::Sha256Ref);
    assert_eq!(
        spec("attachments[].content_b64:base64").field,
        "attachments[].content_b64"
    );
    assert_eq!(spec("a.b:text").to_string(), "a.b:text");
    for bad in ["", "a:gzip", "a..b", "a[", "a[x]", "a[]b", ":text"] {
        assert!(
            bad.parse::<PayloadSpec>().is_err(),
            "`{bad}` should be rejected"
        );
    }
}

#[test]
fn nested_path_and_flat_dotted_key() {
    let nested = json!({"Event": {"EventData": {"Payload": b64(b"nested")}}});
    let flat = json!({"Event.EventData.Payload": b64(b"flat")});
    let half = json!({"Event": {"EventData.Payload": b64(b"half")}});
    let specs = [spec("Event.EventData.Payload")];
    for (event, want, field) in [
        (nested, &b"nested"[..], "Event.EventData.Payload"),
        (flat, b"flat", "Event.EventData.Payload"),
        (half, b"half", "Event.EventData.Payload"),
    ] {
        let (payloads, problems) = extract_payloads(&event, &specs, &ScanLimits::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(payloads.len(), 1);
        assert_eq!(payloads[0].bytes, want);
        assert_eq!(payloads[0].field, field);
    }
}

#[test]
fn arrays_are_iterated_with_concrete_paths() {
    let event = json!({"attachments": [
        {"name": "a.txt", "content_b64": b64(b"first")},
        {"name": "no content"},
        {"name": "b.txt", "content_b64": b64(b"third")},
    ]});
    let (payloads, problems) = extract_payloads(
        &event,
        &[spec("attachments[].content_b64")],
        &ScanLimits::default(),
    );
    assert!(problems.is_empty(), "{problems:?}");
    let got: Vec<(&str, &[u8])> = payloads
        .iter()
        .map(|p| (p.field.as_str(), p.bytes.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            ("attachments[0].content_b64", &b"first"[..]),
            ("attachments[2].content_b64", b"third")
        ]
    );
    let (one, _) = extract_payloads(
        &event,
        &[spec("attachments[2].content_b64")],
        &ScanLimits::default(),
    );
    assert_eq!(one[0].bytes, b"third");
    assert_eq!(one[0].field, "attachments[2].content_b64");
}

#[test]
fn nested_arrays() {
    let event = json!({"mails": [{"parts": ["YQ==", "Yg=="]}, {"parts": ["Yw=="]}]});
    let (payloads, _) =
        extract_payloads(&event, &[spec("mails[].parts[]")], &ScanLimits::default());
    let fields: Vec<&str> = payloads.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "mails[0].parts[0]",
            "mails[0].parts[1]",
            "mails[1].parts[0]"
        ]
    );
    let bytes: Vec<&[u8]> = payloads.iter().map(|p| p.bytes.as_slice()).collect();
    assert_eq!(bytes, [b"a", b"b", b"c"]);
}

#[test]
fn base64_variants_decode_to_the_same_bytes() {
    // 0xfb 0xff 0xbf encodes to "+/+/" in the standard alphabet and "-_-_" in the URL-safe
    // one (RFC 4648 tables); "hello" needs one padding character.
    let cases: [(&str, &[u8]); 7] = [
        ("+/+/", &[0xfb, 0xff, 0xbf]),
        ("-_-_", &[0xfb, 0xff, 0xbf]),
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),
        ("aGVs\r\nbG8=\n", b"hello"),
        ("  aGVs bG8 ", b"hello"),
        ("aGVsbG8h", b"hello!"),
    ];
    for (text, want) in cases {
        let event = json!({"p": text});
        let (payloads, problems) = extract_payloads(&event, &[spec("p")], &ScanLimits::default());
        assert!(problems.is_empty(), "`{text}`: {problems:?}");
        assert_eq!(payloads[0].bytes, want, "`{text}`");
    }
}

#[test]
fn undecodable_base64_is_a_problem_not_a_panic() {
    for text in ["not base64 at all!", "+/-_", "a", "aGVsbG8=aGVs", "éé"] {
        let event = json!({"id": 7, "p": text, "other": "kept"});
        let (payloads, problems) = extract_payloads(&event, &[spec("p")], &ScanLimits::default());
        assert!(payloads.is_empty(), "`{text}` decoded");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "p");
        assert!(
            matches!(problems[0].kind, PayloadProblemKind::InvalidBase64 { .. }),
            "{:?}",
            problems[0]
        );
        assert!(problems[0]
            .to_string()
            .starts_with("payload field `p`: invalid base64"));
    }
}

#[test]
fn wrong_types_absent_and_empty_fields() {
    let event = json!({"n": 5, "o": {"x": 1}, "arr": ["YQ=="], "null": null, "empty": ""});
    let specs = [
        spec("n"),
        spec("o"),
        spec("arr"),
        spec("null"),
        spec("empty"),
        spec("absent"),
    ];
    let (payloads, problems) = extract_payloads(&event, &specs, &ScanLimits::default());
    assert!(payloads.is_empty());
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["n", "o", "arr"]);
    assert!(problems
        .iter()
        .all(|p| matches!(p.kind, PayloadProblemKind::NotAString { .. })));
}

#[test]
fn text_encoding_takes_the_utf8_bytes() {
    let event = json!({"ScriptBlockText": "Invoke-Thing é"});
    let (payloads, _) = extract_payloads(
        &event,
        &[spec("ScriptBlockText:text")],
        &ScanLimits::default(),
    );
    assert_eq!(payloads[0].bytes, "Invoke-Thing é".as_bytes());
}

#[test]
fn payload_count_limit_keeps_the_first_and_reports_the_rest() {
    let items: Vec<String> = (0..10)
        .map(|i| b64(format!("item {i}").as_bytes()))
        .collect();
    let event = json!({"items": items, "extra": b64(b"extra")});
    let limits = ScanLimits {
        max_payloads_per_event: 4,
        ..ScanLimits::default()
    };
    let (payloads, problems) = extract_payloads(&event, &[spec("items[]"), spec("extra")], &limits);
    assert_eq!(payloads.len(), 4);
    assert_eq!(payloads[3].bytes, b"item 3");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "items[4]");
    assert_eq!(
        problems[0].kind,
        PayloadProblemKind::TooMany {
            dropped: 7,
            limit: 4
        }
    );
}

#[test]
fn sha256_is_lowercase_hex_of_the_decoded_bytes() {
    // SHA-256("abc"), the example of FIPS 180-2 appendix B.1.
    let event = json!({"p": "YWJj"});
    let (payloads, _) = extract_payloads(&event, &[spec("p")], &ScanLimits::default());
    assert_eq!(
        payloads[0].sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn sha256ref_reads_the_blob_folder() {
    let dir = tempfile::tempdir().unwrap();
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    std::fs::write(dir.path().join(abc), b"abc").unwrap();
    let liar = "0000000000000000000000000000000000000000000000000000000000000000";
    std::fs::write(dir.path().join(liar), b"not zeros").unwrap();
    let spec = spec("blob:sha256ref").with_blob_dir(dir.path());
    let limits = ScanLimits::default();

    let (payloads, problems) = extract_payloads(
        &json!({"blob": abc.to_uppercase()}),
        std::slice::from_ref(&spec),
        &limits,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(payloads[0].bytes, b"abc");
    assert_eq!(payloads[0].sha256, abc);

    let missing = "1111111111111111111111111111111111111111111111111111111111111111";
    for (value, want) in [
        (missing, "BlobUnreadable"),
        (liar, "BlobUnreadable"),
        ("abc", "InvalidBlobRef"),
    ] {
        let (payloads, problems) = extract_payloads(
            &json!({"blob": value}),
            std::slice::from_ref(&spec),
            &limits,
        );
        assert!(payloads.is_empty());
        assert!(
            format!("{:?}", problems[0].kind).starts_with(want),
            "{value}: {problems:?}"
        );
    }

    let tiny = ScanLimits {
        max_payload_bytes: 2,
        ..ScanLimits::default()
    };
    let (_, problems) = extract_payloads(&json!({"blob": abc}), std::slice::from_ref(&spec), &tiny);
    assert_eq!(
        problems[0].kind,
        PayloadProblemKind::BlobTooLarge { size: 3, limit: 2 }
    );

    let no_dir = self::spec("blob:sha256ref");
    let (_, problems) = extract_payloads(&json!({"blob": abc}), &[no_dir], &limits);
    assert!(matches!(
        problems[0].kind,
        PayloadProblemKind::InvalidBlobRef { .. }
    ));
}
