//! Whole-pipeline benchmark: events per second through consume → evaluate → produce →
//! commit (librdkafka's mock cluster, or real brokers), against the engine alone on the same
//! events, in one run.
//!
//! The engine-alone figure decodes and evaluates the same records in batches of the same size
//! across the same cores — exactly the pipeline's evaluate stage without Kafka — so the ratio
//! is what the pipeline adds. Goal: at most 1.25, CPU per event.
//!
//! Wall clock compares events/s, but librdkafka's mock broker runs inside this process and
//! takes its CPU from the same two cores the worker uses, which a real broker on its own
//! machines does not. CPU per event compares cost: every thread of the process (getrusage)
//! minus the mock broker's thread (`rdk:mock`) and the bench's own thread that watches the
//! worker's counters, against the CPU of the engine-alone run (also without the mock
//! broker's). The client that loads the topic is gone before the clock starts.
//!
//! This machine's speed drifts by a fifth and more between runs, so the measurements are
//! taken in turns, `PIPELINE_ROUNDS` times (default 3): in each round the engine alone runs
//! right before the worker starts and right after it ends, and the round's ratio takes the
//! pipeline against the mean of the two. The median of the rounds' ratios is printed, and
//! each side's best round against the other's.
//!
//! The CPU ratio of the pipeline is given twice: over the whole run, and over its steady
//! stretch (see [`steady`]), the pace a worker keeps once its buffers are in use.
//!
//! One more run per round, the same pipeline with events from memory and outputs
//! acknowledged at once (whole run only), tells what of the overhead is the pipeline's own and
//! what is Kafka's.
//!
//! `cargo bench -p foundry-benches --bench pipeline` (env `PIPELINE_EVENTS`, default 20,000:
//! OTRF Windows events from `../shared/corpus`, repeated as needed, with SigmaHQ's Windows
//! rules and the shipped mappings; `PIPELINE_BATCH`, default 500: records per batch;
//! `PIPELINE_CONSUMER`: librdkafka consumer settings to try, `key=value,key=value`;
//! `PIPELINE_BROKERS`: real brokers to run against instead of the mock cluster, e.g. on
//! machines of their own; each round creates its own topics and group there and deletes them
//! after).
//! `PERF_WINDOW` and `PERF_CONTROL` profile one timed window (see [`perf_control`]).

// Configurations are written setting by setting, as a reader compares them with the TOML.
#![allow(clippy::field_reassign_with_default)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use foundry_engine::EventOrigin;
use foundry_worker::{
    build_rule_set, InputTopic, KafkaConfig, PartitionKey, RawRecord, Source, Worker, WorkerConfig,
    WorkerError,
};
use rayon::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
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
    c
}

/// Wall-clock time and CPU time of one measured stretch, and the events it covered.
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    cpu: Duration,
    events: usize,
}

impl Cost {
    /// Two measurements taken as one.
    fn and(self, other: Cost) -> Cost {
        Cost {
            wall: self.wall + other.wall,
            cpu: self.cpu + other.cpu,
            events: self.events + other.events,
        }
    }
    fn per_event_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.events as f64
    }
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64()
    }
}

/// The steady stretch of a run: from the event a quarter of the way in to the one five
/// sixths in. A worker runs for days; what its first buffers cost (memory touched the first
/// time, librdkafka's prefetch filling) and its last batches (the queues draining) are not
/// its cost per event. Both sides are measured over about the same stretch (the engine's
/// is rounded to whole batches, the pipeline's to the counter's 2 ms looks).
fn steady(events: usize) -> (usize, usize) {
    (events / 4, events * 5 / 6)
}

/// The cost between two looks at a run, which must have covered some events.
fn stretch(start: Option<Snapshot>, end: &Snapshot) -> Cost {
    start
        .map(|start| end.cost_since(&start))
        .filter(|c| c.events > 0)
        .expect("no steady stretch: PIPELINE_EVENTS is too small for PIPELINE_BATCH")
}

/// The engine alone: the whole run and its steady stretch.
fn engine_alone(config: &WorkerConfig, events: &[Vec<u8>]) -> EngineRun {
    let (set, _) = build_rule_set(config, false).expect("rules");
    let (from, to) = steady(events.len());
    perf_control("engine", "enable");
    // The mock cluster of the round may be alive meanwhile; its CPU is left out here too.
    let started = Snapshot::take(0, false);
    let mut hits = 0;
    let (mut steady_from, mut steady_to) = (None, None);
    for (b, chunk) in events.chunks(config.batch_size).enumerate() {
        let first = b * config.batch_size;
        if steady_from.is_none() && first >= from {
            steady_from = Some(Snapshot::take(first, false));
        } else if steady_from.is_some() && steady_to.is_none() && first >= to {
            steady_to = Some(Snapshot::take(first, false));
        }
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
    let ended = Snapshot::take(events.len(), false);
    perf_control("engine", "disable");
    let whole = ended.cost_since(&started);
    // A stretch that reaches the last batch ends with the run.
    let steady = stretch(steady_from, steady_to.as_ref().unwrap_or(&ended));
    (whole, steady, hits)
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
    let started = Snapshot::take(0, false);
    let summary = worker
        .run_with(
            Box::new(source),
            Box::new(foundry_benches::Acknowledged),
            Box::new(foundry_benches::Acknowledged),
        )
        .expect("run");
    (
        Snapshot::take(events.len(), false).cost_since(&started),
        summary.hits,
    )
}

/// One look at the process during a measured run.
struct Snapshot {
    at: Instant,
    cpu: Duration,
    /// CPU so far by thread name.
    threads: std::collections::BTreeMap<String, Duration>,
    watcher: Duration,
    consumed: usize,
}

impl Snapshot {
    /// A look after `consumed` events; `watching` when the calling thread only watches (its
    /// CPU is then no cost of the worker's).
    fn take(consumed: usize, watching: bool) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            cpu: foundry_benches::process_cpu(),
            threads: foundry_benches::threads_cpu_by_name(),
            watcher: if watching {
                foundry_benches::thread_cpu()
            } else {
                Duration::ZERO
            },
            consumed,
        }
    }

    /// The CPU threads named `name` used between two looks.
    fn used_since(&self, earlier: &Snapshot, name: &str) -> Duration {
        let at = |s: &Snapshot| s.threads.get(name).copied().unwrap_or_default();
        at(self).saturating_sub(at(earlier))
    }

    /// The worker's cost between two looks: the process's CPU without the mock broker's and
    /// the watcher's.
    fn cost_since(&self, earlier: &Snapshot) -> Cost {
        let others =
            self.used_since(earlier, MOCK_BROKER_THREAD) + (self.watcher - earlier.watcher);
        Cost {
            wall: self.at - earlier.at,
            cpu: (self.cpu - earlier.cpu).saturating_sub(others),
            events: self.consumed - earlier.consumed,
        }
    }
}

/// The brokers a round's pipeline runs against, and its topics and group, named afresh for
/// each round so that a real broker's earlier topics and committed offsets play no part.
struct Topics {
    /// librdkafka's mock cluster, unless `PIPELINE_BROKERS` names real brokers.
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    brokers: String,
    events: String,
    hits: String,
    dead_letters: String,
    group: String,
    partitions: i32,
}

impl Topics {
    fn create(round: usize, events: usize) -> Topics {
        let name = |what: &str| format!("foundry-bench-{}-{round}-{what}", std::process::id());
        let (mock, brokers) = match std::env::var("PIPELINE_BROKERS") {
            Ok(brokers) => (None, brokers),
            Err(_) => {
                let cluster = MockCluster::new(1).expect("mock cluster");
                let brokers = cluster.bootstrap_servers();
                (Some(cluster), brokers)
            }
        };
        // Made before the topics are, so that a failure half-way still deletes what exists.
        let topics = Topics {
            mock,
            brokers,
            events: name("events"),
            hits: name("hits"),
            dead_letters: name("dead-letters"),
            group: name("group"),
            partitions: partitions(events),
        };
        let wanted = [
            (&topics.events, topics.partitions),
            (&topics.hits, topics.partitions),
            (&topics.dead_letters, 1),
        ];
        match &topics.mock {
            Some(cluster) => {
                for (topic, p) in wanted {
                    cluster.create_topic(topic, p, 1).expect("mock topic");
                }
            }
            None => {
                let new: Vec<NewTopic<'_>> = wanted
                    .iter()
                    .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
                    .collect();
                let (client, options, runtime) = admin(&topics.brokers);
                let created = runtime.block_on(client.create_topics(&new, &options));
                for r in created.expect("create topics") {
                    if let Err((topic, e)) = r {
                        panic!("creating topic {topic} on {}: {e}", topics.brokers);
                    }
                }
            }
        }
        topics
    }
}

impl Drop for Topics {
    fn drop(&mut self) {
        if self.mock.is_some() {
            return;
        }
        let (client, options, runtime) = admin(&self.brokers);
        let topics = [&*self.events, &*self.hits, &*self.dead_letters];
        match runtime.block_on(client.delete_topics(&topics, &options)) {
            Ok(results) => {
                for (topic, e) in results.into_iter().filter_map(Result::err) {
                    eprintln!("deleting topic {topic}: {e}");
                }
            }
            Err(e) => eprintln!("deleting the bench's topics: {e}"),
        }
        if let Err(e) = runtime.block_on(client.delete_groups(&[&*self.group], &options)) {
            eprintln!("deleting group {}: {e}", self.group);
        }
    }
}

/// An admin client of real brokers, the options of its requests, and a runtime to wait for
/// their answers on.
fn admin(
    brokers: &str,
) -> (
    AdminClient<DefaultClientContext>,
    AdminOptions,
    tokio::runtime::Runtime,
) {
    let client = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (client, options, runtime)
}

/// The engine alone over the whole run and its steady stretch, and the hits it found.
type EngineRun = (Cost, Cost, usize);

/// What a round of the pipeline measured.
struct PipelineRun {
    whole: Cost,
    steady: Cost,
    /// The CPU the in-process mock broker used meanwhile (in production the broker runs on
    /// other machines, so it is no cost of the worker's; a real broker has its own process).
    broker: Duration,
    /// The CPU of the evaluation threads (rayon's), to set beside the engine alone's.
    evaluation: Duration,
    hits: u64,
    /// The engine alone, measured just before the worker starts and just after it ends.
    engine: [EngineRun; 2],
}

/// The pipeline's cost over the whole run and over its steady stretch. The engine alone
/// (`engine`) is measured right before and right after, so that both sides see the machine
/// at nearly the same speed.
fn pipeline(
    config: &WorkerConfig,
    events: &[Vec<u8>],
    round: usize,
    engine: &mut dyn FnMut() -> EngineRun,
) -> PipelineRun {
    let topics = Topics::create(round, events.len());
    let (brokers, partitions) = (topics.brokers.clone(), topics.partitions);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut ends = vec![0i64; partitions as usize];
    // Each partition takes a stretch of the events in their order, as a stream keyed by host
    // keeps one host's records together; the engine alone sees the same runs of a dataset.
    // (Dealing them out one by one mixed every batch from all datasets, and a mixed batch
    // costs the engine 15-25% more than a batch of one dataset's records: measured here, the
    // engine alone over the events dealt out so.)
    let per_partition = events.len().div_ceil(partitions as usize);
    for (i, e) in events.iter().enumerate() {
        let p = (i / per_partition) as i32;
        ends[p as usize] += 1;
        let key = i.to_string();
        let mut r = BaseRecord::to(&topics.events)
            .partition(p)
            .key(&key)
            .payload(e);
        while let Err((_, back)) = producer.send(r) {
            r = back;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    // Loading the topic is not the worker's work: its client goes before the clock starts.
    drop(producer);
    let engine_before = engine();

    let mut c = config.clone();
    let mut k = KafkaConfig::default();
    k.brokers = brokers.clone();
    k.group = topics.group.clone();
    k.inputs = vec![InputTopic {
        topic: topics.events.clone(),
        ..Default::default()
    }];
    k.hits_topic = topics.hits.clone();
    k.dead_letter_topic = topics.dead_letters.clone();
    // Consumer settings to try, `key=value` separated by commas.
    if let Ok(extra) = std::env::var("PIPELINE_CONSUMER") {
        for pair in extra.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').expect("PIPELINE_CONSUMER: key=value");
            k.consumer_properties.insert(key.into(), value.into());
        }
    }
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
    perf_control("pipeline", "enable");
    let begin = Snapshot::take(0, true);
    let started = begin.at;
    let (mut first, mut all_read) = (None, None);
    let (from, to) = steady(events.len());
    let (mut steady_from, mut steady_to) = (None, None);
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
        // In the steady stretch every stage runs at the same pace, so the CPU spent while
        // the events from `from` to `to` are read is what those events cost.
        let consumed = consumed as usize;
        match &steady_from {
            None if consumed >= from => steady_from = Some(Snapshot::take(consumed, true)),
            Some(start) if steady_to.is_none() && consumed >= to && consumed > start.consumed => {
                steady_to = Some(Snapshot::take(consumed, true));
            }
            _ => {}
        }
    }
    let end = Snapshot::take(events.len(), true);
    perf_control("pipeline", "disable");
    let (whole, elapsed) = (end.cost_since(&begin), end.at - begin.at);
    let steady = stretch(steady_from, steady_to.as_ref().unwrap_or(&end));
    println!(
        "  pipeline timeline: first record read after {:.2?}, all read after {:.2?}, all acknowledged after {elapsed:.2?}",
        first.unwrap_or(elapsed),
        all_read.unwrap_or(elapsed)
    );
    let used = |name: &str| end.used_since(&begin, name);
    let broker = used(MOCK_BROKER_THREAD);
    let evaluation = end
        .threads
        .keys()
        .filter(|name| name.starts_with("rayon-"))
        .map(|name| used(name))
        .sum();
    let per_thread: Vec<String> = end
        .threads
        .keys()
        .map(|name| (name, used(name)))
        .filter(|(_, d)| !d.is_zero())
        .map(|(name, d)| format!("{name} {:.2}s", d.as_secs_f64()))
        .collect();
    println!(
        "  CPU by thread name while timed: {}",
        per_thread.join(", ")
    );
    while kafka::committed(&brokers, &topics.group, &topics.events, partitions) != ends {
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
    let engine_after = engine();
    PipelineRun {
        whole,
        steady,
        broker,
        evaluation,
        hits: summary.hits,
        engine: [engine_before, engine_after],
    }
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
    let (from, to) = steady(n);
    let real_brokers = std::env::var_os("PIPELINE_BROKERS").is_some();
    println!(
        "pipeline benchmark: {n} events, {} cores, {rounds} rounds of engine alone, pipeline without Kafka, pipeline; steady stretch: events {from} to {to}",
        rayon::current_num_threads()
    );
    // The machine's speed drifts between runs, so the three are measured in turns and each
    // side's best round is compared; every round is printed too.
    let mut rounds_seen = Vec::new();
    for round in 1..=rounds {
        let (memory, memory_hits) = pipeline_without_kafka(&config, &events);
        let run = pipeline(&config, &events, round, &mut || {
            engine_alone(&config, &events)
        });
        let [(e1, s1, engine_hits), (e2, s2, hits_after)] = run.engine;
        assert_eq!(
            engine_hits, hits_after,
            "the engine finds the same hits twice"
        );
        let (engine, engine_steady) = (e1.and(e2), s1.and(s2));
        let (piped, piped_steady, broker, pipeline_hits) =
            (run.whole, run.steady, run.broker, run.hits);
        assert_eq!(
            pipeline_hits as usize, engine_hits,
            "the pipeline gives the engine's hits"
        );
        assert_eq!(
            memory_hits as usize, engine_hits,
            "so does it without Kafka"
        );
        let seen = Round {
            engine,
            engine_steady,
            memory,
            piped,
            piped_steady,
        };
        let apart = if real_brokers {
            String::new()
        } else {
            format!(
                "; mock broker {:.1} us/event apart",
                broker.as_secs_f64() * 1e6 / n as f64
            )
        };
        println!(
            "  round {round}: engine alone {:>7.0} events/s, {:.1} us CPU/event (steady {:.1}); without Kafka {:.1} us; pipeline {:>7.0} events/s, {:.1} us CPU/event (steady {:.1}{apart}; evaluation threads {:.1}); {engine_hits} hits; CPU ratio {:.2}, steady {:.2}",
            engine.events_per_second(),
            engine.per_event_us(),
            engine_steady.per_event_us(),
            memory.per_event_us(),
            piped.events_per_second(),
            piped.per_event_us(),
            piped_steady.per_event_us(),
            run.evaluation.as_secs_f64() * 1e6 / n as f64,
            seen.ratio(),
            seen.steady_ratio(),
        );
        rounds_seen.push(seen);
    }
    // A side's best round is the one with the least CPU per event; its wall clock is that
    // round's.
    let best = |cost: fn(&Round) -> Cost| {
        rounds_seen
            .iter()
            .map(cost)
            .min_by(|a, b| a.per_event_us().total_cmp(&b.per_event_us()))
            .expect("a round")
    };
    let median = |ratio: fn(&Round) -> f64| {
        let mut all: Vec<f64> = rounds_seen.iter().map(ratio).collect();
        all.sort_by(f64::total_cmp);
        all[all.len() / 2]
    };
    let (engine, memory, piped) = (best(|r| r.engine), best(|r| r.memory), best(|r| r.piped));
    let (engine_steady, piped_steady) = (best(|r| r.engine_steady), best(|r| r.piped_steady));
    println!(
        "  engine alone, best round: {:>10.0} events/s, {:.1} us CPU/event; steady stretch {:.1} us",
        engine.events_per_second(),
        engine.per_event_us(),
        engine_steady.per_event_us()
    );
    println!(
        "  pipeline without Kafka (events from memory, outputs acknowledged at once), best round: {:>10.0} events/s, {:.1} us CPU/event",
        memory.events_per_second(),
        memory.per_event_us()
    );
    println!(
        "  pipeline, best round:     {:>10.0} events/s, {:.1} us CPU/event without the broker; steady stretch {:>10.0} events/s, {:.1} us",
        piped.events_per_second(),
        piped.per_event_us(),
        piped_steady.events_per_second(),
        piped_steady.per_event_us()
    );
    println!(
        "  pipeline / engine, wall clock per event (broker sharing the cores): {:.2}",
        engine.events_per_second() / piped.events_per_second()
    );
    println!(
        "  pipeline without Kafka / engine, CPU per event: {:.2}",
        memory.per_event_us() / engine.per_event_us()
    );
    println!(
        "  pipeline / engine, CPU per event (the worker's own cost), whole run: {:.2} best against best, {:.2} median of the rounds",
        piped.per_event_us() / engine.per_event_us(),
        median(Round::ratio)
    );
    println!(
        "  pipeline / engine, CPU per event, steady stretch: {:.2} best against best, {:.2} median of the rounds (goal <= 1.25)",
        piped_steady.per_event_us() / engine_steady.per_event_us(),
        median(Round::steady_ratio)
    );
}

/// What one round measured.
struct Round {
    engine: Cost,
    engine_steady: Cost,
    memory: Cost,
    piped: Cost,
    piped_steady: Cost,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.piped.per_event_us() / self.engine.per_event_us()
    }
    fn steady_ratio(&self) -> f64 {
        self.piped_steady.per_event_us() / self.engine_steady.per_event_us()
    }
}
