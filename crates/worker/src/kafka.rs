//! Kafka: a consumer-group [`Source`] and producer-backed sinks for hits and dead letters.
//!
//! The consumer is a `BaseConsumer` polled only from the pipeline's fetch thread, so
//! rebalance callbacks, commits and pause/resume never race each other. The producer is a
//! `ThreadedProducer` whose own thread serves delivery reports: an acknowledgement completes
//! the output's [`Ticket`] directly, without passing through the pipeline, so commits keep up
//! even while the emitter is blocked on a full producer queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use foundry_engine::Hit;
use foundry_sigma::Logsource;

use crate::config::KafkaConfig;
use crate::delivery::{CommitOffset, Delivery, PartitionKey, Ticket};
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::pipeline::{
    DeadLetter, DeadLetterSink, DeferredHeaders, HitSink, RawRecord, RecordHeaders, Shutdown,
    Source,
};
use crate::WorkerError;

fn kafka_err(what: &str) -> impl Fn(KafkaError) -> WorkerError + '_ {
    move |e| WorkerError::Kafka(format!("{what}: {e}"))
}

fn keys_of(tpl: &TopicPartitionList) -> Vec<PartitionKey> {
    tpl.elements()
        .iter()
        .map(|e| PartitionKey {
            topic: e.topic().into(),
            partition: e.partition(),
        })
        .collect()
}

fn pairs(keys: &[PartitionKey]) -> Vec<(String, i32)> {
    keys.iter()
        .map(|k| (k.topic.to_string(), k.partition))
        .collect()
}

/// Callbacks of the consumer: rebalances, commit results, statistics.
pub struct ConsumerCallbacks {
    delivery: Arc<Delivery>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: Shutdown,
    revoke_wait: Duration,
    commits_in_sink: bool,
    assignment_changed: AtomicBool,
}

impl ClientContext for ConsumerCallbacks {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.desired && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerCallbacks {
    /// Marks the offsets of a failed commit to be committed again (see
    /// [`Delivery::commit_failed`]).
    fn retry_commits(&self, offsets: &TopicPartitionList) {
        for e in offsets.elements() {
            if let Offset::Offset(o) = e.offset() {
                let key = PartitionKey {
                    topic: e.topic().into(),
                    partition: e.partition(),
                };
                self.delivery.commit_failed(&key, o);
            }
        }
    }
}

impl ConsumerContext for ConsumerCallbacks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let keys = keys_of(tpl);
                self.delivery.assign(&keys);
                self.metrics.partitions_assigned(&pairs(&keys));
                self.assignment_changed.store(true, Ordering::Release);
                self.readiness.set_assigned(true);
            }
            Rebalance::Revoke(tpl) => {
                let keys = keys_of(tpl);
                // Give the revoked partitions' in-flight outputs a bounded time, commit what is
                // safe, then let go: what is not committed is re-read by the next owner.
                let lost = consumer.assignment_lost();
                let drained = !self.shutdown.aborted()
                    && !lost
                    && self
                        .delivery
                        .wait_drained(Some(&keys), Instant::now() + self.revoke_wait);
                if !self.shutdown.aborted() && !lost && !self.commits_in_sink {
                    let offsets = self.delivery.take_commits(Some(&keys));
                    if !offsets.is_empty() {
                        if let Err(e) = offset_list(&offsets)
                            .and_then(|tpl| consumer.commit(&tpl, CommitMode::Sync))
                        {
                            // The next owner re-reads from the last commit that succeeded.
                            self.metrics.commit_failed(&e);
                        }
                    }
                }
                self.delivery.revoke(&keys);
                self.metrics.partitions_revoked(&pairs(&keys), drained);
                self.assignment_changed.store(true, Ordering::Release);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            // "No offset" is not counted as a failure (nothing was wrong with the request),
            // but those offsets were not committed either: offer them again.
            if !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) {
                self.metrics.commit_failed(&e);
            } else {
                tracing::debug!(
                    ?offsets,
                    "commit answered with no offset; offering it again"
                );
            }
            self.retry_commits(offsets);
        }
    }
}

fn offset_list(offsets: &[CommitOffset]) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for o in offsets {
        tpl.add_partition_offset(&o.key.topic, o.key.partition, Offset::Offset(o.offset))?;
    }
    Ok(tpl)
}

/// A fetched message kept whole: its payload is shared rather than copied, and its headers
/// are read only if asked for (see [`KafkaSource::fetched`]).
struct FetchedMessage {
    message: BorrowedMessage<'static>,
    /// The headers once read: librdkafka caches what it parses in the message, so they are
    /// read once, by one thread.
    headers: OnceLock<Vec<(String, Vec<u8>)>>,
    _consumer: Arc<BaseConsumer<ConsumerCallbacks>>,
}

impl DeferredHeaders for FetchedMessage {
    fn read(&self) -> Vec<(String, Vec<u8>)> {
        self.headers
            .get_or_init(|| {
                self.message
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .clone()
    }
}

/// A fetched message's payload, as the bytes of a record.
struct SharedPayload(Arc<FetchedMessage>);

impl AsRef<[u8]> for SharedPayload {
    fn as_ref(&self) -> &[u8] {
        self.0.message.payload().unwrap_or_default()
    }
}

/// What a record takes from its input topic: the name, shared, and the logsource the input
/// declares.
struct TopicSeen {
    name: Arc<str>,
    hint: Option<Arc<Logsource>>,
}

/// The consumer-group source.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<ConsumerCallbacks>>,
    /// By topic name: the configured inputs, and any other topic once a record of it is read.
    topics: HashMap<String, TopicSeen>,
    paused: bool,
    /// Records that arrived while pausing; they are registered with the next fetch.
    stash: VecDeque<RawRecord>,
    commits_in_sink: bool,
}

/// Everything a Kafka run shares between source and sinks.
pub struct KafkaParts {
    /// The source.
    pub source: KafkaSource,
    /// Hit sink.
    pub hits: KafkaHitSink,
    /// Dead-letter sink.
    pub dead_letters: KafkaDeadLetterSink,
}

/// Creates consumer and producer for a configuration.
pub fn connect(
    config: &KafkaConfig,
    worker_id: &str,
    delivery: Arc<Delivery>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: Shutdown,
) -> Result<KafkaParts, WorkerError> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("client.id", worker_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", &config.auto_offset_reset)
        .set(
            "statistics.interval.ms",
            config.statistics_interval_ms.to_string(),
        )
        .set("isolation.level", "read_committed")
        // librdkafka stops fetching a partition whose local queue is full for a whole second
        // by default; the pipeline drains the queue in batches of milliseconds, so a second
        // without input would idle every stage.
        .set("fetch.queue.backoff.ms", "10")
        // The pipeline keeps its own bounded queues of records, so librdkafka's prefetch
        // needs to cover only a fetch round trip: 16 MB instead of the default 64 MB, fewer
        // fetched pages alive at once and so fewer touched for the first time. librdkafka
        // also caps a fetch response at this size unless `fetch.max.bytes` is set (or
        // `message.max.bytes` is larger): with many partitions on one broker, responses then
        // stay under glibc's 32 MB ceiling for reusing freed memory, and receive buffers are
        // recycled instead of mapped and faulted in anew. A record batch larger than the
        // limit is still fetched whole.
        .set("queued.max.messages.kbytes", "16384");
    for (k, v) in config.properties.iter().chain(&config.consumer_properties) {
        cc.set(k, v);
    }
    let callbacks = ConsumerCallbacks {
        delivery,
        metrics: metrics.clone(),
        readiness,
        shutdown: shutdown.clone(),
        revoke_wait: Duration::from_millis(config.revoke_wait_ms),
        commits_in_sink: config.exactly_once,
        assignment_changed: AtomicBool::new(false),
    };
    let consumer: BaseConsumer<ConsumerCallbacks> = cc
        .create_with_context(callbacks)
        .map_err(kafka_err("cannot create the consumer"))?;
    let topics: Vec<&str> = config.inputs.iter().map(|i| i.topic.as_str()).collect();
    consumer
        .subscribe(&topics)
        .map_err(kafka_err("cannot subscribe"))?;
    tracing::info!(?topics, group = %config.group, exactly_once = config.exactly_once, "consumer subscribed");
    let consumer = Arc::new(consumer);

    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", &config.brokers)
        .set("client.id", worker_id)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set(
            "queue.buffering.max.messages",
            config.producer_queue_messages.to_string(),
        )
        .set(
            "message.max.bytes",
            (config.dead_letter_max_bytes + (64 << 10))
                .max(1_000_000)
                .to_string(),
        );
    if config.exactly_once {
        let id = config
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("{}-{worker_id}", config.group));
        pc.set("transactional.id", id);
    }
    for (k, v) in config.properties.iter().chain(&config.producer_properties) {
        pc.set(k, v);
    }
    let retry = Arc::new(Mutex::new(Vec::new()));
    let producer: ThreadedProducer<ProducerCallbacks> = pc
        .create_with_context(ProducerCallbacks {
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            retry: retry.clone(),
        })
        .map_err(kafka_err("cannot create the producer"))?;
    if config.exactly_once {
        producer
            .init_transactions(Duration::from_secs(30))
            .map_err(kafka_err("cannot start transactions"))?;
    }
    let output = Arc::new(Output {
        producer,
        retry,
        shutdown,
        transaction: config.exactly_once.then(|| Transaction {
            consumer: consumer.clone(),
            open: AtomicBool::new(false),
        }),
    });
    let topics = config
        .inputs
        .iter()
        .map(|i| {
            let seen = TopicSeen {
                name: i.topic.as_str().into(),
                hint: i.logsource().map(Arc::new),
            };
            (i.topic.clone(), seen)
        })
        .collect();
    Ok(KafkaParts {
        source: KafkaSource {
            consumer,
            topics,
            paused: false,
            stash: VecDeque::new(),
            commits_in_sink: config.exactly_once,
        },
        hits: KafkaHitSink {
            output: output.clone(),
            topic: config.hits_topic.clone(),
        },
        dead_letters: KafkaDeadLetterSink {
            output,
            topic: config.dead_letter_topic.clone(),
            max_bytes: config.dead_letter_max_bytes,
        },
    })
}

impl KafkaSource {
    /// The message's payload and headers without copying either: the payload stays in
    /// librdkafka's fetch buffer until the last reference to it is dropped, and the headers
    /// stay in the message until asked for.
    fn fetched(&self, m: BorrowedMessage<'_>) -> (bytes::Bytes, RecordHeaders) {
        // SAFETY: a consumer's message is valid for as long as the consumer lives (that is
        // all its lifetime stands for); `FetchedMessage` keeps the consumer alive and drops
        // the message first (fields drop in declaration order). librdkafka lets a message be
        // destroyed on any thread, and rdkafka marks it `Send` and `Sync`; the one call that
        // changes it (parsing its headers) is made once, under `OnceLock`.
        let message =
            unsafe { std::mem::transmute::<BorrowedMessage<'_>, BorrowedMessage<'static>>(m) };
        let fetched = Arc::new(FetchedMessage {
            message,
            headers: OnceLock::new(),
            _consumer: self.consumer.clone(),
        });
        let payload = if fetched.message.payload_len() == 0 {
            bytes::Bytes::new()
        } else {
            bytes::Bytes::from_owner(SharedPayload(fetched.clone()))
        };
        (payload, RecordHeaders::Deferred(fetched))
    }

    fn record_of(&mut self, m: BorrowedMessage<'_>) -> RawRecord {
        // One lookup per record. A topic no input names as such (one matched by a `^pattern`
        // subscription) is kept on first sight, without a declared logsource.
        let (topic, hint) = match self.topics.get(m.topic()) {
            Some(seen) => (seen.name.clone(), seen.hint.clone()),
            None => {
                let name: Arc<str> = m.topic().into();
                let seen = TopicSeen {
                    name: name.clone(),
                    hint: None,
                };
                self.topics.insert(m.topic().to_string(), seen);
                (name, None)
            }
        };
        let key = PartitionKey {
            topic,
            partition: m.partition(),
        };
        let epoch = Some(self.consumer.context().delivery.epoch(&key));
        let (offset, record_key) = (m.offset(), m.key().map(<[u8]>::to_vec));
        let (payload, headers) = self.fetched(m);
        RawRecord {
            key,
            epoch,
            offset,
            record_key,
            payload,
            headers,
            hint,
            kafka: true,
        }
    }

    /// Polls once; a message is turned into a record, an error is logged.
    fn poll_one(&mut self, wait: Duration) -> Option<RawRecord> {
        let consumer = self.consumer.clone();
        match consumer.poll(wait)? {
            Ok(m) => Some(self.record_of(m)),
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                None
            }
        }
    }

    fn set_paused(&mut self, paused: bool) {
        // librdkafka keeps a partition's pause flag across revoke and re-assignment, so after
        // any assignment change the wanted state is applied to the whole assignment again.
        let changed = self
            .consumer
            .context()
            .assignment_changed
            .swap(false, Ordering::AcqRel);
        if paused == self.paused && !changed {
            return;
        }
        if let Ok(assignment) = self.consumer.assignment() {
            let result = if paused {
                self.consumer.pause(&assignment)
            } else {
                self.consumer.resume(&assignment)
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, paused, "cannot pause or resume the input");
            }
        }
        self.paused = paused;
    }
}

impl Source for KafkaSource {
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<RawRecord>>, WorkerError> {
        self.set_paused(false);
        let mut out: Vec<RawRecord> = Vec::with_capacity(max.min(4096));
        while out.len() < max {
            match self.stash.pop_front() {
                Some(r) => out.push(r),
                None => break,
            }
        }
        let deadline = Instant::now() + wait;
        while out.len() < max {
            // Wait only for the first record; then take what is already fetched.
            let timeout = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.poll_one(timeout) {
                Some(r) => out.push(r),
                None if out.is_empty() && Instant::now() < deadline => continue,
                None => break,
            }
        }
        Ok(Some(out))
    }

    fn hold(&mut self, wait: Duration) -> Result<(), WorkerError> {
        self.set_paused(true);
        // Paused partitions deliver nothing new, but what was already fetched may still come;
        // dropping it would let a later commit skip it, so it waits in the stash.
        if let Some(r) = self.poll_one(wait) {
            self.stash.push_back(r);
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[CommitOffset], last: bool) -> Result<(), WorkerError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = offset_list(offsets).map_err(kafka_err("bad offsets"))?;
        let mode = if last {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            let context = self.consumer.context();
            context.metrics.commit_failed(&e);
            context.retry_commits(&tpl);
        }
        Ok(())
    }

    fn commits_in_sink(&self) -> bool {
        self.commits_in_sink
    }

    fn close(&mut self) {
        // Leaving the group revokes every partition; the revoke callback finds nothing left to
        // commit after the final commit.
        self.consumer.unsubscribe();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.consumer.assignment().is_ok_and(|a| a.count() > 0) {
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
        tracing::info!("left the consumer group");
    }
}

struct Resend {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    ticket: Arc<Ticket>,
}

/// Delivery reports: success completes the ticket; failure queues the output for re-sending.
pub struct ProducerCallbacks {
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    retry: Arc<Mutex<Vec<Resend>>>,
}

impl ClientContext for ProducerCallbacks {}

impl ProducerContext for ProducerCallbacks {
    type DeliveryOpaque = Arc<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Arc<Ticket>) {
        match result {
            Ok(_) => ticket.done(),
            Err((e, m)) => {
                if self.shutdown.aborted()
                    || matches!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
                    )
                {
                    return;
                }
                self.metrics.delivery_failed(m.topic(), e);
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                self.retry
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Resend {
                        topic: m.topic().to_string(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers,
                        ticket,
                    });
            }
        }
    }
}

struct Transaction {
    consumer: Arc<BaseConsumer<ConsumerCallbacks>>,
    open: AtomicBool,
}

/// The producer shared by the hit and dead-letter sinks.
struct Output {
    producer: ThreadedProducer<ProducerCallbacks>,
    retry: Arc<Mutex<Vec<Resend>>>,
    shutdown: Shutdown,
    transaction: Option<Transaction>,
}

impl Output {
    fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
        ticket: Arc<Ticket>,
    ) -> Result<(), WorkerError> {
        if let Some(tx) = &self.transaction {
            if !tx.open.swap(true, Ordering::AcqRel) {
                self.producer
                    .begin_transaction()
                    .map_err(kafka_err("cannot begin a transaction"))?;
            }
        }
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = BaseRecord::with_opaque_to(topic, ticket)
            .payload(payload)
            .headers(owned);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The producer's queue is the bound on output memory: wait for room. Past
                    // the shutdown deadline, give up: the record stays unacknowledged, so its
                    // offset is not committed and the next owner reads it again.
                    if self.shutdown.aborted() || self.shutdown.overdue() {
                        return Ok(());
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => {
                    return Err(WorkerError::Kafka(format!("cannot send to {topic}: {e}")))
                }
            }
        }
    }

    fn resend_failed(&self) -> Result<(), WorkerError> {
        let failed: Vec<Resend> =
            std::mem::take(&mut *self.retry.lock().unwrap_or_else(|e| e.into_inner()));
        if !failed.is_empty() && self.transaction.is_some() {
            return Err(WorkerError::Kafka(
                "a transactional output failed; the transaction cannot commit".into(),
            ));
        }
        for r in failed {
            std::thread::sleep(Duration::from_millis(10));
            self.produce(&r.topic, r.key.as_deref(), &r.payload, &r.headers, r.ticket)?;
        }
        Ok(())
    }

    fn end_batch(&self, records: &[RawRecord]) -> Result<(), WorkerError> {
        self.resend_failed()?;
        let Some(tx) = &self.transaction else {
            return Ok(());
        };
        if records.is_empty() || self.shutdown.aborted() {
            return Ok(());
        }
        if !tx.open.swap(true, Ordering::AcqRel) {
            self.producer
                .begin_transaction()
                .map_err(kafka_err("cannot begin a transaction"))?;
        }
        let mut next: HashMap<&PartitionKey, i64> = HashMap::new();
        for r in records {
            let e = next.entry(&r.key).or_insert(r.offset + 1);
            *e = (*e).max(r.offset + 1);
        }
        let offsets: Vec<CommitOffset> = next
            .into_iter()
            .map(|(k, o)| CommitOffset {
                key: k.clone(),
                offset: o,
            })
            .collect();
        let tpl = offset_list(&offsets).map_err(kafka_err("bad offsets"))?;
        let group = tx.consumer.group_metadata().ok_or_else(|| {
            WorkerError::Kafka("no consumer group metadata for the transaction".into())
        })?;
        let timeout = Duration::from_secs(30);
        let result = self
            .producer
            .send_offsets_to_transaction(&tpl, &group, timeout)
            .and_then(|()| self.producer.commit_transaction(timeout));
        tx.open.store(false, Ordering::Release);
        if let Err(e) = result {
            let _ = self.producer.abort_transaction(timeout);
            // The consumer has moved past these records; only a restart from the committed
            // offsets gets them back, so this is fatal rather than silently skipped.
            return Err(WorkerError::Kafka(format!("transaction failed: {e}")));
        }
        Ok(())
    }
}

/// Writes hits to the hits topic.
pub struct KafkaHitSink {
    output: Arc<Output>,
    topic: String,
}

impl HitSink for KafkaHitSink {
    fn send(&mut self, hit: &Hit, key: Option<&[u8]>, ack: Arc<Ticket>) -> Result<(), WorkerError> {
        let payload = serde_json::to_vec(hit).map_err(|e| WorkerError::Pipeline(e.to_string()))?;
        self.output.produce(&self.topic, key, &payload, &[], ack)
    }

    fn end_batch(&mut self, records: &[RawRecord]) -> Result<(), WorkerError> {
        self.output.end_batch(records)
    }

    fn pump(&mut self) -> Result<(), WorkerError> {
        self.output.resend_failed()
    }
}

/// Writes dead letters: the original bytes and key, the original headers, and headers naming
/// the reason, the source topic/partition/offset and the worker.
pub struct KafkaDeadLetterSink {
    output: Arc<Output>,
    topic: String,
    max_bytes: usize,
}

/// Header names on dead letters.
pub mod headers {
    /// Why the record was dead-lettered (`not_json`, `not_object`, `not_utf8`, `too_large`).
    pub const REASON: &str = "foundry-reason";
    /// The decoder's detail.
    pub const DETAIL: &str = "foundry-detail";
    /// Source topic.
    pub const TOPIC: &str = "foundry-source-topic";
    /// Source partition (decimal).
    pub const PARTITION: &str = "foundry-source-partition";
    /// Source offset (decimal).
    pub const OFFSET: &str = "foundry-source-offset";
    /// The worker's id.
    pub const WORKER: &str = "foundry-worker";
    /// Original length when the bytes were cut to the dead-letter size limit.
    pub const TRUNCATED_FROM: &str = "foundry-truncated-from";
}

impl DeadLetterSink for KafkaDeadLetterSink {
    fn send(&mut self, letter: &DeadLetter<'_>, ack: Arc<Ticket>) -> Result<(), WorkerError> {
        let r = letter.record;
        let mut hs = r.headers.to_vec();
        hs.push((headers::REASON.into(), letter.error.reason.as_str().into()));
        hs.push((
            headers::DETAIL.into(),
            letter.error.detail.clone().into_bytes(),
        ));
        hs.push((headers::TOPIC.into(), r.key.topic.as_bytes().to_vec()));
        hs.push((
            headers::PARTITION.into(),
            r.key.partition.to_string().into_bytes(),
        ));
        hs.push((headers::OFFSET.into(), r.offset.to_string().into_bytes()));
        hs.push((headers::WORKER.into(), letter.worker.as_bytes().to_vec()));
        let payload = if r.payload.len() > self.max_bytes {
            hs.push((
                headers::TRUNCATED_FROM.into(),
                r.payload.len().to_string().into_bytes(),
            ));
            &r.payload[..self.max_bytes]
        } else {
            &r.payload[..]
        };
        self.output
            .produce(&self.topic, r.record_key.as_deref(), payload, &hs, ack)
    }

    fn end_batch(&mut self) -> Result<(), WorkerError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    /// Payloads are librdkafka's own bytes, not copies, and headers are left in the message
    /// until asked for: both must stay whole after the source that read them, and everything
    /// else of the Kafka run, is gone. An empty payload keeps its headers too.
    #[test]
    fn payloads_and_headers_outlive_the_source_that_read_them() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let mut sent: Vec<Vec<u8>> = (0..3)
            .map(|i| format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(100 * i)).into_bytes())
            .collect();
        sent.push(Vec::new());
        // What each record is sent with, and so what it must be read back with (a header
        // without a value reads as an empty one).
        let with_headers = || {
            OwnedHeaders::new()
                .insert(Header {
                    key: "host",
                    value: Some("ws-17"),
                })
                .insert(Header {
                    key: "trace",
                    value: None::<&str>,
                })
        };
        let expected: Vec<Vec<(String, Vec<u8>)>> = vec![
            vec![
                ("host".into(), b"ws-17".to_vec()),
                ("trace".into(), Vec::new()),
            ],
            Vec::new(),
            Vec::new(),
            vec![
                ("host".into(), b"ws-17".to_vec()),
                ("trace".into(), Vec::new()),
            ],
        ];
        let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
            ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .unwrap();
        for (i, payload) in sent.iter().enumerate() {
            let record = BaseRecord::<(), _>::to("t").payload(payload);
            let record = if expected[i].is_empty() {
                record
            } else {
                record.headers(with_headers())
            };
            producer.send(record).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let input = crate::config::InputTopic {
            topic: "t".into(),
            ..Default::default()
        };
        let records = read_back(brokers, vec![input], sent.len());
        let read: Vec<&[u8]> = records.iter().map(|r| &r.payload[..]).collect();
        let sent: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
        assert_eq!(read, sent);
        let headers: Vec<_> = records.iter().map(|r| r.headers.to_vec()).collect();
        assert_eq!(headers, expected);
        // Asked again (they are parsed once), from another thread.
        let again = std::thread::spawn(move || records[0].headers.to_vec())
            .join()
            .unwrap();
        assert_eq!(again, expected[0]);
    }

    /// A record carries the logsource its input topic declares, and none when the topic
    /// declares none.
    #[test]
    fn records_carry_their_topics_declared_logsource() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("security", 1, 1).unwrap();
        cluster.create_topic("plain", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
            ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .unwrap();
        for topic in ["security", "plain"] {
            producer
                .send(BaseRecord::<(), _>::to(topic).payload("{}"))
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let security = crate::config::InputTopic {
            topic: "security".into(),
            product: Some("windows".into()),
            service: Some("security".into()),
            ..Default::default()
        };
        let plain = crate::config::InputTopic {
            topic: "plain".into(),
            ..Default::default()
        };
        let records = read_back(brokers, vec![security, plain], 2);
        let hint_of = |topic: &str| {
            let r = records.iter().find(|r| &*r.key.topic == topic).unwrap();
            r.hint.as_deref().cloned()
        };
        let declared = foundry_sigma::Logsource {
            product: Some("windows".into()),
            category: None,
            service: Some("security".into()),
            definition: None,
        };
        assert_eq!(hint_of("security"), Some(declared));
        assert_eq!(hint_of("plain"), None);
    }

    /// Reads `n` records of `inputs` as a worker would, then drops the source and the sinks
    /// (the Kafka run's clients) before handing the records over.
    fn read_back(
        brokers: String,
        inputs: Vec<crate::config::InputTopic>,
        n: usize,
    ) -> Vec<RawRecord> {
        let config = KafkaConfig {
            brokers,
            group: "g".into(),
            inputs,
            ..Default::default()
        };
        let metrics = Arc::new(Metrics::new());
        let delivery = Delivery::new(100, metrics.in_flight.clone());
        let parts = connect(
            &config,
            "w",
            delivery,
            metrics,
            Readiness::new(),
            Shutdown::new(),
        )
        .unwrap();
        let mut source = parts.source;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut records = Vec::new();
        while records.len() < n && Instant::now() < deadline {
            records.extend(
                source
                    .fetch(10, Duration::from_millis(200))
                    .unwrap()
                    .unwrap(),
            );
        }
        drop((source, parts.hits, parts.dead_letters));
        records
    }
}
