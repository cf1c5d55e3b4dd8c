//! Kafka helpers for tests: producing inputs, reading topics back, waiting for commits.
#![allow(dead_code)]
// Configurations are written setting by setting, as a reader compares them with the TOML.
#![allow(clippy::field_reassign_with_default)]

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use foundry_worker::{
    InputTopic, KafkaConfig, Metrics, RunSummary, Shutdown, Worker, WorkerConfig,
};

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, Vec<u8>>,
}

pub fn producer(brokers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "20000000")
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

/// Produces `payloads[i]` to partition `i % partitions` with key `k<i>`, and waits for all.
pub fn produce(brokers: &str, topic: &str, partitions: i32, payloads: &[Vec<u8>]) {
    let p = producer(brokers);
    for (i, payload) in payloads.iter().enumerate() {
        let key = format!("k{i}");
        let mut record = BaseRecord::to(topic)
            .partition(i as i32 % partitions)
            .key(&key)
            .payload(payload);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
}

/// Reads every record of `topic` (all `partitions`) from the beginning up to the current end.
pub fn read_all(brokers: &str, topic: &str, partitions: i32) -> Vec<Read> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .unwrap();
        ends.insert(p, high);
    }
    c.assign(&tpl).unwrap();
    let mut next: HashMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let mut out = Vec::new();
    // Generous: the end-to-end test reads the whole corpus back from a real broker.
    let deadline = Instant::now() + Duration::from_secs(300);
    while (0..partitions).any(|p| next[&p] < ends[&p]) {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        next.insert(m.partition(), m.offset() + 1);
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Read {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    out
}

/// Reads a topic while it is being written. librdkafka's mock cluster keeps only the newest
/// few megabytes of each partition and drops older records, so a topic written faster than
/// that (the hits of 100,000 events) must be read as it grows, not at the end.
pub struct Collector {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: JoinHandle<Vec<Read>>,
}

impl Collector {
    pub fn start(brokers: &str, topic: &str, partitions: i32) -> Collector {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let (brokers, topic, flag) = (brokers.to_string(), topic.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", "test-collector")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(&topic, p, Offset::Beginning)
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            let mut next: HashMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
            let mut out = Vec::new();
            let mut ends: Option<HashMap<i32, i64>> = None;
            let mut deadline = None;
            loop {
                if ends.is_none() && flag.load(Ordering::Acquire) {
                    let e: HashMap<i32, i64> = (0..partitions)
                        .map(|p| {
                            (
                                p,
                                c.fetch_watermarks(&topic, p, Duration::from_secs(30))
                                    .unwrap()
                                    .1,
                            )
                        })
                        .collect();
                    ends = Some(e);
                    deadline = Some(Instant::now() + Duration::from_secs(120));
                }
                if let Some(e) = &ends {
                    if (0..partitions).all(|p| next[&p] >= e[&p]) {
                        return out;
                    }
                    assert!(
                        Instant::now() < deadline.unwrap(),
                        "reading {topic} timed out"
                    );
                }
                let Some(m) = c.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let Ok(m) = m else { continue };
                assert_eq!(
                    m.offset(),
                    next[&m.partition()],
                    "{topic}/{}: records were dropped before they were read",
                    m.partition()
                );
                next.insert(m.partition(), m.offset() + 1);
                out.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: HashMap::new(),
                });
            }
        });
        Collector { stop, thread }
    }

    /// Everything written so far (up to the end as of this call).
    pub fn finish(self) -> Vec<Read> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.join().unwrap()
    }
}

/// The group's committed offset per partition (-1 when none, or when the broker cannot say
/// right now: callers poll until the offsets they wait for appear).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let Ok(got) = c.committed_offsets(tpl, Duration::from_secs(30)) else {
        return vec![-1; partitions as usize];
    };
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

pub fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(30))
                .unwrap()
                .1
        })
        .collect()
}

/// Waits (generously) until the group has committed the end of every input partition.
pub fn wait_all_committed(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) {
    let ends = high_watermarks(brokers, topic, partitions);
    let deadline = Instant::now() + timeout;
    loop {
        let got = committed(brokers, group, topic, partitions);
        if got == ends {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "commits never reached the end: {got:?} vs {ends:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A Kafka-mode configuration for tests.
pub fn kafka_config(base: &WorkerConfig, brokers: &str, group: &str, input: &str) -> WorkerConfig {
    let mut c = base.clone();
    c.batch_size = 200;
    c.max_in_flight = 2000;
    c.batch_wait_ms = 50;
    c.shutdown_deadline_secs = 60;
    let mut k = KafkaConfig::default();
    k.brokers = brokers.to_string();
    k.group = group.to_string();
    k.inputs = vec![InputTopic {
        topic: input.into(),
        ..InputTopic::default()
    }];
    k.hits_topic = "hits".into();
    k.dead_letter_topic = "dead-letters".into();
    k.commit_interval_ms = 0;
    k.revoke_wait_ms = 20_000;
    k.statistics_interval_ms = 1000;
    k.properties
        .insert("topic.metadata.refresh.interval.ms".into(), "1000".into());
    // A crashed member holds the group in a rebalance until its session times out, and no
    // commit of the group lands meanwhile: keep that window short so that what a crash
    // re-delivers stays close to what was in flight.
    k.consumer_properties
        .insert("session.timeout.ms".into(), "3000".into());
    k.consumer_properties
        .insert("heartbeat.interval.ms".into(), "300".into());
    c.kafka = Some(k);
    c
}

/// A worker running on its own thread.
pub struct Running {
    pub shutdown: Shutdown,
    pub metrics: Arc<Metrics>,
    pub delivery: Arc<foundry_worker::Delivery>,
    pub thread: JoinHandle<RunSummary>,
}

pub fn start(config: WorkerConfig) -> Running {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let worker = Worker::new(config).unwrap();
    let shutdown = worker.shutdown();
    let metrics = worker.metrics();
    let delivery = worker.delivery();
    let thread = std::thread::spawn(move || worker.run().unwrap());
    Running {
        shutdown,
        metrics,
        delivery,
        thread,
    }
}

impl Running {
    pub fn stop(self) -> RunSummary {
        self.shutdown.stop();
        self.thread.join().unwrap()
    }
    pub fn abort(self) -> RunSummary {
        self.shutdown.abort();
        self.thread.join().unwrap()
    }
    pub fn consumed(&self) -> u64 {
        self.metrics.events_consumed.get()
    }
}

/// Waits until `f` holds, failing after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Hits read back as (input partition, input offset, rule id).
pub fn hit_keys(reads: &[Read]) -> Vec<(i32, i64, String)> {
    reads
        .iter()
        .map(|r| {
            let hit: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            (
                hit["event"]["partition"].as_i64().unwrap() as i32,
                hit["event"]["offset"].as_i64().unwrap(),
                hit["rule"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
