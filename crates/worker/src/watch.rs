//! Watching rule files and folders for changes (the `notify` crate: inotify on Linux).
//!
//! Each configured folder is watched recursively, and the folder *holding* each configured
//! path is watched too (not recursively): replacing a file by rename, or swapping a symlinked
//! folder the way Kubernetes updates a mounted ConfigMap (`..data` re-pointed in one rename),
//! shows up there even when the watched inode itself is gone. Events only wake the reloader;
//! what is loaded is decided by its settle-and-compare step, never by the event.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::config::WorkerConfig;
use crate::reload::{Reloader, Trigger};
use crate::WorkerError;

/// Starts watching every rule, YARA and mapping path of `config`. The watcher lives as long
/// as the reloader runs.
pub fn spawn(reloader: Arc<Reloader>, config: &WorkerConfig) -> Result<(), WorkerError> {
    let paths: Vec<PathBuf> = config
        .rules
        .iter()
        .chain(&config.yara)
        .chain(&config.mapping)
        .cloned()
        .collect();
    if paths.is_empty() {
        return Ok(());
    }
    let target = reloader.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            Ok(_) => target.trigger(Trigger::Files),
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error; the reload timer still runs");
                target.trigger(Trigger::Files);
            }
        })
        .map_err(|e| WorkerError::Rules(format!("cannot watch rule files: {e}")))?;
    for path in &paths {
        watch_one(&mut watcher, path);
    }
    std::thread::Builder::new()
        .name("foundry-watch".into())
        .spawn(move || {
            // Keeps the watcher alive until the reloader stops.
            while !reloader.stopped() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            drop(watcher);
        })
        .map_err(|e| WorkerError::Pipeline(format!("watch thread: {e}")))?;
    Ok(())
}

fn watch_one(watcher: &mut impl Watcher, path: &Path) {
    if path.is_dir() {
        if let Err(e) = watcher.watch(path, RecursiveMode::Recursive) {
            tracing::warn!(path = %path.display(), error = %e, "cannot watch folder");
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Err(e) = watcher.watch(&parent, RecursiveMode::NonRecursive) {
        tracing::warn!(path = %parent.display(), error = %e, "cannot watch folder");
    }
}
