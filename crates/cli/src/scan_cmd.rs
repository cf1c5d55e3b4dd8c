//! `foundry scan`: the engine over files, offline.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use foundry_engine::input::{read_inputs, EventInput};
use foundry_engine::{EventOrigin, Mapping, RuleSetBuilder, YaraConfig};
use foundry_yara::{PayloadSpec, ScanLimits};

/// Arguments of `foundry scan`.
#[derive(clap::Args)]
pub struct ScanArgs {
    /// Sigma rule file or folder (repeatable). Default: rules/sigma when no --rules or --yara.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// YARA-X rule file or folder (repeatable). Default: rules/yara when no --rules or --yara.
    #[arg(long = "yara", value_name = "PATH")]
    yara: Vec<PathBuf>,
    /// Field and logsource mapping (TOML, repeatable; merged in order).
    #[arg(long = "mapping", value_name = "FILE")]
    mapping: Vec<PathBuf>,
    /// Event field holding a payload for YARA-X: FIELD[:base64|text|sha256ref] (repeatable).
    #[arg(long = "payload-field", value_name = "FIELD[:ENC]")]
    payload_field: Vec<String>,
    /// Folder of payload blobs named by SHA-256, for sha256ref payload fields.
    #[arg(long = "blob-dir", value_name = "DIR")]
    blob_dir: Option<PathBuf>,
    /// Seconds one YARA-X scan may take.
    #[arg(long = "yara-timeout", value_name = "SECONDS", default_value_t = 5)]
    yara_timeout: u64,
    /// Largest payload scanned, in bytes.
    #[arg(long = "max-payload-bytes", value_name = "BYTES", default_value_t = 32 << 20)]
    max_payload_bytes: usize,
    /// Evaluate every rule on every event (no logsource routing, no literal prefilter).
    #[arg(long = "no-index")]
    no_index: bool,
    /// Events per parallel batch.
    #[arg(long = "batch", default_value_t = 1024)]
    batch: usize,
    /// Inputs: .jsonl, .json, .evtx files, folders (their event files, recursively), or - for
    /// standard input.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<String>,
}

pub fn run(args: ScanArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let mut mapping = Mapping::default();
    for m in &args.mapping {
        mapping.merge(Mapping::from_file(m)?);
    }
    let mut specs = Vec::new();
    for f in &args.payload_field {
        let spec: PayloadSpec = f
            .parse()
            .map_err(|e| anyhow::anyhow!("--payload-field: {e}"))?;
        specs.push(match &args.blob_dir {
            Some(d) => spec.with_blob_dir(d),
            None => spec,
        });
    }
    let limits = ScanLimits {
        timeout: std::time::Duration::from_secs(args.yara_timeout.max(1)),
        max_payload_bytes: args.max_payload_bytes,
        ..ScanLimits::default()
    };
    let mut builder = RuleSetBuilder::new()
        .mapping(mapping)
        .yara_config(YaraConfig {
            payload_fields: specs,
            limits,
        });
    let (rules, yara) = if args.rules.is_empty() && args.yara.is_empty() {
        (
            vec![PathBuf::from("rules/sigma")],
            vec![PathBuf::from("rules/yara")],
        )
    } else {
        (args.rules.clone(), args.yara.clone())
    };
    for p in &rules {
        builder
            .add_sigma_path(p)
            .with_context(|| format!("reading rules from {}", p.display()))?;
    }
    for p in &yara {
        builder
            .add_yara_path(p)
            .with_context(|| format!("reading yara rules from {}", p.display()))?;
    }
    let (mut set, report) = builder.build()?;
    if args.no_index {
        set.set_indexing(false);
    }
    let mut problems = 0usize;
    for f in &report.failed {
        eprintln!("{}", f.error);
        problems += 1;
    }
    for w in &report.warnings {
        eprintln!("{w}");
    }
    for c in report
        .correlations_not_evaluated
        .iter()
        .chain(&report.aggregations_not_evaluated)
    {
        eprintln!("{c}");
    }
    let compiled_at = started.elapsed();

    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let (mut events, mut hits, mut bad) = (0u64, 0u64, 0u64);
    let scan_started = Instant::now();
    let mut inputs: Vec<String> = Vec::with_capacity(args.inputs.len());
    for input in &args.inputs {
        if input != "-" && std::path::Path::new(input).is_dir() {
            match foundry_engine::input::event_files(std::path::Path::new(input)) {
                Ok(files) if files.is_empty() => {
                    eprintln!(
                        "{input}: the folder holds no event files (.{})",
                        foundry_engine::input::EVENT_FILE_EXTENSIONS.join(", .")
                    );
                    problems += 1;
                }
                Ok(files) => inputs.extend(files.iter().map(|f| f.display().to_string())),
                Err(e) => {
                    eprintln!("{input}: cannot read the folder: {e}");
                    problems += 1;
                }
            }
        } else {
            inputs.push(input.clone());
        }
    }
    for input in &inputs {
        let records = match read_inputs(input) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{input}: cannot read: {e}");
                problems += 1;
                continue;
            }
        };
        let mut batch = Vec::with_capacity(args.batch);
        let mut flush = |batch: &mut Vec<(EventInput, EventOrigin)>,
                         lines: &mut Vec<u64>,
                         out: &mut BufWriter<std::io::StdoutLock<'_>>|
         -> anyhow::Result<u64> {
            let evaluations = set.evaluate_inputs(batch, None);
            let mut undecodable = 0;
            for ((evaluation, (_, origin)), line) in
                evaluations.iter().zip(batch.iter()).zip(lines.iter())
            {
                let evaluation = match evaluation {
                    Ok(evaluation) => {
                        events += 1;
                        evaluation
                    }
                    Err(e) => {
                        undecodable += 1;
                        report_bad(input, *line, origin.offset, e);
                        continue;
                    }
                };
                // The event is kept and its other hits count; the payload is named with the
                // event it came from.
                for p in &evaluation.payload_problems {
                    eprintln!(
                        "{input}: event {}: payload {} not scanned: {} ({})",
                        origin.offset, p.field, p.reason, p.detail
                    );
                }
                for hit in &evaluation.hits {
                    serde_json::to_writer(&mut *out, hit)?;
                    out.write_all(b"\n")?;
                    hits += 1;
                }
            }
            batch.clear();
            lines.clear();
            Ok(undecodable)
        };
        let mut lines = Vec::with_capacity(args.batch);
        for record in records {
            match record.event {
                Ok(event) => {
                    let origin = EventOrigin {
                        source: input.clone(),
                        offset: record.offset,
                        ..EventOrigin::default()
                    };
                    batch.push((event, origin));
                    lines.push(record.line);
                    if batch.len() >= args.batch {
                        bad += flush(&mut batch, &mut lines, &mut out)?;
                    }
                }
                Err(e) => {
                    bad += 1;
                    report_bad(input, record.line, record.offset, &e);
                }
            }
        }
        bad += flush(&mut batch, &mut lines, &mut out)?;
    }
    out.flush()?;
    let secs = scan_started.elapsed().as_secs_f64();
    eprintln!(
        "foundry scan: {events} events, {hits} hits, {bad} bad records from {} input(s); \
         {} sigma + {} yara rules ({} files failed) compiled in {:.2}s; scanned in {:.2}s ({:.0} events/s); rule set {}",
        inputs.len(),
        report.sigma_rules,
        report.yara_rules,
        report.failed.len(),
        compiled_at.as_secs_f64(),
        secs,
        events as f64 / secs.max(1e-9),
        set.version()
    );
    Ok(if problems > 0 || bad > 0 { 2 } else { 0 })
}

/// Names a record that could not be used by file and line (or record number, for EVTX).
fn report_bad(input: &str, line: u64, offset: u64, e: &foundry_engine::DecodeError) {
    if line > 0 {
        eprintln!("{input}:{line}: bad event: {e}");
    } else {
        eprintln!("{input}: record {offset}: bad event: {e}");
    }
}
