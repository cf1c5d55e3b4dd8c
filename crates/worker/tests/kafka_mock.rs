//! Delivery guarantees against librdkafka's mock cluster (acceptance items 1–5).
//!
//! Expected hits are always computed by evaluating the input records directly with the
//! engine (`common::expected_hits`), never taken from the worker's output. The tests share one
//! lock: each starts a mock cluster and several workers, and two cores are not enough to run
//! them side by side in reasonable time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use common::kafka::{self as k, Read};
use foundry_engine::DeadLetterReason;
use rdkafka::mocking::{MockCluster, MockCoordinator};

static SERIAL: Mutex<()> = Mutex::new(());

const INPUT: &str = "events";

struct Setup {
    _dir: tempfile::TempDir,
    base: foundry_worker::WorkerConfig,
    expected: BTreeSet<(i32, i64, String)>,
    input: Vec<Read>,
    hits: std::cell::RefCell<Option<k::Collector>>,
}

/// Produces `payloads` to the input topic, reads them back (to learn partitions and offsets)
/// and computes the hits the engine finds on them.
fn setup(brokers: &str, partitions: i32, payloads: &[Vec<u8>]) -> Setup {
    let dir = common::tempdir();
    let base = common::config_with_rules(dir.path());
    k::produce(brokers, INPUT, partitions, payloads);
    let input = k::read_all(brokers, INPUT, partitions);
    assert_eq!(input.len(), payloads.len());
    let records: Vec<(i32, i64, Vec<u8>)> = input
        .iter()
        .map(|r| (r.partition, r.offset, r.payload.clone()))
        .collect();
    let expected = common::expected_hits(&base, &records);
    // Read from the start: the hits of a long run outgrow what the mock cluster keeps.
    let hits = std::cell::RefCell::new(Some(k::Collector::start(brokers, "hits", 3)));
    Setup {
        hits,
        _dir: dir,
        base,
        expected,
        input,
    }
}

fn events(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| serde_json::to_vec(&common::event(i)).unwrap())
        .collect()
}

struct Outcome {
    missing: usize,
    duplicates: usize,
    duplicated_events: usize,
    total: usize,
}

fn compare(s: &Setup) -> Outcome {
    let expected = &s.expected;
    let reads = s.hits.borrow_mut().take().expect("compared once").finish();
    let got = k::hit_keys(&reads);
    let distinct: BTreeSet<_> = got.iter().cloned().collect();
    let mut counts: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (p, o, _) in &got {
        *counts.entry((*p, *o)).or_default() += 1;
    }
    let per_event: BTreeMap<(i32, i64), usize> =
        distinct.iter().fold(BTreeMap::new(), |mut m, (p, o, _)| {
            *m.entry((*p, *o)).or_default() += 1;
            m
        });
    let unexpected: Vec<_> = distinct.difference(expected).take(5).collect();
    assert!(
        unexpected.is_empty(),
        "hits the engine does not find: {unexpected:?}"
    );
    let mut gaps: BTreeMap<i32, (i64, i64, usize)> = BTreeMap::new();
    for (p, o, _) in expected.difference(&distinct) {
        let g = gaps.entry(*p).or_insert((i64::MAX, i64::MIN, 0));
        *g = (g.0.min(*o), g.1.max(*o), g.2 + 1);
    }
    if !gaps.is_empty() {
        println!("missing hits by input partition (first offset, last offset, count): {gaps:?}");
    }
    Outcome {
        missing: expected.difference(&distinct).count(),
        duplicates: got.len() - distinct.len(),
        duplicated_events: counts.iter().filter(|(e, n)| **n > per_event[*e]).count(),
        total: got.len(),
    }
}

fn cluster(brokers: i32) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = MockCluster::new(brokers).unwrap();
    c.create_topic(INPUT, 6, 1).unwrap();
    c.create_topic("hits", 3, 1).unwrap();
    c.create_topic("dead-letters", 1, 1).unwrap();
    c
}

#[test]
fn aborted_worker_loses_no_hit_and_duplicates_stay_within_what_was_in_flight() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster(1);
    let brokers = c.bootstrap_servers();
    let n = 100_000u64;
    let s = setup(&brokers, 6, &events(n));
    let group = "crash";
    let cfg = |id: &str| {
        let mut c = k::kafka_config(&s.base, &brokers, group, INPUT);
        c.worker_id = Some(id.into());
        c
    };
    let started = std::time::Instant::now();
    let steady = k::start(cfg("steady"));
    let mut victim = k::start(cfg("victim-0"));
    let mut consumed_before = 0u64;
    for round in 1..=3u64 {
        let target = n * round / 4;
        k::wait_until("progress before an abort", Duration::from_secs(240), || {
            steady.consumed() + consumed_before + victim.consumed() >= target
        });
        consumed_before += victim.consumed();
        let summary = victim.abort();
        println!(
            "abort {round}: victim had {} records unacknowledged",
            summary.unacknowledged
        );
        victim = k::start(cfg(&format!("victim-{round}")));
    }
    k::wait_until(
        "the group to commit the end of the input",
        Duration::from_secs(420),
        || {
            let done =
                k::committed(&brokers, group, INPUT, 6) == k::high_watermarks(&brokers, INPUT, 6);
            if !done {
                eprintln!(
                    "progress: steady {} victim {} committed {:?}, commit failures {} + {}, in flight {} + {}",
                    steady.consumed(),
                    victim.consumed(),
                    k::committed(&brokers, group, INPUT, 6),
                    steady.metrics.commit_failures.get(),
                    victim.metrics.commit_failures.get(),
                    steady.metrics.in_flight.get(),
                    victim.metrics.in_flight.get(),
                );
                eprintln!(
                    "  steady: {:?}\n  victim: {:?}",
                    steady.delivery.describe(),
                    victim.delivery.describe()
                );
                std::thread::sleep(Duration::from_secs(5));
            }
            done
        },
    );
    let consumed = consumed_before + steady.consumed() + victim.consumed();
    let rate = consumed as f64 / started.elapsed().as_secs_f64();
    victim.stop();
    steady.stop();
    let o = compare(&s);
    // What one crash may re-deliver: the records it had in flight (at most the in-flight
    // bound plus the two batches in the pipeline's channels), and what the group read while
    // the crashed member still held it in a rebalance, when no commit of the group can land
    // (the session timeout, 3 s, plus a second for the rebalance itself).
    let max_in_flight = 2000usize;
    let batch = 200usize;
    let stalled = (rate * 4.0) as usize;
    let bound = 3 * (max_in_flight + 2 * batch + stalled);
    println!(
        "acceptance 1: {} events, {} expected hits, {} hits read, missing {}, duplicate hits {}, events with duplicates {} (bound {bound}: 3 x (2000 in flight + 400 in channels + {stalled} read at {rate:.0} events/s during a 4 s commit stall))",
        n,
        s.expected.len(),
        o.total,
        o.missing,
        o.duplicates,
        o.duplicated_events
    );
    assert_eq!(o.missing, 0);
    assert!(
        o.duplicated_events <= bound,
        "{} events duplicated, bound {bound}",
        o.duplicated_events
    );
}

#[test]
fn poison_records_go_to_dead_letters_and_the_stream_goes_on() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster(1);
    let brokers = c.bootstrap_servers();
    let mut payloads = events(3000);
    let poison: [(usize, Vec<u8>, &str); 4] = [
        (600, b"{\"EventID\": 4688,".to_vec(), "not_json"),
        // librdkafka's mock broker never serves a 10 MB record (its fetch stalls; 2 MB works),
        // so the oversized value here is 3 MB against the default 1 MiB limit. The 10 MB
        // value is covered in files mode and end to end against a real broker.
        (
            1200,
            format!("{{\"blob\": \"{}\"}}", "A".repeat(3 << 20)).into_bytes(),
            "too_large",
        ),
        (
            1800,
            b"{\"CommandLine\": \"\xc3\x28\"}".to_vec(),
            "not_utf8",
        ),
        (2400, b"[{\"EventID\": 4688}]".to_vec(), "not_object"),
    ];
    for (i, bytes, _) in &poison {
        payloads[*i] = bytes.clone();
    }
    let s = setup(&brokers, 6, &payloads);
    let mut cfg = k::kafka_config(&s.base, &brokers, "poison", INPUT);
    cfg.worker_id = Some("poison-worker".into());
    let w = k::start(cfg);
    k::wait_all_committed(&brokers, "poison", INPUT, 6, Duration::from_secs(180));
    let metrics = w.metrics.clone();
    w.stop();

    let letters = k::read_all(&brokers, "dead-letters", 1);
    assert_eq!(letters.len(), 4);
    let mut by_reason = BTreeMap::new();
    for l in &letters {
        let h = |n: &str| String::from_utf8(l.headers[n].clone()).unwrap();
        let partition: i32 = h("foundry-source-partition").parse().unwrap();
        let offset: i64 = h("foundry-source-offset").parse().unwrap();
        assert_eq!(h("foundry-source-topic"), INPUT);
        assert_eq!(h("foundry-worker"), "poison-worker");
        let original = s
            .input
            .iter()
            .find(|r| r.partition == partition && r.offset == offset)
            .unwrap();
        assert_eq!(l.key, original.key, "dead letter keeps the input key");
        match l.headers.get("foundry-truncated-from") {
            Some(len) => {
                assert_eq!(
                    String::from_utf8(len.clone()).unwrap(),
                    original.payload.len().to_string()
                );
                assert!(original.payload.starts_with(&l.payload));
            }
            None => assert_eq!(
                l.payload, original.payload,
                "dead letter keeps the original bytes"
            ),
        }
        by_reason.insert(h("foundry-reason"), original.payload.len());
    }
    let want: BTreeSet<&str> = poison.iter().map(|(_, _, r)| *r).collect();
    assert_eq!(
        by_reason
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        want
    );
    let counted: u64 = DeadLetterReason::ALL
        .iter()
        .map(|r| metrics.dead_letter_count(*r))
        .sum();
    assert_eq!(
        counted, 4,
        "the dead-letter counter rises by exactly the number injected"
    );
    let o = compare(&s);
    println!(
        "acceptance 2: 4 poison records dead-lettered ({by_reason:?} bytes); {} hits, missing {}",
        o.total, o.missing
    );
    assert_eq!(o.missing, 0);
}

#[test]
fn graceful_stop_then_restart_duplicates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster(1);
    let brokers = c.bootstrap_servers();
    let n = 20_000u64;
    let s = setup(&brokers, 6, &events(n));
    let cfg = |id: &str| {
        let mut c = k::kafka_config(&s.base, &brokers, "graceful", INPUT);
        c.worker_id = Some(id.into());
        c
    };
    let first = k::start(cfg("first"));
    k::wait_until("half the input", Duration::from_secs(180), || {
        first.consumed() >= n / 2
    });
    let summary = first.stop();
    assert_eq!(summary.unacknowledged, 0);
    let committed: i64 = k::committed(&brokers, "graceful", INPUT, 6)
        .iter()
        .map(|o| o.max(&0))
        .sum();
    let second = k::start(cfg("second"));
    k::wait_all_committed(&brokers, "graceful", INPUT, 6, Duration::from_secs(180));
    second.stop();
    let o = compare(&s);
    println!(
        "acceptance 3: first worker read {} and committed {committed}; {} hits, missing {}, duplicates {}",
        summary.events, o.total, o.missing, o.duplicates
    );
    assert_eq!(o.missing, 0);
    assert_eq!(o.duplicates, 0);
}

#[test]
fn output_outage_commits_nothing_unacknowledged_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Broker 1 leads the input and coordinates the group; broker 2 leads the hits topic and
    // goes down.
    let c = MockCluster::new(2).unwrap();
    c.create_topic(INPUT, 6, 1).unwrap();
    c.create_topic("hits", 3, 1).unwrap();
    c.create_topic("dead-letters", 1, 1).unwrap();
    for p in 0..6 {
        c.partition_leader(INPUT, p, Some(1)).unwrap();
    }
    for p in 0..3 {
        c.partition_leader("hits", p, Some(2)).unwrap();
    }
    c.partition_leader("dead-letters", 0, Some(1)).unwrap();
    c.coordinator(MockCoordinator::Group("outage".into()), 1)
        .unwrap();
    let brokers = c.bootstrap_servers();
    let n = 30_000u64;
    let s = setup(&brokers, 6, &events(n));
    let cfg = |id: &str| {
        let mut c = k::kafka_config(&s.base, &brokers, "outage", INPUT);
        c.worker_id = Some(id.into());
        c
    };
    let outage = Duration::from_secs(30); // the acceptance item's outage
    let w = k::start(cfg("outage-a"));
    k::wait_until("some progress", Duration::from_secs(120), || {
        w.consumed() >= 2000
    });

    // Outage 1: the worker stalls at its in-flight bound, then recovers by itself.
    c.broker_down(2).unwrap();
    let started = std::time::Instant::now();
    let mut peak = 0i64;
    while started.elapsed() < outage {
        peak = peak.max(w.metrics.in_flight.get());
        std::thread::sleep(Duration::from_millis(20));
    }
    let consumed_during = w.consumed();
    c.broker_up(2).unwrap();
    println!("acceptance 4: outage 1 ({outage:?}): peak in-flight {peak} (bound 2000), consumed so far {consumed_during}");
    assert!(peak <= 2000, "in-flight {peak} exceeded the bound");
    k::wait_until("recovery", Duration::from_secs(180), || {
        w.consumed() >= consumed_during + 2000
    });

    // Outage 2: crash while hits cannot be written. Had an offset past an unacknowledged hit
    // been committed, that hit would now be lost for good.
    c.broker_down(2).unwrap();
    std::thread::sleep(outage);
    let lost_in_crash = w.abort().unacknowledged;
    c.broker_up(2).unwrap();
    let w = k::start(cfg("outage-b"));
    k::wait_all_committed(&brokers, "outage", INPUT, 6, Duration::from_secs(240));
    w.stop();
    let o = compare(&s);
    println!(
        "acceptance 4: outage 2 + abort with {lost_in_crash} records unacknowledged; {} hits, missing {}, duplicates {}",
        o.total, o.missing, o.duplicates
    );
    assert_eq!(o.missing, 0);
}

#[test]
fn rebalance_from_one_to_two_workers_and_back_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster(1);
    let brokers = c.bootstrap_servers();
    let n = 40_000u64;
    let s = setup(&brokers, 6, &events(n));
    let cfg = |id: &str| {
        let mut c = k::kafka_config(&s.base, &brokers, "rebalance", INPUT);
        c.worker_id = Some(id.into());
        c
    };
    let a = k::start(cfg("a"));
    k::wait_until("a quarter", Duration::from_secs(180), || {
        a.consumed() >= n / 4
    });
    let b = k::start(cfg("b"));
    k::wait_until("b gets work", Duration::from_secs(180), || {
        b.consumed() >= n / 8
    });
    let b_summary = b.stop();
    k::wait_all_committed(&brokers, "rebalance", INPUT, 6, Duration::from_secs(240));
    let a_summary = a.stop();
    let o = compare(&s);
    println!(
        "acceptance 5: a read {}, b read {}; {} hits, missing {}, duplicates {}",
        a_summary.events, b_summary.events, o.total, o.missing, o.duplicates
    );
    assert_eq!(o.missing, 0);
}
