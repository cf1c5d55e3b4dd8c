//! Hostile inputs and rule folders: a bad record is reported with where it is and the rest
//! goes on; a bad rule file is a load failure that names it, never an abort or a silent
//! change. Each test is named after the bug it pins.

mod common;

use std::io::{Read, Write};

use foundry_engine::input::{json_documents, read_records, JsonLines, MAX_FILE_RECORD};
use foundry_engine::{decode_event, RuleSetBuilder, RuleSetError};

const GOOD_RULE: &str = "title: good\nid: good-1\nlogsource: {product: windows}\ndetection:\n  \
                         sel:\n    CommandLine|contains: whoami\n  condition: sel\n";

#[test]
fn json_file_of_many_small_objects_is_read_in_linear_time_with_each_line() {
    // Counting lines from the top for every object made this quadratic: minutes, not a blink.
    let text = "{\"CommandLine\":\"x\"}\n".repeat(50_000);
    let records = json_documents(text.as_bytes());
    assert_eq!(records.len(), 50_000);
    assert!(records.iter().all(|r| r.event.is_ok()));
    assert_eq!(records[0].line, 1);
    assert_eq!(records[49_999].line, 50_000);
    assert_eq!(records[49_999].offset, 49_999);
}

#[test]
fn byte_order_mark_at_the_top_of_a_file_is_not_a_bad_event() {
    let records = json_documents(b"\xef\xbb\xbf[{\"a\":1},{\"b\":2}]");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.event.is_ok()));
    // JSON Lines: the first line carries the mark.
    assert_eq!(decode_event(b"\xef\xbb\xbf{\"a\":1}", 100).unwrap()["a"], 1);
}

#[test]
fn json_syntax_error_says_the_rest_of_the_file_is_skipped() {
    let records = json_documents(b"{\"a\":1}\n{\"a\": oops}\n{\"a\":3}\n");
    assert_eq!(records.len(), 2);
    assert!(records[0].event.is_ok());
    let bad = records[1].event.as_ref().unwrap_err();
    assert_eq!(records[1].line, 2);
    assert!(
        bad.detail.contains("rest of the input is skipped"),
        "{}",
        bad.detail
    );
}

#[test]
fn truncated_evtx_file_reports_its_lost_chunk_instead_of_dropping_it() {
    let dir = common::shared().join("corpus/events/evtx-attack-samples/Privilege Escalation");
    let Ok(bytes) = std::fs::read(dir.join("privesc_KrbRelayUp_windows_4624.evtx")) else {
        eprintln!("skipped: the shared corpus is not beside the repository");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cut.evtx");
    std::fs::write(&path, &bytes[..40_000]).unwrap();
    let records: Vec<_> = read_records(path.to_str().unwrap()).unwrap().collect();
    let last = records
        .last()
        .expect("the truncation is reported as a record");
    let e = last.event.as_ref().unwrap_err();
    assert!(e.detail.contains("truncated"), "{}", e.detail);
    // The whole file is not reported as truncated.
    std::fs::write(&path, &bytes).unwrap();
    let records: Vec<_> = read_records(path.to_str().unwrap()).unwrap().collect();
    assert!(records.iter().all(|r| r.event.is_ok()));
}

fn folder_with_bad_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_good.yml"), GOOD_RULE).unwrap();
    let mut f = std::fs::File::create(dir.path().join("b_latin1.yml")).unwrap();
    f.write_all(b"title: caf\xe9\nlogsource: {product: windows}\n")
        .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        dir.path().join("missing"),
        dir.path().join("c_dangling.yml"),
    )
    .unwrap();
    dir
}

#[test]
fn unreadable_and_non_utf8_rule_files_fail_alone_and_the_rest_load() {
    let dir = folder_with_bad_files();
    let mut b = RuleSetBuilder::new();
    b.add_sigma_path(dir.path())
        .expect("one bad file does not stop the folder");
    let (set, report) = b.build().unwrap();
    assert_eq!(set.sigma_rule_count(), 1);
    let failed: Vec<&str> = report.failed.iter().map(|f| f.error.as_str()).collect();
    let latin1 = failed
        .iter()
        .find(|e| e.contains("b_latin1.yml"))
        .expect("non-utf-8 named");
    assert!(
        latin1.contains("b_latin1.yml:1:11:"),
        "line and column of the bad byte: {latin1}"
    );
    #[cfg(unix)]
    assert!(
        failed.iter().any(|e| e.contains("c_dangling.yml")),
        "{failed:?}"
    );
}

#[test]
fn unreadable_rule_file_rejects_a_strict_build() {
    let dir = folder_with_bad_files();
    let mut b = RuleSetBuilder::new().strict(true);
    b.add_sigma_path(dir.path()).unwrap();
    assert!(matches!(b.build(), Err(RuleSetError::Rejected { .. })));
}

#[test]
fn folder_given_as_event_input_is_an_error_not_an_endless_stream_of_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::create_dir(&path).unwrap();
    assert!(read_records(path.to_str().unwrap()).is_err());
}

struct Broken;

impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("device gone"))
    }
}

#[test]
fn read_error_is_reported_once_and_ends_the_input() {
    let records: Vec<_> = JsonLines::new(Box::new(Broken)).take(3).collect();
    assert_eq!(records.len(), 1);
    assert!(records[0]
        .event
        .as_ref()
        .unwrap_err()
        .detail
        .contains("device gone"));
}

#[test]
fn line_longer_than_the_record_limit_is_too_large_and_the_next_line_is_read() {
    let long = std::io::repeat(b'a').take(MAX_FILE_RECORD as u64 + 1000);
    let rest = std::io::Cursor::new(b"\n{\"a\":1}\n".to_vec());
    let records: Vec<_> = JsonLines::new(Box::new(long.chain(rest))).collect();
    assert_eq!(records.len(), 2);
    let e = records[0].event.as_ref().unwrap_err();
    assert_eq!(e.reason, foundry_engine::DeadLetterReason::TooLarge);
    assert_eq!(records[1].line, 2);
    assert_eq!(records[1].event.as_ref().unwrap()["a"], 1);
}
