//! The pipeline every input runs through: fetch → decode and evaluate → emit → commit.
//!
//! Three threads joined by channels of one batch each: the *fetch* thread (the caller's) owns
//! the [`Source`], registers records with [`Delivery`] and commits; the *evaluate* thread
//! decodes and evaluates a whole batch across cores with rayon while the next one is fetched;
//! the *emit* thread hands hits and dead letters to the sinks with the records' tickets.
//! Every queue is bounded — the channels, the producer's queue, and the in-flight limit that
//! pauses the source — so a slow output slows the input down instead of growing memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry_engine::{DecodeError, Evaluation, EventOrigin, Hit};
use foundry_sigma::Logsource;
use rayon::prelude::*;

use crate::delivery::{CommitOffset, Delivery, PartitionKey, Ticket};
use crate::metrics::Metrics;
use crate::rules::RuleSetHandle;
use crate::WorkerError;

/// A record's Kafka headers. Reading them out of a consumed message costs librdkafka a parse
/// buffer for every message, headers or not, and only dead letters carry them on, so a
/// Kafka record leaves them in the message until they are asked for.
#[derive(Clone)]
pub enum RecordHeaders {
    /// Headers at hand (none for records read outside Kafka).
    Read(Vec<(String, Vec<u8>)>),
    /// Headers still in the consumed message.
    Deferred(Arc<dyn DeferredHeaders>),
}

/// A message whose headers are read when first asked for.
pub trait DeferredHeaders: Send + Sync {
    /// The headers, name and value (a header without a value has an empty one).
    fn read(&self) -> Vec<(String, Vec<u8>)>;
}

impl RecordHeaders {
    /// The headers, read out of the message now if they were left there.
    pub fn to_vec(&self) -> Vec<(String, Vec<u8>)> {
        match self {
            RecordHeaders::Read(headers) => headers.clone(),
            RecordHeaders::Deferred(message) => message.read(),
        }
    }
}

impl std::fmt::Debug for RecordHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordHeaders::Read(headers) => f.debug_tuple("Read").field(headers).finish(),
            RecordHeaders::Deferred(_) => f.write_str("Deferred"),
        }
    }
}

/// One record as read from the input, before decoding.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Partition it was read from (for files: the file and 0).
    pub key: PartitionKey,
    /// Offset in that partition (line for files).
    pub offset: i64,
    /// The Kafka key, if any.
    pub record_key: Option<Vec<u8>>,
    /// The bytes. For Kafka, librdkafka's own copy of the message, shared rather than copied.
    pub payload: bytes::Bytes,
    /// Kafka headers.
    pub headers: RecordHeaders,
    /// The logsource the input declares for this record.
    pub hint: Option<Arc<Logsource>>,
    /// Whether the origin carries Kafka topic and partition.
    pub kafka: bool,
    /// The ownership epoch of its partition when it was read (Kafka), so that a record read
    /// before a revocation is never counted toward a later ownership's commits.
    pub epoch: Option<u64>,
}

impl RawRecord {
    /// A record read outside Kafka (a file line, a test's or benchmark's event): no Kafka
    /// key, headers or declared logsource.
    pub fn new(key: PartitionKey, offset: i64, payload: bytes::Bytes) -> RawRecord {
        RawRecord {
            key,
            offset,
            record_key: None,
            payload,
            headers: RecordHeaders::Read(Vec::new()),
            hint: None,
            kafka: false,
            epoch: None,
        }
    }

    /// The origin a hit of this record names.
    pub fn origin(&self) -> EventOrigin {
        EventOrigin {
            source: self.key.topic.to_string(),
            offset: self.offset.max(0) as u64,
            topic: self.kafka.then(|| self.key.topic.to_string()),
            partition: self.kafka.then_some(self.key.partition),
            time: None,
        }
    }
}

/// An input: Kafka partitions or JSON Lines files.
pub trait Source: Send {
    /// Fetches up to `max` records, waiting at most `wait` for the first. `Ok(None)` means
    /// the input has ended (files); an empty batch means nothing arrived in time.
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<RawRecord>>, WorkerError>;
    /// Called instead of [`Source::fetch`] while the pipeline is full: keep the session alive
    /// (serve rebalances, heartbeats) without taking records, for at most `wait`. A source
    /// without a session (files, memory) just waits.
    fn hold(&mut self, wait: Duration) -> Result<(), WorkerError> {
        std::thread::sleep(wait);
        Ok(())
    }
    /// Commits offsets (the next offset to read per partition). `last` asks for a synchronous
    /// commit at shutdown. A source with no positions to keep (files, memory) keeps none.
    fn commit(&mut self, _offsets: &[CommitOffset], _last: bool) -> Result<(), WorkerError> {
        Ok(())
    }
    /// Whether offsets are committed by the sinks instead (exactly-once).
    fn commits_in_sink(&self) -> bool {
        false
    }
    /// Leaves the input (the consumer group) after the last commit.
    fn close(&mut self) {}
}

/// Where hits go.
pub trait HitSink: Send {
    /// Queues one hit. `ack` is called once the output has it durably; a failed delivery is
    /// retried by the sink, never acknowledged. May block while the output is full.
    fn send(&mut self, hit: &Hit, key: Option<&[u8]>, ack: Arc<Ticket>) -> Result<(), WorkerError>;
    /// End of a batch of `records`: push out buffered output (and, for transactions, commit
    /// the batch together with its offsets).
    fn end_batch(&mut self, records: &[RawRecord]) -> Result<(), WorkerError>;
    /// Re-sends failed outputs; called while waiting for acknowledgements at shutdown.
    fn pump(&mut self) -> Result<(), WorkerError> {
        Ok(())
    }
}

/// A record that could not be used, with why.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    /// The original record.
    pub record: &'a RawRecord,
    /// Why.
    pub error: &'a DecodeError,
    /// The worker that gave up on it.
    pub worker: &'a str,
}

/// Where dead letters go.
pub trait DeadLetterSink: Send {
    /// Queues one dead letter; `ack` as for [`HitSink::send`].
    fn send(&mut self, letter: &DeadLetter<'_>, ack: Arc<Ticket>) -> Result<(), WorkerError>;
    /// End of a batch.
    fn end_batch(&mut self) -> Result<(), WorkerError>;
}

/// Stops a running worker: gracefully (finish in-flight, wait for acks, commit, leave) or by
/// abort (drop everything at once, as a crash would; only tests want this).
#[derive(Clone, Default)]
pub struct Shutdown(Arc<ShutdownFlags>);

#[derive(Default)]
struct ShutdownFlags {
    stop: AtomicBool,
    abort: AtomicBool,
    /// When the first stop was asked for: every stage measures the one shutdown deadline
    /// from here, so the stages' waits do not add up.
    stopped_at: std::sync::OnceLock<Instant>,
    /// The time a graceful stop may take, set by the pipeline.
    grace: std::sync::OnceLock<Duration>,
}

impl Shutdown {
    /// A handle that has not fired.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }
    /// Asks for a graceful stop (what SIGTERM and SIGINT do).
    pub fn stop(&self) {
        let _ = self.0.stopped_at.set(Instant::now());
        self.0.stop.store(true, Ordering::Release);
    }
    /// Sets the time a graceful stop may take (the pipeline does, from its settings).
    pub fn set_grace(&self, grace: Duration) {
        let _ = self.0.grace.set(grace);
    }
    /// The instant by which a graceful stop gives up waiting: the stop plus the grace time.
    /// Far in the future while no stop was asked for.
    pub fn deadline(&self) -> Instant {
        let grace = self
            .0
            .grace
            .get()
            .copied()
            .unwrap_or(Duration::from_secs(30));
        match self.0.stopped_at.get() {
            Some(at) => *at + grace,
            None => Instant::now() + grace + Duration::from_secs(3600),
        }
    }
    /// Whether a stop was asked for and its deadline has passed.
    pub fn overdue(&self) -> bool {
        self.stopping() && Instant::now() >= self.deadline()
    }
    /// Stops without committing or waiting for anything.
    pub fn abort(&self) {
        self.0.abort.store(true, Ordering::Release);
        self.stop();
    }
    /// Whether a stop of any kind was asked for.
    pub fn stopping(&self) -> bool {
        self.0.stop.load(Ordering::Acquire)
    }
    /// Whether an abort was asked for.
    pub fn aborted(&self) -> bool {
        self.0.abort.load(Ordering::Acquire)
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records read.
    pub events: u64,
    /// Hits emitted.
    pub hits: u64,
    /// Dead letters emitted.
    pub dead_letters: u64,
    /// Records still unacknowledged when the run ended (0 after a clean stop).
    pub unacknowledged: usize,
}

/// Settings the pipeline needs.
pub struct PipelineSettings {
    /// Records per batch.
    pub batch_size: usize,
    /// Longest wait for a batch.
    pub batch_wait: Duration,
    /// Records over this size are dead-lettered.
    pub max_event_bytes: usize,
    /// Least time between commits.
    pub commit_interval: Duration,
    /// Time allowed for a graceful stop.
    pub shutdown_deadline: Duration,
    /// This worker's id.
    pub worker_id: String,
    /// How a hit's key is chosen.
    pub hit_key: crate::config::HitKey,
}

struct Fetched {
    records: Vec<RawRecord>,
    tickets: Vec<Arc<Ticket>>,
}

struct Evaluated {
    fetched: Fetched,
    outcomes: Vec<Result<Evaluation, DecodeError>>,
}

/// Runs records from `source` through evaluation to the sinks until the input ends or
/// `shutdown` fires. Blocks the calling thread, which becomes the fetch thread.
#[allow(clippy::too_many_arguments)]
pub fn run_pipeline(
    mut source: Box<dyn Source>,
    mut hits: Box<dyn HitSink>,
    mut dead_letters: Box<dyn DeadLetterSink>,
    rules: RuleSetHandle,
    delivery: Arc<Delivery>,
    metrics: Arc<Metrics>,
    settings: PipelineSettings,
    shutdown: Shutdown,
) -> Result<RunSummary, WorkerError> {
    shutdown.set_grace(settings.shutdown_deadline);
    let (to_eval, eval_rx) = sync_channel::<Fetched>(1);
    let (to_emit, emit_rx) = sync_channel::<Evaluated>(1);
    let settings = Arc::new(settings);
    // The fetch thread waits for the evaluator to take a batch; the evaluator wakes it.
    let fetch_thread = std::thread::current();
    std::thread::scope(|scope| {
        let eval = {
            let (metrics, shutdown, settings) =
                (metrics.clone(), shutdown.clone(), settings.clone());
            std::thread::Builder::new()
                .name("foundry-evaluate".into())
                .spawn_scoped(scope, move || {
                    evaluate_stage(
                        eval_rx,
                        to_emit,
                        &fetch_thread,
                        &rules,
                        &metrics,
                        &settings,
                        &shutdown,
                    )
                })
                .expect("spawn evaluate thread")
        };
        let emit = {
            let (metrics, shutdown, settings, delivery) = (
                metrics.clone(),
                shutdown.clone(),
                settings.clone(),
                delivery.clone(),
            );
            std::thread::Builder::new()
                .name("foundry-emit".into())
                .spawn_scoped(scope, move || {
                    emit_stage(
                        emit_rx,
                        &mut *hits,
                        &mut *dead_letters,
                        &delivery,
                        &metrics,
                        &settings,
                        &shutdown,
                    )
                })
                .expect("spawn emit thread")
        };
        let fetched = fetch_stage(
            &mut *source,
            to_eval,
            &delivery,
            &metrics,
            &settings,
            &shutdown,
        );
        let evaluated = eval
            .join()
            .unwrap_or_else(|_| Err(WorkerError::Pipeline("evaluate thread panicked".into())));
        let emitted = emit
            .join()
            .unwrap_or_else(|_| Err(WorkerError::Pipeline("emit thread panicked".into())));
        let mut summary = fetched?;
        let (hits, letters) = emitted?;
        evaluated?;
        summary.hits = hits;
        summary.dead_letters = letters;
        if shutdown.aborted() {
            summary.unacknowledged = delivery.in_flight();
            return Ok(summary);
        }
        // Acks arrive on the producer's thread; give them the rest of the deadline (a run
        // whose input ended counts its deadline from now).
        shutdown.stop();
        let deadline = shutdown.deadline();
        while delivery.in_flight() > 0 && Instant::now() < deadline {
            source.hold(Duration::from_millis(50))?;
        }
        summary.unacknowledged = delivery.in_flight();
        if summary.unacknowledged > 0 {
            tracing::warn!(
                unacknowledged = summary.unacknowledged,
                "shutdown deadline passed; unacknowledged records will be read again by the next owner"
            );
        }
        if !source.commits_in_sink() {
            let offsets = delivery.take_commits(None);
            source.commit(&offsets, true)?;
        }
        source.close();
        Ok(summary)
    })
}

/// How often every owned partition's offset is committed again, changed or not.
const COMMIT_REFRESH: Duration = Duration::from_secs(5);

fn fetch_stage(
    source: &mut dyn Source,
    to_eval: SyncSender<Fetched>,
    delivery: &Arc<Delivery>,
    metrics: &Metrics,
    settings: &PipelineSettings,
    shutdown: &Shutdown,
) -> Result<RunSummary, WorkerError> {
    let mut summary = RunSummary::default();
    let mut last_commit = Instant::now();
    let mut last_refresh = Instant::now();
    let mut waiting: Option<(Fetched, Instant)> = None;
    // Pausing a Kafka input drops what it had prefetched, so the source is held only when the
    // pipeline is really full, and released only once a quarter of the room is free again.
    let mut held = false;
    let resume_below = delivery.limit() - delivery.limit() / 4;
    while !shutdown.stopping() {
        if let Some((batch, since)) = waiting.take() {
            match to_eval.try_send(batch) {
                Ok(()) => {}
                Err(TrySendError::Full(batch)) => {
                    // The evaluator is busy. Wait until it takes a batch (it unparks this
                    // thread), but keep the session alive (rebalances, poll interval) if the
                    // wait gets long, e.g. while the output is down.
                    if since.elapsed() < Duration::from_secs(1) {
                        std::thread::park_timeout(Duration::from_millis(100));
                    } else {
                        source.hold(Duration::from_millis(10))?;
                    }
                    waiting = Some((batch, since));
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        } else if delivery.in_flight() >= delivery.limit()
            || (held && delivery.in_flight() > resume_below)
        {
            held = true;
            source.hold(settings.batch_wait)?;
        } else {
            held = false;
            let room = delivery.limit() - delivery.in_flight();
            let started = Instant::now();
            match source.fetch(settings.batch_size.min(room), settings.batch_wait)? {
                None => break,
                Some(records) if records.is_empty() => {}
                Some(records) => {
                    metrics
                        .stage_seconds
                        .with_label_values(&["fetch"])
                        .observe(started.elapsed().as_secs_f64());
                    let tickets = records
                        .iter()
                        .map(|r| delivery.register_read(&r.key, r.offset, r.epoch))
                        .collect();
                    summary.events += records.len() as u64;
                    metrics.events_consumed.inc_by(records.len() as u64);
                    waiting = Some((Fetched { records, tickets }, Instant::now()));
                }
            }
        }
        if !source.commits_in_sink() && last_commit.elapsed() >= settings.commit_interval {
            if last_refresh.elapsed() >= COMMIT_REFRESH {
                delivery.offer_again();
                last_refresh = Instant::now();
            }
            let offsets = delivery.take_commits(None);
            if !offsets.is_empty() {
                source.commit(&offsets, false)?;
            }
            last_commit = Instant::now();
        }
    }
    if let Some((batch, _)) = waiting {
        if !shutdown.aborted() {
            // Already registered: it must be processed for its offsets to be committed.
            let _ = to_eval.send(batch);
        }
    }
    Ok(summary)
}

fn evaluate_stage(
    input: Receiver<Fetched>,
    output: SyncSender<Evaluated>,
    fetch_thread: &std::thread::Thread,
    rules: &RuleSetHandle,
    metrics: &Metrics,
    settings: &PipelineSettings,
    shutdown: &Shutdown,
) -> Result<(), WorkerError> {
    for fetched in input {
        // There is room for the next batch now.
        fetch_thread.unpark();
        if shutdown.aborted() {
            break;
        }
        let started = Instant::now();
        let set = rules.current();
        let outcomes: Vec<Result<Evaluation, DecodeError>> = fetched
            .records
            .par_iter()
            .map(|r| {
                set.evaluate_bytes(
                    &r.payload,
                    settings.max_event_bytes,
                    &r.origin(),
                    r.hint.as_deref(),
                )
            })
            .collect();
        metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.batch_size.observe(fetched.records.len() as f64);
        if output.send(Evaluated { fetched, outcomes }).is_err() {
            break;
        }
    }
    Ok(())
}

fn emit_stage(
    input: Receiver<Evaluated>,
    hits: &mut dyn HitSink,
    dead_letters: &mut dyn DeadLetterSink,
    delivery: &Delivery,
    metrics: &Metrics,
    settings: &PipelineSettings,
    shutdown: &Shutdown,
) -> Result<(u64, u64), WorkerError> {
    let (mut hit_count, mut letter_count) = (0u64, 0u64);
    loop {
        // Outputs the output refused are re-sent from here. While the input is paused at the
        // in-flight bound no batch arrives, so waiting for one must not be the only moment
        // they are retried, or a long outage would stall the worker for good.
        let batch = match input.recv_timeout(Duration::from_millis(200)) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => {
                if shutdown.aborted() {
                    break;
                }
                hits.pump()?;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if shutdown.aborted() {
            break;
        }
        let started = Instant::now();
        for ((record, ticket), outcome) in batch
            .fetched
            .records
            .iter()
            .zip(&batch.fetched.tickets)
            .zip(batch.outcomes)
        {
            match outcome {
                Ok(evaluation) => {
                    for problem in &evaluation.payload_problems {
                        metrics.payload_problem(record, problem);
                    }
                    ticket.expect(evaluation.hits.len());
                    for mut hit in evaluation.hits {
                        hit.worker = Some(settings.worker_id.clone());
                        let key = match settings.hit_key {
                            crate::config::HitKey::Input => record.record_key.as_deref(),
                            crate::config::HitKey::Rule => Some(hit.rule.id.as_bytes()),
                            crate::config::HitKey::None => None,
                        };
                        let key = key.map(<[u8]>::to_vec);
                        hits.send(&hit, key.as_deref(), ticket.clone())?;
                        metrics.hits_produced(std::slice::from_ref(&hit));
                        hit_count += 1;
                    }
                }
                Err(error) => {
                    ticket.expect(1);
                    metrics.dead_lettered(
                        error.reason,
                        &record.key.topic,
                        record.key.partition,
                        record.offset,
                        &error.detail,
                    );
                    let letter = DeadLetter {
                        record,
                        error: &error,
                        worker: &settings.worker_id,
                    };
                    dead_letters.send(&letter, ticket.clone())?;
                    letter_count += 1;
                }
            }
            ticket.done();
        }
        dead_letters.end_batch()?;
        hits.end_batch(&batch.fetched.records)?;
        metrics
            .stage_seconds
            .with_label_values(&["emit"])
            .observe(started.elapsed().as_secs_f64());
    }
    if !shutdown.aborted() {
        let deadline = shutdown
            .deadline()
            .min(Instant::now() + settings.shutdown_deadline);
        while delivery.in_flight() > 0 && Instant::now() < deadline && !shutdown.aborted() {
            hits.pump()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok((hit_count, letter_count))
}
