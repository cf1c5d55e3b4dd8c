//! Hot-reload benchmark, one run, two figures:
//!
//! 1. Compile-and-swap time of the whole SigmaHQ corpus (every active rules folder with the
//!    Windows mapping) on one core: the reload path from reading the files to the swap,
//!    best and median of `RELOAD_ROUNDS` (default 5) reloads. Goal: under one second.
//! 2. Batch latency of the pipeline (fetch → evaluate → emit) over corpus events with the
//!    SigmaHQ Windows rules, p50/p99 in a steady phase and in a phase during which the rule
//!    set is recompiled and swapped back to back, and the ratio of the p99s. Goal: at most 2.
//!
//! `cargo bench -p foundry-benches --bench reload` (env `RELOAD_PHASE_SECS`, default 10).

// Configurations are written setting by setting, as a reader compares them with the TOML.
#![allow(clippy::field_reassign_with_default)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The allocator of the `foundry` binary, so the figures are what the product runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use foundry_engine::Hit;
use foundry_worker::delivery::{PartitionKey, Ticket};
use foundry_worker::pipeline::{HitSink, RawRecord, Source};
use foundry_worker::{ReloadOutcome, Trigger, Worker, WorkerConfig, WorkerError};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> PathBuf {
    repo().join("../shared/corpus")
}

/// A copy of `folders` under a temporary folder, so the benchmark can touch one file to
/// force each reload to be a new set.
fn staged(folders: &[&str]) -> (tempfile_dir::Dir, Vec<PathBuf>) {
    let dir = tempfile_dir::Dir::new();
    let mut roots = Vec::new();
    for f in folders {
        let to = dir.path.join(f);
        copy_tree(&corpus().join("sigma").join(f), &to);
        roots.push(to);
    }
    (dir, roots)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("staging folder");
    for e in std::fs::read_dir(from).expect("corpus folder").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy rule");
        }
    }
}

/// A tiny self-cleaning temporary folder (the benchmark crate has no tempfile dependency).
mod tempfile_dir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Dir {
            let path =
                std::env::temp_dir().join(format!("foundry-reload-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("temp folder");
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn config(rules: Vec<PathBuf>) -> WorkerConfig {
    let mut c = WorkerConfig::default();
    c.rules = rules;
    c.mapping = vec![
        repo().join("config/mappings/windows.toml"),
        repo().join("config/mappings/cloud-and-syslog.toml"),
    ];
    c.reload.watch = false;
    c.reload.debounce_ms = 0;
    c.reload.interval_secs = 3600;
    c.batch_size = 500;
    c.batch_wait_ms = 5;
    c.max_in_flight = 5000;
    c
}

/// The first rule file under `dir`: each reload appends a comment to it, so that every
/// reload is a new set whose rules are the same.
fn marker_rule(dir: &Path) -> (PathBuf, String) {
    let path = foundry_benches::files_with_extension(dir, "yml")
        .into_iter()
        .next()
        .expect("a rule file");
    let text = std::fs::read_to_string(&path).expect("rule text");
    (path, text)
}

fn touch(marker: &(PathBuf, String), round: usize) {
    std::fs::write(&marker.0, format!("{}\n# reload {round}\n", marker.1)).expect("marker");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn compile_and_swap() {
    let folders = [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-compliance",
        "rules-placeholder",
    ];
    let (_dir, roots) = staged(&folders);
    let marker = marker_rule(&roots[0]);
    let worker = Worker::new(config(roots)).expect("worker");
    let reloader = worker.reloader().expect("reloader");
    let rounds: usize = std::env::var("RELOAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut times = Vec::new();
    for round in 0..rounds {
        touch(&marker, round);
        let started = Instant::now();
        let outcome = reloader.reload(Trigger::Admin).expect("reload");
        times.push(started.elapsed());
        assert!(
            matches!(outcome, ReloadOutcome::Swapped { .. }),
            "{outcome:?}"
        );
    }
    times.sort();
    let set = worker.rules().current();
    println!(
        "compile-and-swap, whole SigmaHQ corpus ({} Sigma rules), {} rayon thread(s): best {:.0?}, median {:.0?} (goal < 1 s on one core)",
        set.sigma_rule_count(),
        rayon::current_num_threads(),
        times[0],
        percentile(&times, 0.5)
    );
}

/// Corpus events, handed out endlessly; each batch's fetch time is noted by its first offset.
struct Stream {
    pool: Vec<bytes::Bytes>,
    next: u64,
    stop: Arc<AtomicBool>,
    fetched_at: Arc<Mutex<Vec<(i64, Instant)>>>,
    key: PartitionKey,
}

impl Source for Stream {
    fn fetch(&mut self, max: usize, _: Duration) -> Result<Option<Vec<RawRecord>>, WorkerError> {
        if self.stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        let records: Vec<RawRecord> = (0..max as u64)
            .map(|i| {
                let payload = self.pool[(self.next + i) as usize % self.pool.len()].clone();
                RawRecord::new(self.key.clone(), (self.next + i) as i64, payload)
            })
            .collect();
        self.fetched_at
            .lock()
            .unwrap()
            .push((self.next as i64, Instant::now()));
        self.next += max as u64;
        Ok(Some(records))
    }
}

/// Notes when each batch (by its first offset) was fully emitted.
struct Done(Arc<Mutex<Vec<(i64, Instant)>>>, Arc<AtomicU64>);

impl HitSink for Done {
    fn send(&mut self, _: &Hit, _: Option<&[u8]>, ack: Arc<Ticket>) -> Result<(), WorkerError> {
        self.1.fetch_add(1, Ordering::Relaxed);
        ack.done();
        Ok(())
    }
    fn end_batch(&mut self, records: &[RawRecord]) -> Result<(), WorkerError> {
        if let Some(first) = records.first() {
            self.0.lock().unwrap().push((first.offset, Instant::now()));
        }
        Ok(())
    }
}

fn latency_during_reloads() {
    let phase = Duration::from_secs(
        std::env::var("RELOAD_PHASE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    let (_dir, roots) = staged(&["rules/windows"]);
    let marker = marker_rule(&roots[0]);
    let worker = Arc::new(Worker::new(config(roots)).expect("worker"));
    let reloader = worker.reloader().expect("reloader");
    let stop = Arc::new(AtomicBool::new(false));
    let fetched_at = Arc::new(Mutex::new(Vec::new()));
    let done_at = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicU64::new(0));
    let source = Stream {
        pool: foundry_benches::windows_lines(20_000)
            .into_iter()
            .map(Into::into)
            .collect(),
        next: 0,
        stop: stop.clone(),
        fetched_at: fetched_at.clone(),
        key: PartitionKey {
            topic: "bench".into(),
            partition: 0,
        },
    };
    let run = {
        let (worker, done_at, hits) = (worker.clone(), done_at.clone(), hits.clone());
        std::thread::spawn(move || {
            worker
                .run_with(
                    Box::new(source),
                    Box::new(Done(done_at, hits)),
                    Box::new(foundry_benches::Acknowledged),
                )
                .expect("pipeline")
        })
    };
    std::thread::sleep(Duration::from_secs(2)); // warm-up
    let steady_from = Instant::now();
    std::thread::sleep(phase);
    let reload_from = Instant::now();
    let mut reloads = 0;
    while reload_from.elapsed() < phase {
        touch(&marker, reloads);
        reloader.reload(Trigger::Admin).expect("reload");
        reloads += 1;
    }
    let reload_until = Instant::now();
    stop.store(true, Ordering::Release);
    let summary = run.join().expect("pipeline thread");

    let fetched: std::collections::HashMap<i64, Instant> =
        fetched_at.lock().unwrap().iter().copied().collect();
    let mut steady = Vec::new();
    let mut reloading = Vec::new();
    for (first, done) in done_at.lock().unwrap().iter() {
        let Some(start) = fetched.get(first) else {
            continue;
        };
        let latency = done.duration_since(*start);
        if *start >= steady_from && *start < reload_from {
            steady.push(latency);
        } else if *start >= reload_from && *start < reload_until {
            reloading.push(latency);
        }
    }
    steady.sort();
    reloading.sort();
    let (s99, r99) = (percentile(&steady, 0.99), percentile(&reloading, 0.99));
    println!(
        "batch latency, SigmaHQ Windows rules ({} Sigma rules), batches of 500, {} cores, {} events:",
        worker.rules().current().sigma_rule_count(),
        rayon::current_num_threads(),
        summary.events
    );
    println!(
        "  steady:         {} batches, p50 {:.1?}, p99 {:.1?}",
        steady.len(),
        percentile(&steady, 0.5),
        s99
    );
    println!(
        "  during reloads: {} batches, p50 {:.1?}, p99 {:.1?} ({reloads} reloads in {:.1?})",
        reloading.len(),
        percentile(&reloading, 0.5),
        r99,
        reload_until - reload_from
    );
    println!(
        "  p99 during reloads / steady p99: {:.2} (goal <= 2)",
        r99.as_secs_f64() / s99.as_secs_f64().max(1e-9)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    compile_and_swap();
    latency_during_reloads();
}
