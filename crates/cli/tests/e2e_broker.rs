//! End to end against a real Kafka-protocol broker (the worker issue's acceptance item 6),
//! through the `foundry` binary on both sides.
//!
//! Runs only when `FOUNDRY_E2E_BROKERS` names a broker (`.ci/run` starts tansu with
//! `deploy/ci/start-tansu.sh`); otherwise it says so and passes. Every JSON Lines event of
//! `../shared/corpus/events` is produced to a fresh topic, keyed by its file and line, with
//! four poison records (one a 10 MB value); `foundry worker` runs as a consumer group until
//! the group has committed the end of the input and is then stopped with SIGTERM. The hits
//! topic must hold exactly the (file, line, rule) triples that `foundry scan` prints for the
//! same files, and the dead-letter topic one record per poison record with its reason.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde_json::Value;

// The worker's own Kafka test helpers: reading topics back, the group's commits.
#[path = "../../worker/tests/common/kafka.rs"]
mod kafka;

const BIN: &str = env!("CARGO_BIN_EXE_foundry");
const PARTITIONS: i32 = 3;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
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
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in rt.block_on(admin.create_topics(&new, &options)).unwrap() {
        if let Err((topic, e)) = r {
            panic!("creating {topic}: {e}");
        }
    }
}

#[test]
fn the_hits_topic_holds_what_foundry_scan_finds() {
    let Ok(brokers) = std::env::var("FOUNDRY_E2E_BROKERS") else {
        println!(
            "skipped: set FOUNDRY_E2E_BROKERS (deploy/ci/start-tansu.sh starts a broker) to run \
             the end-to-end test"
        );
        return;
    };
    let corpus = repo().join("../shared/corpus");
    let rules = corpus.join("sigma/rules");
    let mapping = repo().join("config/mappings/windows.toml");
    let mut files = Vec::new();
    jsonl_files(&corpus.join("events"), &mut files);
    files.sort();
    assert!(
        files.len() >= 40,
        "the corpus's JSON Lines files: {}",
        files.len()
    );

    // What `foundry scan` finds: (file, 0-based line, rule id).
    let scan = Command::new(BIN)
        .arg("scan")
        .arg("--rules")
        .arg(&rules)
        .arg("--mapping")
        .arg(&mapping)
        .args(&files)
        .output()
        .unwrap();
    let mut expected = BTreeSet::new();
    for line in String::from_utf8(scan.stdout).unwrap().lines() {
        let hit: Value = serde_json::from_str(line).unwrap();
        expected.insert((
            hit["event"]["source"].as_str().unwrap().to_string(),
            hit["event"]["offset"].as_u64().unwrap(),
            hit["rule"]["id"].as_str().unwrap().to_string(),
        ));
    }
    assert!(
        expected.len() > 500,
        "the corpus gives many hits: {}",
        expected.len()
    );

    let run = format!("{}-{}", std::process::id(), chrono_free_millis());
    let (input, hits, dead) = (
        format!("e2e-events-{run}"),
        format!("e2e-hits-{run}"),
        format!("e2e-dead-{run}"),
    );
    create_topics(&brokers, &[(&input, PARTITIONS), (&hits, 1), (&dead, 1)]);

    // Each line keyed `file\tline`; blank lines are not events (`foundry scan` skips them too).
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("message.max.bytes", "20000000")
        .create()
        .unwrap();
    let send = |key: &str, payload: &[u8], partition: i32| {
        let mut record = BaseRecord::to(&input)
            .partition(partition)
            .key(key)
            .payload(payload);
        while let Err((_, back)) = producer.send(record) {
            record = back;
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // (key, bytes, partition) of every record the input topic must hold.
    let mut records: Vec<(String, Vec<u8>, i32)> = Vec::new();
    let mut events = 0usize;
    for f in &files {
        let name = f.display().to_string();
        for (i, line) in std::fs::read(f).unwrap().split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let partition = (events % PARTITIONS as usize) as i32;
            records.push((format!("{name}\t{i}"), line.to_vec(), partition));
            events += 1;
        }
    }
    let huge = format!("{{\"blob\": \"{}\"}}", "A".repeat(10 << 20)).into_bytes();
    let poison: [(&str, &[u8]); 4] = [
        ("not_json", b"{\"EventID\": 4688, "),
        ("not_object", b"[\"an\", \"array\"]"),
        ("not_utf8", b"{\"CommandLine\": \"\xff\xfe\"}"),
        ("too_large", &huge),
    ];
    for (i, (reason, bytes)) in poison.iter().enumerate() {
        records.push((
            format!("poison\t{reason}"),
            bytes.to_vec(),
            i as i32 % PARTITIONS,
        ));
    }
    for (key, bytes, partition) in &records {
        send(key, bytes, *partition);
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    // tansu on memory storage has been seen to acknowledge produce requests it then does not
    // keep (README, Known limits). This test is about the worker, so records missing from the
    // input topic are sent again until it holds every one (a few rounds at most).
    let mut produced = kafka::read_all(&brokers, &input, PARTITIONS);
    for _ in 0..5 {
        let held: HashSet<&[u8]> = produced.iter().filter_map(|r| r.key.as_deref()).collect();
        let missing: Vec<_> = records
            .iter()
            .filter(|(key, _, _)| !held.contains(key.as_bytes()))
            .collect();
        if missing.is_empty() {
            break;
        }
        for (key, bytes, partition) in missing {
            send(key, bytes, *partition);
        }
        producer.flush(Duration::from_secs(120)).unwrap();
        produced = kafka::read_all(&brokers, &input, PARTITIONS);
    }
    assert_eq!(produced.len(), events + poison.len());
    let key_of: HashMap<(i32, i64), String> = produced
        .iter()
        .map(|r| {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default());
            ((r.partition, r.offset), key.into_owned())
        })
        .collect();
    let mut ends = vec![0i64; PARTITIONS as usize];
    for r in &produced {
        ends[r.partition as usize] = ends[r.partition as usize].max(r.offset + 1);
    }

    let group = format!("e2e-{run}");
    let started = Instant::now();
    let mut worker = Command::new(BIN)
        .args([
            "worker",
            "--brokers",
            &brokers,
            "--group",
            &group,
            "--input-topic",
            &input,
        ])
        .args([
            "--hits-topic",
            &hits,
            "--dead-letter-topic",
            &dead,
            "--worker-id",
            "e2e",
        ])
        .arg("--rules")
        .arg(&rules)
        .arg("--mapping")
        .arg(&mapping)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    while kafka::committed(&brokers, &group, &input, PARTITIONS) != ends {
        assert!(
            Instant::now() < deadline,
            "the worker did not commit the end of the input"
        );
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker exited early"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed();
    sigterm(worker.id());
    let status = worker.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(worker.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "the worker's exit after SIGTERM: {status}; {stderr}"
    );

    // What the worker had acknowledged by the broker when it stopped.
    let summary = stderr
        .lines()
        .find_map(|l| l.strip_prefix("foundry worker: "))
        .unwrap_or_else(|| panic!("no summary in the worker's stderr:\n{stderr}"));
    let counts: Vec<usize> = summary
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    let (read, acked_hits, acked_letters) = (counts[0], counts[1], counts[2]);
    assert!(!summary.contains("unacknowledged"), "{summary}");
    assert_eq!(
        read,
        events + poison.len(),
        "records the worker read: {summary}"
    );
    assert_eq!(
        acked_hits,
        expected.len(),
        "hits the broker acknowledged: {summary}"
    );
    assert_eq!(
        acked_letters,
        poison.len(),
        "dead letters acknowledged: {summary}"
    );

    let mut got = BTreeSet::new();
    let stored = kafka::read_all(&brokers, &hits, 1);
    for record in &stored {
        let hit: Value = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(hit["event"]["topic"], input.as_str());
        assert_eq!(hit["worker"], "e2e");
        let at = (
            hit["event"]["partition"].as_i64().unwrap() as i32,
            hit["event"]["offset"].as_i64().unwrap(),
        );
        let (file, line) = key_of[&at].split_once('\t').unwrap();
        got.insert((
            file.to_string(),
            line.parse::<u64>().unwrap(),
            hit["rule"]["id"].as_str().unwrap().to_string(),
        ));
    }
    let letters: BTreeMap<String, String> = kafka::read_all(&brokers, &dead, 1)
        .into_iter()
        .map(|r| {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default());
            let reason = String::from_utf8_lossy(&r.headers["foundry-reason"]);
            (key.into_owned(), reason.into_owned())
        })
        .collect();
    // tansu 0.6 on memory storage has been seen to acknowledge produce requests it then does
    // not keep (the topic's end stays short of what it acknowledged). What it dropped cannot
    // be checked; everything else must be exactly what `foundry scan` finds.
    let dropped = acked_hits.saturating_sub(stored.len());
    println!(
        "acceptance 6: {events} corpus events from {} files + {} poison records through the \
         broker in {took:.1?}; foundry scan: {} hits; worker: {acked_hits} hits and \
         {acked_letters} dead letters acknowledged; hits topic: {} records ({} distinct \
         (event, rule) pairs), dead-letter topic: {}; acknowledged but not kept by the \
         broker: {dropped} hits, {} dead letters",
        files.len(),
        poison.len(),
        expected.len(),
        stored.len(),
        got.len(),
        letters.len(),
        acked_letters - letters.len(),
    );
    assert_eq!(got.len(), stored.len(), "no hit twice after a clean stop");
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(
        extra.is_empty(),
        "hits foundry scan does not find: {extra:?}"
    );
    let missing = expected.difference(&got).count();
    assert_eq!(
        missing, dropped,
        "every missing hit is one the broker dropped"
    );
    let want: BTreeMap<String, String> = poison
        .iter()
        .map(|(reason, _)| (format!("poison\t{reason}"), reason.to_string()))
        .collect();
    for (key, reason) in &letters {
        assert_eq!(want.get(key), Some(reason), "dead letter {key}");
    }
}

fn chrono_free_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
