//! Events per second on one core through the Sigma engine with the full SigmaHQ rule set,
//! JSON parsing included (raw record in, hits out, as the worker runs it), with indexing
//! (logsource routing + literal prefilter) on and off. Both run in the same process on the
//! same events, so their ratio is what indexing buys. A third run takes only the corpus
//! events of 512 to 1,535 bytes (about 1 KB, the size the throughput goal names).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foundry_benches::{corpus_lines, sigmahq_rules};
use foundry_engine::EventOrigin;

/// The allocator of the `foundry` binary, so the figures are what the product runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let lines = corpus_lines(2000);
    let about_1kb: Vec<Vec<u8>> = corpus_lines(usize::MAX)
        .into_iter()
        .filter(|l| (512..1536).contains(&l.len()))
        .take(2000)
        .collect();
    for (name, sample) in [("mixed", &lines), ("about 1 KB", &about_1kb)] {
        let bytes: usize = sample.iter().map(Vec::len).sum();
        eprintln!(
            "{name}: {} events, {:.0} bytes on average",
            sample.len(),
            bytes as f64 / sample.len() as f64
        );
    }
    let mut set = sigmahq_rules();
    eprintln!("{} Sigma rules", set.sigma_rule_count());
    let origin = EventOrigin::default();
    let mut group = c.benchmark_group("sigmahq_full_ruleset");
    group.sample_size(10);
    let runs: [(&str, bool, &Vec<Vec<u8>>); 3] = [
        ("indexed", true, &lines),
        ("every_rule_on_every_event", false, &lines),
        ("indexed_events_of_about_1kb", true, &about_1kb),
    ];
    for (name, indexing, sample) in runs {
        set.set_indexing(indexing);
        group.throughput(Throughput::Elements(sample.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut hits = 0usize;
                for line in sample.iter() {
                    if let Ok(evaluation) = set.evaluate_bytes(line, 1 << 24, &origin, None) {
                        hits += evaluation.hits.len();
                    }
                }
                hits
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
