//! YARA-X scanning throughput over the public corpus.
//!
//! Compiles every rule file of `../shared/corpus/yara` that compiles on its own (the
//! `*index*` files are left out: they only include the others) into one rule set, then
//! scans generated payloads of 1 MiB each: log-like text, a PowerShell-like script, a
//! base64 body and random bytes. Reports bytes per second per payload kind.
//!
//! Run: `cargo bench -p foundry-benches --bench yara_scan` (`FOUNDRY_YARA_CORPUS=DIR` points
//! at another rule folder).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The allocator of the `foundry` binary, so the figures are what the product runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foundry_yara::{check_file, Payload, ScanLimits, YaraRuleSet, YaraSource};

const PAYLOAD_BYTES: usize = 1024 * 1024;

fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FOUNDRY_YARA_CORPUS") {
        return PathBuf::from(dir);
    }
    // benches/ sits in the workspace root; shared/ is beside the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/yara")
}

fn rule_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rule_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yar" || e == "yara")
            && !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("index"))
        {
            out.push(path);
        }
    }
}

fn corpus_rules() -> (YaraRuleSet, usize, usize) {
    let mut files = Vec::new();
    rule_files(&corpus_dir(), &mut files);
    files.sort();
    let total = files.len();
    let sources: Vec<YaraSource> = files
        .iter()
        .filter(|f| check_file(f).is_ok())
        .map(|f| YaraSource::read(f).expect("readable"))
        .collect();
    let used = sources.len();
    let set = YaraRuleSet::compile(&sources)
        .unwrap_or_else(|errors| panic!("files that compile alone failed together: {}", errors[0]));
    (set, used, total)
}

/// A small deterministic generator (xorshift64*), so every run scans the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn text_payload(rng: &mut Rng, words: &[&str]) -> Vec<u8> {
    let mut out = String::with_capacity(PAYLOAD_BYTES + 256);
    while out.len() < PAYLOAD_BYTES {
        for _ in 0..12 {
            out.push_str(rng.pick(words));
            out.push(' ');
        }
        out.push_str(&format!("0x{:08x}\r\n", rng.next() as u32));
    }
    out.truncate(PAYLOAD_BYTES);
    out.into_bytes()
}

fn payloads() -> Vec<(&'static str, Payload)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let log_words = [
        "GET",
        "POST",
        "/index.php",
        "HTTP/1.1",
        "200",
        "404",
        "user=alice",
        "host=web-01",
        "C:\\Windows\\System32\\svchost.exe",
        "/usr/bin/curl",
        "Mozilla/5.0",
        "session",
        "error",
        "connection",
        "accepted",
        "from",
        "10.0.0.12",
        "port",
        "ssh2",
        "timeout",
    ];
    let script_words = [
        "$client",
        "=",
        "New-Object",
        "System.Net.WebClient;",
        "Invoke-Expression",
        "-Command",
        "Get-Process",
        "|",
        "Where-Object",
        "{$_.Name",
        "-eq",
        "'explorer'}",
        "foreach",
        "($i",
        "in",
        "1..10)",
        "Write-Host",
        "[Convert]::FromBase64String(",
        "$env:TEMP",
        "Start-Sleep",
    ];
    let log = text_payload(&mut rng, &log_words);
    let script = text_payload(&mut rng, &script_words);
    let random: Vec<u8> = (0..PAYLOAD_BYTES).map(|_| rng.next() as u8).collect();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = Vec::with_capacity(PAYLOAD_BYTES);
    while base64.len() < PAYLOAD_BYTES {
        for _ in 0..76 {
            base64.push(alphabet[(rng.next() % 64) as usize]);
        }
        base64.extend_from_slice(b"\r\n");
    }
    base64.truncate(PAYLOAD_BYTES);
    vec![
        ("log_text", Payload::new("log", log)),
        ("script_text", Payload::new("script", script)),
        ("base64_text", Payload::new("body", base64)),
        ("random_bytes", Payload::new("blob", random)),
    ]
}

fn bench_scan(c: &mut Criterion) {
    let (rules, used, total) = corpus_rules();
    eprintln!(
        "yara_scan: {used} of {total} corpus files, {} rules",
        rules.rule_count()
    );
    let limits = ScanLimits {
        timeout: Duration::from_secs(60),
        ..ScanLimits::default()
    };
    let mut group = c.benchmark_group("yara_scan");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, payload) in payloads() {
        group.throughput(Throughput::Bytes(payload.bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(rules.scan(black_box(&payload), &limits).expect("scan")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_scan);
criterion_main!(benches);
