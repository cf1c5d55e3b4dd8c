//! Shared helpers for the benchmarks: locating the corpus and loading rules and events.

use std::path::{Path, PathBuf};

use foundry_engine::{Mapping, RuleSet, RuleSetBuilder};

/// `../shared/corpus` beside the repository.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

/// Every active SigmaHQ rule with the shipped mappings (Windows, then cloud and syslog).
pub fn sigmahq_rules() -> RuleSet {
    let root = corpus().join("sigma");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/mappings");
    let mut mapping = Mapping::from_file(&config.join("windows.toml")).expect("windows mapping");
    mapping
        .merge(Mapping::from_file(&config.join("cloud-and-syslog.toml")).expect("cloud mapping"));
    let mut b = RuleSetBuilder::new().mapping(mapping);
    for dir in [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-compliance",
        "rules-placeholder",
    ] {
        b.add_sigma_path(&root.join(dir)).expect("corpus rules");
    }
    b.build().expect("rule set").0
}

/// Every file under `dir` (recursively) with extension `ext`, in path order.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .expect("a benchmark input folder")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Up to `limit` raw JSON Lines records taken round-robin from every corpus JSONL file, so
/// the sample mixes Sysmon, Security, PowerShell, nested winlogbeat and cloud layouts.
pub fn corpus_lines(limit: usize) -> Vec<Vec<u8>> {
    let files = files_with_extension(&corpus().join("events/otrf"), "jsonl");
    let per_file: Vec<Vec<Vec<u8>>> = files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .expect("read")
                .split(|b| *b == b'\n')
                .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < limit {
        let before = out.len();
        for lines in &per_file {
            if let Some(l) = lines.get(i) {
                out.push(l.clone());
                if out.len() == limit {
                    break;
                }
            }
        }
        if out.len() == before {
            break;
        }
        i += 1;
    }
    out
}

/// `n` raw records from the OTRF Windows JSON Lines files, whole files in name order (so a
/// batch holds runs of one dataset, as a stream does), repeated when the files run out.
pub fn windows_lines(n: usize) -> Vec<Vec<u8>> {
    let files = files_with_extension(&corpus().join("events/otrf/windows"), "jsonl");
    let mut pool = Vec::new();
    for f in files {
        for line in std::fs::read(&f)
            .expect("event file")
            .split(|b| *b == b'\n')
        {
            if !line.iter().all(u8::is_ascii_whitespace) {
                pool.push(line.to_vec());
            }
        }
        if pool.len() >= n {
            break;
        }
    }
    pool.iter().cycle().take(n).cloned().collect()
}

/// CPU time this process has used so far (every thread, live or ended), from `getrusage`.
pub fn process_cpu() -> std::time::Duration {
    rusage_cpu(libc::RUSAGE_SELF)
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu() -> std::time::Duration {
    rusage_cpu(libc::RUSAGE_THREAD)
}

fn rusage_cpu(who: libc::c_int) -> std::time::Duration {
    // SAFETY: `getrusage` only writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut u);
        u
    };
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time used so far by this process's live threads, summed by thread name.
pub fn threads_cpu_by_name() -> std::collections::BTreeMap<String, std::time::Duration> {
    // SAFETY: `sysconf` has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `tid (comm) state …`: the name may hold spaces, so split at the last parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 3 of stat(5), utime 14 and stime 15.
        let used: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
            .sum();
        *by_name
            .entry(stat[open + 1..close].to_string())
            .or_insert(std::time::Duration::ZERO) +=
            std::time::Duration::from_secs_f64(used / ticks);
    }
    by_name
}

/// Hits and dead letters acknowledged as soon as they are sent, for benchmarks that measure
/// the pipeline without an output.
pub struct Acknowledged;

impl foundry_worker::HitSink for Acknowledged {
    fn send(
        &mut self,
        _: &foundry_engine::Hit,
        _: Option<&[u8]>,
        ack: std::sync::Arc<foundry_worker::Ticket>,
    ) -> Result<(), foundry_worker::WorkerError> {
        ack.done();
        Ok(())
    }
    fn end_batch(
        &mut self,
        _: &[foundry_worker::RawRecord],
    ) -> Result<(), foundry_worker::WorkerError> {
        Ok(())
    }
}

impl foundry_worker::DeadLetterSink for Acknowledged {
    fn send(
        &mut self,
        _: &foundry_worker::pipeline::DeadLetter<'_>,
        ack: std::sync::Arc<foundry_worker::Ticket>,
    ) -> Result<(), foundry_worker::WorkerError> {
        ack.done();
        Ok(())
    }
    fn end_batch(&mut self) -> Result<(), foundry_worker::WorkerError> {
        Ok(())
    }
}
