//! Events per second on one core through the Sigma engine with the full SigmaHQ rule set,
//! JSON parsing included, with indexing (logsource routing + literal prefilter) on and off.
//! Both run in the same process on the same events, so their ratio is what indexing buys.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foundry_benches::{corpus_lines, sigmahq_rules};
use foundry_engine::{decode_event, EventOrigin};

/// The allocator of the `foundry` binary, so the figures are what the product runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let lines = corpus_lines(2000);
    let bytes: usize = lines.iter().map(Vec::len).sum();
    eprintln!(
        "{} events, {:.0} bytes on average",
        lines.len(),
        bytes as f64 / lines.len() as f64
    );
    let mut set = sigmahq_rules();
    eprintln!("{} Sigma rules", set.sigma_rule_count());
    let origin = EventOrigin::default();
    let mut group = c.benchmark_group("sigmahq_full_ruleset");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(10);
    for (name, indexing) in [("indexed", true), ("every_rule_on_every_event", false)] {
        set.set_indexing(indexing);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut hits = 0usize;
                for line in &lines {
                    if let Ok(event) = decode_event(line, 1 << 24) {
                        hits += set.evaluate(&event, &origin, None).hits.len();
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
