//! Hot reload (the reload issue's acceptance items 1, 2 and 4).
//!
//! Expected values come from the rule texts written here: rule `always` matches every event
//! (`seq|gte: 0`), rule `even` only events with `parity: even`, rule `odd` only `parity: odd`,
//! so which hits an event must get under each rule set is known without asking the engine.

// Configurations are written setting by setting, as a reader compares them with the TOML.
#![allow(clippy::field_reassign_with_default)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundry_engine::Hit;
use foundry_worker::delivery::{PartitionKey, Ticket};
use foundry_worker::pipeline::{DeadLetter, DeadLetterSink, HitSink, RawRecord, Source};
use foundry_worker::{ReloadOutcome, Trigger, Worker, WorkerConfig, WorkerError};
use serde_json::json;

const ALWAYS: &str = "title: Always\nid: 0a0a0a0a-0000-4000-8000-000000000001\nlevel: low\nlogsource:\n  product: windows\ndetection:\n  selection:\n    seq|gte: 0\n  condition: selection\n";
const EVEN: &str = "title: Even\nid: 0a0a0a0a-0000-4000-8000-000000000002\nlevel: medium\nlogsource:\n  product: windows\ndetection:\n  selection:\n    parity: even\n  condition: selection\n";
const ODD: &str = "title: Odd\nid: 0a0a0a0a-0000-4000-8000-000000000003\nlevel: high\nlogsource:\n  product: windows\ndetection:\n  selection:\n    parity: odd\n  condition: selection\n";
const ALWAYS_ID: &str = "0a0a0a0a-0000-4000-8000-000000000001";
const EVEN_ID: &str = "0a0a0a0a-0000-4000-8000-000000000002";
const ODD_ID: &str = "0a0a0a0a-0000-4000-8000-000000000003";

fn config(rules: &Path, watch: bool) -> WorkerConfig {
    let mut c = WorkerConfig::default();
    c.rules = vec![rules.to_path_buf()];
    c.reload.watch = watch;
    c.reload.debounce_ms = 30;
    c.batch_size = 200;
    c.batch_wait_ms = 5;
    c.max_in_flight = 2000;
    c
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Write-then-rename, as the protocol asks of editors and deploy tools.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn failures(worker: &Worker) -> u64 {
    worker.metrics().reload_failures.get()
}

fn version(worker: &Worker) -> String {
    worker.rules().current().version().to_string()
}

/// Each bad change is rejected whole: the failure counter rises by one, the running version
/// stays, `/readyz` shows the reason, and the set keeps matching as before.
#[test]
fn a_failing_rule_set_never_replaces_the_running_one() {
    let dir = common::tempdir();
    let rules = dir.path().join("rules");
    write(&rules.join("always.yml"), ALWAYS);
    let worker = Worker::new(config(&rules, false)).unwrap();
    let reloader = worker.reloader().unwrap();
    let good = version(&worker);
    let event = json!({"seq": 1, "parity": "odd"});
    let hits_now = |w: &Worker| {
        w.rules()
            .current()
            .evaluate(&event, &Default::default(), None)
            .hits
            .into_iter()
            .map(|h| h.rule.id)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(hits_now(&worker), BTreeSet::from([ALWAYS_ID.to_string()]));

    type BreakIt<'a> = Box<dyn Fn() + 'a>;
    let bad_cases: Vec<(&str, BreakIt)> = vec![
        (
            "invalid YAML",
            Box::new(|| write(&rules.join("bad.yml"), "title: [unclosed\ndetection: {\n")),
        ),
        (
            "unknown modifier",
            Box::new(|| {
                write(
                    &rules.join("bad.yml"),
                    &ODD.replace("parity: odd", "parity|startswidth: odd"),
                )
            }),
        ),
        (
            "half-written file",
            // The first half of a rule, as a writer that was cut off leaves it.
            Box::new(|| write(&rules.join("bad.yml"), &ODD[..ODD.len() / 2])),
        ),
    ];
    let mut expected_failures = 0;
    for (name, break_it) in &bad_cases {
        break_it();
        let err = reloader.reload(Trigger::Admin).unwrap_err().to_string();
        expected_failures += 1;
        assert!(
            err.contains("bad.yml"),
            "{name}: the error names the file: {err}"
        );
        assert_eq!(failures(&worker), expected_failures, "{name}: counted once");
        assert_eq!(version(&worker), good, "{name}: the old set keeps running");
        assert_eq!(
            hits_now(&worker),
            BTreeSet::from([ALWAYS_ID.to_string()]),
            "{name}"
        );
        let shown = worker.readiness().reload_error().unwrap_or_default();
        assert!(
            shown.contains("bad.yml"),
            "{name}: /readyz shows it: {shown}"
        );
        std::fs::remove_file(rules.join("bad.yml")).unwrap();
    }
    let text = rules.join("unknown.yml");
    write(
        &text,
        &ODD.replace("parity: odd", "parity|startswidth: odd"),
    );
    let err = reloader.reload(Trigger::Signal).unwrap_err().to_string();
    assert!(
        err.contains("startswidth"),
        "the error names the modifier: {err}"
    );
    assert!(
        err.contains("unknown.yml:8:"),
        "and its file and line: {err}"
    );
    std::fs::remove_file(&text).unwrap();
    expected_failures += 1;

    // Once the folder is good again, the next reload takes it and clears the error.
    write(&rules.join("odd.yml"), ODD);
    let outcome = reloader.reload(Trigger::Admin).unwrap();
    assert!(
        matches!(outcome, ReloadOutcome::Swapped { .. }),
        "{outcome:?}"
    );
    assert_ne!(version(&worker), good);
    assert_eq!(
        hits_now(&worker),
        BTreeSet::from([ALWAYS_ID.to_string(), ODD_ID.to_string()])
    );
    assert_eq!(worker.readiness().reload_error(), None);
    assert_eq!(failures(&worker), expected_failures);
    // The same sources again: nothing to do, nothing counted.
    let again = reloader.reload(Trigger::Admin).unwrap();
    assert!(
        matches!(again, ReloadOutcome::Unchanged { .. }),
        "{again:?}"
    );
}

#[test]
fn a_yara_syntax_error_keeps_the_old_set() {
    let dir = common::tempdir();
    let yara = dir.path().join("yara");
    write(
        &yara.join("eicar.yar"),
        "rule eicar_probe { strings: $a = \"EICAR-STANDARD\" condition: $a }\n",
    );
    let mut c = config(&dir.path().join("none"), false);
    c.rules.clear();
    c.yara = vec![yara.clone()];
    let worker = Worker::new(c).unwrap();
    let reloader = worker.reloader().unwrap();
    let good = version(&worker);
    write(
        &yara.join("broken.yar"),
        "rule broken { strings: $a = \"x\" condition: $b }\n",
    );
    let err = reloader.reload(Trigger::Admin).unwrap_err().to_string();
    assert!(err.contains("broken.yar"), "{err}");
    assert_eq!(failures(&worker), 1);
    assert_eq!(version(&worker), good);
    assert_eq!(worker.rules().current().yara_rule_count(), 1);
}

/// A file that keeps growing while the reloader reads it is never loaded: two reads one
/// debounce apart must agree first.
#[test]
fn a_file_still_being_written_is_not_loaded() {
    let dir = common::tempdir();
    let rules = dir.path().join("rules");
    write(&rules.join("always.yml"), ALWAYS);
    let worker = Worker::new(config(&rules, false)).unwrap();
    let reloader = worker.reloader().unwrap();
    let good = version(&worker);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, done) = (rules.join("growing.yml"), done.clone());
        std::thread::spawn(move || {
            // A valid rule first, then more comment bytes every few milliseconds: any read
            // of it would compile, but it is never the same twice.
            std::fs::write(&path, EVEN).unwrap();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            while !done.load(Ordering::Acquire) {
                use std::io::Write;
                f.write_all(b"# more\n").unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let err = reloader.reload(Trigger::Files).unwrap_err().to_string();
    done.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(err.contains("kept changing"), "{err}");
    assert_eq!(version(&worker), good);
    assert_eq!(failures(&worker), 1);
}

/// Kubernetes updates a mounted ConfigMap by re-pointing the `..data` symlink in one
/// rename; the watcher notices without being asked, a good target is taken, a bad one is
/// rejected.
#[cfg(unix)]
#[test]
fn the_configmap_symlink_swap_is_followed_and_a_bad_target_rejected() {
    use std::os::unix::fs::symlink;
    let dir = common::tempdir();
    let mount = dir.path().join("mount");
    let v1 = mount.join("..v1");
    write(&v1.join("rule.yml"), ALWAYS);
    symlink("..v1", mount.join("..data")).unwrap();
    symlink("..data/rule.yml", mount.join("rule.yml")).unwrap();
    let worker = Worker::new(config(&mount, true)).unwrap();
    let reloader = worker.reloader().unwrap();
    reloader.spawn().unwrap();
    let first = version(&worker);
    let swap_to = |target: &str| {
        let tmp = mount.join("..data_tmp");
        symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, mount.join("..data")).unwrap();
    };

    write(&mount.join("..v2").join("rule.yml"), EVEN);
    swap_to("..v2");
    let deadline = Instant::now() + Duration::from_secs(20);
    while version(&worker) == first && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = version(&worker);
    assert_ne!(second, first, "the watcher followed the symlink swap");
    assert_eq!(
        worker.rules().current().rule_ids(),
        vec![EVEN_ID.to_string()]
    );

    write(
        &mount.join("..v3").join("rule.yml"),
        &EVEN.replace("parity: even", "parity|nosuchmodifier: even"),
    );
    swap_to("..v3");
    let deadline = Instant::now() + Duration::from_secs(20);
    while failures(&worker) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        failures(&worker),
        1,
        "the bad target was tried and rejected"
    );
    assert_eq!(version(&worker), second, "the running set stays");
    reloader.stop();
}

/// A rule whose `valid_until` passes while the worker runs stops producing hits within one
/// timer interval.
#[test]
fn an_expired_rule_stops_within_one_reload_interval() {
    let dir = common::tempdir();
    let rules = dir.path().join("rules");
    write(&rules.join("always.yml"), ALWAYS);
    let until = chrono::Utc::now() + chrono::Duration::seconds(2);
    let expiring = EVEN.replace(
        "level: medium\n",
        &format!("level: medium\nvalid_until: '{}'\n", until.to_rfc3339()),
    );
    write(&rules.join("even.yml"), &expiring);
    let mut c = config(&rules, false);
    c.reload.interval_secs = 1;
    let worker = Worker::new(c).unwrap();
    let reloader = worker.reloader().unwrap();
    reloader.spawn().unwrap();
    let event = json!({"seq": 2, "parity": "even"});
    let fires = || {
        worker
            .rules()
            .current()
            .evaluate(&event, &Default::default(), None)
            .hits
            .iter()
            .any(|h| h.rule.id == EVEN_ID)
    };
    assert!(fires(), "valid until {until}: it runs now");
    while chrono::Utc::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    // One interval, plus time for the reload itself on a loaded machine.
    std::thread::sleep(Duration::from_millis(1000 + 1500));
    assert!(!fires(), "expired at {until}: it must be gone by now");
    let text = worker.metrics().render();
    assert!(text.contains("foundry_ruleset_expired_rules 1"), "{text}");
    reloader.stop();
}

// --- 100 swaps under a continuous stream ------------------------------------------------

/// An endless input, handed out as fast as the pipeline takes it, until `stop`.
struct Stream {
    next: u64,
    stop: Arc<AtomicBool>,
    key: PartitionKey,
    fetched: Arc<AtomicU64>,
}

impl Source for Stream {
    fn fetch(
        &mut self,
        max: usize,
        _wait: Duration,
    ) -> Result<Option<Vec<RawRecord>>, WorkerError> {
        if self.stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        let n = max as u64;
        let records = (self.next..self.next + n)
            .map(|i| {
                let payload = serde_json::to_vec(&json!({
                    "seq": i,
                    "parity": if i % 2 == 0 { "even" } else { "odd" },
                }))
                .unwrap();
                RawRecord::new(self.key.clone(), i as i64, payload.into())
            })
            .collect();
        self.next += n;
        self.fetched.store(self.next, Ordering::Release);
        Ok(Some(records))
    }
}

/// Every batch as the emit stage closed it: its records' offsets and its hits.
#[derive(Default)]
struct Batches(Mutex<Vec<(Vec<i64>, Vec<Hit>)>>, Mutex<Vec<Hit>>);

struct Capture(Arc<Batches>);

impl HitSink for Capture {
    fn send(&mut self, hit: &Hit, _: Option<&[u8]>, ack: Arc<Ticket>) -> Result<(), WorkerError> {
        self.0 .1.lock().unwrap().push(hit.clone());
        ack.done();
        Ok(())
    }
    fn end_batch(&mut self, records: &[RawRecord]) -> Result<(), WorkerError> {
        let hits = std::mem::take(&mut *self.0 .1.lock().unwrap());
        let offsets = records.iter().map(|r| r.offset).collect();
        self.0 .0.lock().unwrap().push((offsets, hits));
        Ok(())
    }
}

struct NoLetters;

impl DeadLetterSink for NoLetters {
    fn send(&mut self, letter: &DeadLetter<'_>, _: Arc<Ticket>) -> Result<(), WorkerError> {
        panic!("no event of this stream is bad: {:?}", letter.error);
    }
    fn end_batch(&mut self) -> Result<(), WorkerError> {
        Ok(())
    }
}

#[test]
fn a_hundred_swaps_under_a_stream_lose_and_duplicate_nothing() {
    let dir = common::tempdir();
    let rules = dir.path().join("rules");
    write(&rules.join("always.yml"), ALWAYS);
    write(&rules.join("variant.yml"), EVEN);
    let worker = Arc::new(Worker::new(config(&rules, false)).unwrap());
    let reloader = worker.reloader().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let fetched = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(Batches::default());
    let source = Stream {
        next: 0,
        stop: stop.clone(),
        key: PartitionKey {
            topic: "stream".into(),
            partition: 0,
        },
        fetched: fetched.clone(),
    };
    let run = {
        let (worker, batches) = (worker.clone(), batches.clone());
        std::thread::spawn(move || {
            worker.run_with(
                Box::new(source),
                Box::new(Capture(batches)),
                Box::new(NoLetters),
            )
        })
    };
    // The rule set each version stands for, in the order they went live.
    let mut live: Vec<(String, &str)> = vec![(version(&worker), EVEN_ID)];
    let mut swaps = 0;
    while swaps < 100 {
        // Let the stream move between swaps, so that every swap lands mid-stream.
        let before = fetched.load(Ordering::Acquire);
        while fetched.load(Ordering::Acquire) < before + 1000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (text, id) = if swaps % 2 == 0 {
            (ODD, ODD_ID)
        } else {
            (EVEN, EVEN_ID)
        };
        // Each text gets a marker so that every swap is a new version.
        write(
            &rules.join("variant.yml"),
            &format!("{text}# swap {swaps}\n"),
        );
        match reloader.reload(Trigger::Admin).unwrap() {
            ReloadOutcome::Swapped { to, .. } => live.push((to, id)),
            other => panic!("swap {swaps}: {other:?}"),
        }
        swaps += 1;
    }
    stop.store(true, Ordering::Release);
    let summary = run.join().unwrap().unwrap();
    let total = fetched.load(Ordering::Acquire);
    assert_eq!(summary.events, total);
    assert_eq!(summary.unacknowledged, 0);

    let order: BTreeMap<&str, (usize, &str)> = live
        .iter()
        .enumerate()
        .map(|(i, (v, id))| (v.as_str(), (i, *id)))
        .collect();
    let batches = batches.0.lock().unwrap();
    let mut seen = vec![0u32; total as usize];
    let mut last_rank = 0;
    let mut versions_used = BTreeSet::new();
    for (offsets, hits) in batches.iter() {
        for o in offsets {
            seen[*o as usize] += 1;
        }
        let batch_versions: BTreeSet<&str> =
            hits.iter().map(|h| h.ruleset.version.as_str()).collect();
        assert!(
            batch_versions.len() <= 1,
            "one batch, one version: {batch_versions:?}"
        );
        let Some(v) = batch_versions.into_iter().next() else {
            continue;
        };
        let (rank, variant) = order[v];
        assert!(
            rank >= last_rank,
            "a batch ran version #{rank} after one ran #{last_rank}"
        );
        last_rank = rank;
        versions_used.insert(v);
        // Every event of the batch: `always` once, and the variant exactly when its parity fits.
        let mut per_event: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for h in hits {
            per_event
                .entry(h.event.offset)
                .or_default()
                .push(h.rule.id.as_str());
        }
        for o in offsets {
            let mut want = vec![ALWAYS_ID];
            let even = o % 2 == 0;
            if (variant == EVEN_ID) == even {
                want.push(variant);
            }
            let mut got = per_event.remove(&(*o as u64)).unwrap_or_default();
            got.sort();
            want.sort();
            assert_eq!(got, want, "event {o} under version #{rank}");
        }
        assert!(
            per_event.is_empty(),
            "hits for events outside the batch: {per_event:?}"
        );
    }
    let lost = seen.iter().filter(|n| **n == 0).count();
    let doubled = seen.iter().filter(|n| **n > 1).count();
    assert_eq!(
        (lost, doubled),
        (0, 0),
        "events lost, events evaluated twice"
    );
    assert_eq!(
        worker.metrics().reloads.with_label_values(&["admin"]).get(),
        100
    );
    println!(
        "100 swaps under a stream of {total} events in {} batches: {} versions produced hits, \
         0 events lost, 0 duplicated",
        batches.len(),
        versions_used.len()
    );
}
