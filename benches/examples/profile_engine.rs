//! Loops the engine over the corpus lines so a profiler (`perf record`) sees only the
//! per-event path: decode, record, routing, prefilter, rule evaluation.
//! Run: cargo run --release -p foundry-benches --example profile_engine -- [passes] [min max
//! [limit]] (`min max`: only records of that many bytes, e.g. `512 1536` for about 1 KB;
//! `limit`: only the first that many, e.g. `2000` for the criterion bench's sample.)

use std::time::Instant;

use foundry_benches::{corpus_lines, sigmahq_rules};
use foundry_engine::EventOrigin;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let passes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let size = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (min, max, limit) = (size(2, 0), size(3, usize::MAX), size(4, usize::MAX));
    let lines: Vec<Vec<u8>> = corpus_lines(usize::MAX)
        .into_iter()
        .filter(|l| (min..max).contains(&l.len()))
        .take(limit)
        .collect();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let set = sigmahq_rules();
    let origin = EventOrigin::default();
    let start = Instant::now();
    let cpu = foundry_benches::process_cpu();
    let mut hits = 0usize;
    for _ in 0..passes {
        for line in &lines {
            if let Ok(evaluation) = set.evaluate_bytes(line, 1 << 24, &origin, None) {
                hits += evaluation.hits.len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = (foundry_benches::process_cpu() - cpu).as_secs_f64();
    let events = (lines.len() * passes) as f64;
    eprintln!(
        "{} events of {:.0} bytes, {passes} passes: {:.0} events/s, {:.2} us CPU per event, {} hits per pass",
        lines.len(),
        bytes as f64 / lines.len() as f64,
        events / secs,
        cpu * 1e6 / events,
        hits / passes
    );
}
