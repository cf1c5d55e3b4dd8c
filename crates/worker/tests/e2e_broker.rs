//! End to end against a real Kafka-protocol broker (acceptance item 6).
//!
//! Runs only when `FOUNDRY_E2E_BROKERS` names a broker (`.ci/run` starts tansu with
//! `deploy/ci/start-tansu.sh`); otherwise it prints a notice and passes. Corpus events are
//! produced to a fresh topic, the worker runs in Kafka mode until the group has committed the
//! end of the input, and the hits topic must hold exactly the (event, rule) pairs that the
//! engine finds on the same records — what `foundry scan` computes.
//!
//! The subset: SigmaHQ's Windows rules over the OTRF Windows files under 1.5 MB, at most
//! `FOUNDRY_E2E_MAX_EVENTS` (default 4,000) events, so the debug build finishes in minutes.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::kafka as k;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

fn corpus() -> PathBuf {
    std::env::var_os("FOUNDRY_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
}

fn jsonl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            jsonl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
}

fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
    for r in results {
        if let Err((topic, e)) = r {
            assert_eq!(
                e,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "creating {topic}: {e}"
            );
        }
    }
}

#[test]
fn corpus_events_through_a_real_broker_give_the_engines_hits() {
    let Ok(brokers) = std::env::var("FOUNDRY_E2E_BROKERS") else {
        println!("skipped: set FOUNDRY_E2E_BROKERS (deploy/ci/start-tansu.sh starts a broker) to run the end-to-end test");
        return;
    };
    let max_events: usize = std::env::var("FOUNDRY_E2E_MAX_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let corpus = corpus();
    let mut files = Vec::new();
    jsonl_files(&corpus.join("events/otrf/windows"), &mut files);
    files.sort();
    files.retain(|f| std::fs::metadata(f).is_ok_and(|m| m.len() < 1_500_000));
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    'files: for f in &files {
        for line in std::fs::read(f).unwrap().split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            payloads.push(line.to_vec());
            if payloads.len() >= max_events {
                break 'files;
            }
        }
    }
    // One poison record of each kind ride along; they must reach the dead-letter topic.
    payloads.push(b"{\"truncated\": ".to_vec());
    payloads.push(b"[\"an\", \"array\"]".to_vec());
    payloads.push(format!("{{\"blob\": \"{}\"}}", "A".repeat(10 << 20)).into_bytes());

    let run = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let (input, hits, dead) = (
        format!("e2e-events-{run}"),
        format!("e2e-hits-{run}"),
        format!("e2e-dead-{run}"),
    );
    create_topics(&brokers, &[(&input, 3), (&hits, 1), (&dead, 1)]);

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut base = foundry_worker::WorkerConfig::default();
    base.rules = vec![corpus.join("sigma/rules/windows")];
    base.mapping = vec![repo.join("config/mappings/windows.toml")];
    k::produce(&brokers, &input, 3, &payloads);
    let read = k::read_all(&brokers, &input, 3);
    assert_eq!(read.len(), payloads.len());
    let records: Vec<(i32, i64, Vec<u8>)> = read
        .iter()
        .map(|r| (r.partition, r.offset, r.payload.clone()))
        .collect();
    let expected = common::expected_hits(&base, &records);

    let group = format!("e2e-{run}");
    let mut config = k::kafka_config(&base, &brokers, &group, &input);
    let kafka = config.kafka.as_mut().unwrap();
    kafka.hits_topic = hits.clone();
    kafka.dead_letter_topic = dead.clone();
    kafka.commit_interval_ms = 200;
    config.worker_id = Some("e2e".into());
    let worker = k::start(config);
    k::wait_all_committed(&brokers, &group, &input, 3, Duration::from_secs(600));
    let summary = worker.stop();

    let got: Vec<(i32, i64, String)> = k::hit_keys(&k::read_all(&brokers, &hits, 1));
    let distinct: BTreeSet<_> = got.iter().cloned().collect();
    let letters = k::read_all(&brokers, &dead, 1);
    println!(
        "acceptance 6: {} events ({} files), worker read {}, {} hits expected, {} hits on the topic ({} distinct), {} dead letters",
        payloads.len(),
        files.len(),
        summary.events,
        expected.len(),
        got.len(),
        distinct.len(),
        letters.len()
    );
    assert_eq!(distinct, expected);
    assert_eq!(letters.len(), 3);
}
