//! Whole-pipeline benchmark: events per second through consume → evaluate → produce →
//! commit (librdkafka's mock cluster), against the engine alone on the same events, in one run.
//!
//! The engine-alone figure decodes and evaluates the same records in batches of the same size
//! across the same cores — exactly the pipeline's evaluate stage without Kafka — so the ratio
//! is what the pipeline adds. Goal: at most 1.25.
//!
//! Two ratios are printed. Wall clock compares events/s, but librdkafka's mock broker runs
//! inside this process and takes its CPU from the same two cores the worker uses, which a
//! real broker on its own machines does not. CPU per event compares cost: every thread of the
//! process (getrusage) minus the mock broker's thread (`rdk:mock`) and the bench's own thread
//! that watches the worker's counters, against the CPU of the engine-alone run. The client
//! that loads the topic is gone before the clock starts.
//!
//! This machine's speed drifts by a fifth and more between runs, so the measurements are
//! taken in turns, `PIPELINE_ROUNDS` times (default 3), and each side's best round is compared
//! (the median of the rounds' ratios is printed too).
//!
//! A third run, the same pipeline with events from memory and outputs acknowledged at once,
//! tells what of the overhead is the pipeline's own and what is Kafka's.
//!
//! `cargo bench -p foundry-benches --bench pipeline` (env `PIPELINE_EVENTS`, default 20,000:
//! OTRF Windows events from `../shared/corpus`, repeated as needed, with SigmaHQ's Windows
//! rules and the shipped mappings; `PIPELINE_BATCH`, default 500: records per batch).
//! `PERF_WINDOW` and `PERF_CONTROL` profile one timed window (see [`perf_control`]).

// Configurations are written setting by setting, as a reader compares them with the TOML.
#![allow(clippy::field_reassign_with_default)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;

use foundry_engine::{EventOrigin, Hit};
use foundry_worker::pipeline::DeadLetter;
use foundry_worker::{
    build_rule_set, DeadLetterSink, HitSink, InputTopic, KafkaConfig, PartitionKey, RawRecord,
    Source, Ticket, Worker, WorkerConfig, WorkerError,
};
use rayon::prelude::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

// The worker's Kafka test helpers (the group's committed offsets).
#[path = "../../crates/worker/tests/common/kafka.rs"]
mod kafka;

/// librdkafka's mock broker keeps only the newest few megabytes of a partition, so the
/// events are spread over enough partitions (1,500 corpus events, ~3 MB, each) to stay whole
/// until the worker reads them.
fn partitions(events: usize) -> i32 {
    (events.div_ceil(1500) as i32).max(6)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> PathBuf {
    repo().join("../shared/corpus")
}

fn base_config() -> WorkerConfig {
    let mut c = WorkerConfig::default();
    c.rules = vec![corpus().join("sigma/rules/windows")];
    c.mapping = vec![
        repo().join("config/mappings/windows.toml"),
        repo().join("config/mappings/cloud-and-syslog.toml"),
    ];
    c.batch_size = std::env::var("PIPELINE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    c.max_in_flight = 20_000;
    c
}

/// Wall-clock time and CPU time of one measured run.
struct Cost {
    wall: Duration,
    cpu: Duration,
}

fn engine_alone(config: &WorkerConfig, events: &[Vec<u8>]) -> (Cost, usize) {
    let (set, _) = build_rule_set(config, false).expect("rules");
    let started = Instant::now();
    perf_control("engine", "enable");
    let cpu_before = foundry_benches::process_cpu();
    let mut hits = 0;
    for (b, chunk) in events.chunks(config.batch_size).enumerate() {
        let n: usize = chunk
            .par_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let origin = EventOrigin {
                    source: "bench".into(),
                    offset: (b * config.batch_size + i) as u64,
                    ..Default::default()
                };
                // What the worker's evaluate stage runs per record.
                set.evaluate_bytes(bytes, config.max_event_bytes, &origin, None)
                    .map_or(0, |e| e.hits.len())
            })
            .sum();
        hits += n;
    }
    perf_control("engine", "disable");
    let cost = Cost {
        wall: started.elapsed(),
        cpu: foundry_benches::process_cpu() - cpu_before,
    };
    (cost, hits)
}

/// The same events from memory, hits and dead letters acknowledged at once.
struct Memory {
    events: Vec<bytes::Bytes>,
    next: usize,
    key: PartitionKey,
}

impl Source for Memory {
    fn fetch(&mut self, max: usize, _: Duration) -> Result<Option<Vec<RawRecord>>, WorkerError> {
        if self.next >= self.events.len() {
            return Ok(None);
        }
        let end = (self.next + max).min(self.events.len());
        let records = (self.next..end)
            .map(|i| RawRecord {
                // Named as a Kafka record's origin is, so hits cost what the Kafka run's do.
                kafka: true,
                ..RawRecord::new(self.key.clone(), i as i64, self.events[i].clone())
            })
            .collect();
        self.next = end;
        Ok(Some(records))
    }
}

struct Acknowledged;

impl HitSink for Acknowledged {
    fn send(&mut self, _: &Hit, _: Option<&[u8]>, ack: Arc<Ticket>) -> Result<(), WorkerError> {
        ack.done();
        Ok(())
    }
    fn end_batch(&mut self, _: &[RawRecord]) -> Result<(), WorkerError> {
        Ok(())
    }
}

impl DeadLetterSink for Acknowledged {
    fn send(&mut self, _: &DeadLetter<'_>, ack: Arc<Ticket>) -> Result<(), WorkerError> {
        ack.done();
        Ok(())
    }
    fn end_batch(&mut self) -> Result<(), WorkerError> {
        Ok(())
    }
}

/// The worker's pipeline (its threads, batches, tickets and commits) with Kafka taken out:
/// what is left of the overhead is the pipeline's own.
fn pipeline_without_kafka(config: &WorkerConfig, events: &[Vec<u8>]) -> (Cost, u64) {
    let source = Memory {
        events: events
            .iter()
            .map(|e| bytes::Bytes::from(e.clone()))
            .collect(),
        next: 0,
        key: PartitionKey {
            topic: "events".into(),
            partition: 0,
        },
    };
    let worker = Worker::new(config.clone()).expect("worker");
    let started = Instant::now();
    let cpu_before = foundry_benches::process_cpu();
    let summary = worker
        .run_with(
            Box::new(source),
            Box::new(Acknowledged),
            Box::new(Acknowledged),
        )
        .expect("run");
    let cost = Cost {
        wall: started.elapsed(),
        cpu: foundry_benches::process_cpu() - cpu_before,
    };
    (cost, summary.hits)
}

/// The pipeline's cost, and the CPU the in-process mock broker used meanwhile (in
/// production the broker runs on other machines, so it is no cost of the worker's).
fn pipeline(config: &WorkerConfig, events: &[Vec<u8>]) -> (Cost, Duration, u64) {
    let partitions = partitions(events.len());
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("events", partitions, 1).unwrap();
    cluster.create_topic("hits", partitions, 1).unwrap();
    cluster.create_topic("dead-letters", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut ends = vec![0i64; partitions as usize];
    for (i, e) in events.iter().enumerate() {
        let p = i as i32 % partitions;
        ends[p as usize] += 1;
        let key = i.to_string();
        let mut r = BaseRecord::to("events").partition(p).key(&key).payload(e);
        while let Err((_, back)) = producer.send(r) {
            r = back;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    // Loading the topic is not the worker's work: its client goes before the clock starts.
    drop(producer);

    let mut c = config.clone();
    let mut k = KafkaConfig::default();
    k.brokers = brokers.clone();
    k.group = "bench".into();
    k.inputs = vec![InputTopic {
        topic: "events".into(),
        ..Default::default()
    }];
    k.hits_topic = "hits".into();
    k.dead_letter_topic = "dead-letters".into();
    c.kafka = Some(k);
    let worker = Worker::new(c).expect("worker");
    let (shutdown, readiness, metrics) = (worker.shutdown(), worker.readiness(), worker.metrics());
    // Named so that the CPU breakdown below tells the fetch stage (this thread) apart.
    let thread = std::thread::Builder::new()
        .name("foundry-fetch".into())
        .spawn(move || worker.run().expect("run"))
        .expect("worker thread");
    while !readiness.ready() {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The clock starts at the group assignment (joining the group is not throughput) and
    // stops when every record has been read and every output acknowledged; the commit that
    // follows is a matter of the commit interval, a latency, and is waited for untimed.
    let started = Instant::now();
    perf_control("pipeline", "enable");
    let (cpu_before, threads_before, watcher_before) = (
        foundry_benches::process_cpu(),
        foundry_benches::threads_cpu_by_name(),
        foundry_benches::thread_cpu(),
    );
    let (mut first, mut all_read) = (None, None);
    // This thread watches the worker's counters; its own CPU is no cost of the worker's.
    while metrics.events_consumed.get() < events.len() as u64 || metrics.in_flight.get() > 0 {
        std::thread::sleep(Duration::from_millis(2));
        let consumed = metrics.events_consumed.get();
        if first.is_none() && consumed > 0 {
            first = Some(started.elapsed());
        }
        if all_read.is_none() && consumed >= events.len() as u64 {
            all_read = Some(started.elapsed());
        }
    }
    let elapsed = started.elapsed();
    let watcher = foundry_benches::thread_cpu() - watcher_before;
    perf_control("pipeline", "disable");
    println!(
        "  pipeline timeline: first record read after {:.2?}, all read after {:.2?}, all acknowledged after {elapsed:.2?}",
        first.unwrap_or(elapsed),
        all_read.unwrap_or(elapsed)
    );
    let threads_after = foundry_benches::threads_cpu_by_name();
    let used = |name: &str| {
        let before = threads_before.get(name).copied().unwrap_or_default();
        threads_after[name].saturating_sub(before)
    };
    let broker = used(MOCK_BROKER_THREAD);
    let per_thread: Vec<String> = threads_after
        .keys()
        .map(|name| (name, used(name)))
        .filter(|(_, d)| !d.is_zero())
        .map(|(name, d)| format!("{name} {:.2}s", d.as_secs_f64()))
        .collect();
    println!(
        "  CPU by thread name while timed: {}",
        per_thread.join(", ")
    );
    let cost = Cost {
        wall: elapsed,
        cpu: (foundry_benches::process_cpu() - cpu_before).saturating_sub(broker + watcher),
    };
    while kafka::committed(&brokers, "bench", "events", partitions) != ends {
        std::thread::sleep(Duration::from_millis(20));
    }
    let batches = metrics.batch_size.get_sample_count().max(1) as f64;
    println!(
        "  pipeline stages: {:.0} records per batch on average over {batches} batches; evaluate busy {:.2}s, fetch {:.2}s, emit {:.2}s",
        metrics.batch_size.get_sample_sum() / batches,
        metrics.evaluation_seconds.get_sample_sum(),
        metrics.stage_seconds.with_label_values(&["fetch"]).get_sample_sum(),
        metrics.stage_seconds.with_label_values(&["emit"]).get_sample_sum(),
    );
    shutdown.stop();
    let summary = thread.join().expect("worker thread");
    assert_eq!(
        summary.events,
        events.len() as u64,
        "the worker read every record once"
    );
    (cost, broker, summary.hits)
}

/// Profiling one timed window (`PERF_WINDOW`: `engine` or `pipeline`): with `PERF_CONTROL`
/// naming the control FIFO of `perf record --control fifo:FIFO -D -1`, sampling is switched
/// on and off around it.
fn perf_control(window: &str, command: &str) {
    if std::env::var("PERF_WINDOW").ok().as_deref() != Some(window) {
        return;
    }
    if let Some(fifo) = std::env::var_os("PERF_CONTROL") {
        if let Err(e) = std::fs::write(&fifo, format!("{command}\n")) {
            eprintln!("perf control {fifo:?}: {e}");
        }
    }
}

/// The allocator of the `foundry` binary, so both runs measure what the product runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The name librdkafka gives the thread that serves every mock broker of a cluster.
const MOCK_BROKER_THREAD: &str = "rdk:mock";

fn main() {
    let n: usize = std::env::var("PIPELINE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize = std::env::var("PIPELINE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("rayon-{i}"))
        .build_global()
        .expect("rayon pool");
    let config = base_config();
    let events = foundry_benches::windows_lines(n);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let per_event = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "pipeline benchmark: {n} events, {} cores, {rounds} rounds of engine alone, pipeline without Kafka, pipeline",
        rayon::current_num_threads()
    );
    // The machine's speed drifts between runs, so the three are measured in turns and each
    // side's best round is compared; every round is printed too.
    let (mut engines, mut memories, mut pipes, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (engine, engine_hits) = engine_alone(&config, &events);
        let (memory, memory_hits) = pipeline_without_kafka(&config, &events);
        let (piped, broker, pipeline_hits) = pipeline(&config, &events);
        assert_eq!(
            pipeline_hits as usize, engine_hits,
            "the pipeline gives the engine's hits"
        );
        assert_eq!(
            memory_hits as usize, engine_hits,
            "so does it without Kafka"
        );
        let ratio = piped.cpu.as_secs_f64() / engine.cpu.as_secs_f64();
        println!(
            "  round {round}: engine alone {:>7.0} events/s, {:.1} us CPU/event; without Kafka {:.1} us; pipeline {:>7.0} events/s, {:.1} us CPU/event (mock broker {:.1} us/event apart); {engine_hits} hits; CPU ratio {ratio:.2}",
            rate(engine.wall),
            per_event(engine.cpu),
            per_event(memory.cpu),
            rate(piped.wall),
            per_event(piped.cpu),
            per_event(broker),
        );
        engines.push(engine);
        memories.push(memory);
        pipes.push(piped);
        ratios.push(ratio);
    }
    // A side's best round is the one with the least CPU; its wall clock is that round's.
    let best = |costs: &[Cost]| {
        let c = costs.iter().min_by_key(|c| c.cpu).expect("a round");
        (c.cpu, c.wall)
    };
    let ((engine_cpu, engine_wall), (pipe_cpu, pipe_wall)) = (best(&engines), best(&pipes));
    ratios.sort_by(f64::total_cmp);
    println!(
        "  engine alone, best round: {:>10.0} events/s, {:.1} us CPU/event",
        rate(engine_wall),
        per_event(engine_cpu)
    );
    let (memory_cpu, memory_wall) = best(&memories);
    println!(
        "  pipeline without Kafka (events from memory, outputs acknowledged at once), best round: {:>10.0} events/s, {:.1} us CPU/event",
        rate(memory_wall),
        per_event(memory_cpu)
    );
    println!(
        "  pipeline, best round:     {:>10.0} events/s, {:.1} us CPU/event without the broker",
        rate(pipe_wall),
        per_event(pipe_cpu)
    );
    println!(
        "  pipeline / engine, wall clock (broker sharing the cores): {:.2}",
        pipe_wall.as_secs_f64() / engine_wall.as_secs_f64()
    );
    println!(
        "  pipeline without Kafka / engine, CPU per event: {:.2}",
        memory_cpu.as_secs_f64() / engine_cpu.as_secs_f64()
    );
    println!(
        "  pipeline / engine, CPU per event (the worker's own cost): {:.2} best against best, {:.2} median of the rounds (goal <= 1.25)",
        pipe_cpu.as_secs_f64() / engine_cpu.as_secs_f64(),
        ratios[ratios.len() / 2]
    );
}
