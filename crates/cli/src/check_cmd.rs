//! `foundry rules check`: parse and compile every rule file, report failures like a compiler.

use std::path::{Path, PathBuf};

use foundry_sigma::CompileOptions;
use serde_json::json;

/// Arguments of `foundry rules check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Rule files or folders: Sigma `.yml`/`.yaml`, YARA `.yar`/`.yara`.
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    /// Output: text (one line per failure) or json (the same, then one summary object).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for e in entries {
            if e.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            if e.is_dir() {
                collect(&e, out)?;
            } else if kind_of(&e).is_some() {
                out.push(e);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn kind_of(path: &Path) -> Option<&'static str> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yml" | "yaml") => Some("sigma"),
        Some("yar" | "yara") => Some("yara"),
        _ => None,
    }
}

pub fn run(args: CheckArgs) -> anyhow::Result<i32> {
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, &mut files).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    let options = CompileOptions::default();
    let (mut compiled, mut documents, mut correlations, mut aggregations, mut unsupported) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut failed = Vec::new();
    for file in &files {
        let path = file.display().to_string();
        let result: Result<(), (String, Option<String>)> = match kind_of(file).unwrap_or("sigma") {
            "yara" => match foundry_yara::check_file(file) {
                Ok(ok) => {
                    documents += ok.rules;
                    Ok(())
                }
                Err(e) => Err((e.to_string(), e.unsupported.as_ref().map(|s| s.to_string()))),
            },
            _ => match std::fs::read(file) {
                Err(e) => Err((format!("{path}: cannot read: {e}"), None)),
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    match foundry_sigma::parse_documents(&text) {
                        Err(e) => Err((e.render(&path), unsupported_reason(&e))),
                        Ok(docs) => {
                            let n = docs
                                .iter()
                                .filter(|d| matches!(d, foundry_sigma::Document::Correlation(_)))
                                .count();
                            correlations += n;
                            match foundry_sigma::check_text(&text, &options) {
                                Ok(checked) => {
                                    documents += checked.documents;
                                    for a in &checked.aggregations {
                                        aggregations += 1;
                                        eprintln!("{path}: note: sigma v1 aggregation in '{a}' parsed; not evaluated yet");
                                    }
                                    for d in &docs {
                                        if let foundry_sigma::Document::Correlation(c) = d {
                                            eprintln!("{path}: note: correlation '{}' ({}) parsed; not evaluated yet", c.meta.title, c.kind);
                                        }
                                    }
                                    Ok(())
                                }
                                Err(e) => Err((e.render(&path), unsupported_reason(&e))),
                            }
                        }
                    }
                }
            },
        };
        match result {
            Ok(()) => compiled += 1,
            Err((error, why)) => {
                if why.is_some() {
                    unsupported += 1;
                }
                if args.format == "text" {
                    println!("{error}");
                } else {
                    eprintln!("{error}");
                }
                let mut entry = json!({"path": path, "error": error});
                if let Some(w) = why {
                    entry["unsupported"] = json!(w);
                }
                failed.push(entry);
            }
        }
    }
    let total = files.len();
    if args.format == "json" {
        println!(
            "{}",
            json!({
                "total": total,
                "compiled": compiled,
                "failed": failed,
                "documents": documents,
                "correlations_not_evaluated": correlations,
                "aggregations_not_evaluated": aggregations,
                "failed_unsupported": unsupported,
            })
        );
    } else {
        println!(
            "{compiled} of {total} rule files compiled ({} failed, {unsupported} of them for unsupported features; {correlations} correlations and {aggregations} v1 aggregations parsed, not evaluated yet)",
            total - compiled
        );
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

fn unsupported_reason(e: &foundry_sigma::SigmaError) -> Option<String> {
    (e.code == foundry_sigma::ErrorCode::Unsupported).then(|| e.message.clone())
}
