//! Hot reload: replacing the running rule set while the stream runs.
//!
//! # Protocol
//!
//! A [`Reloader`] owns the only path by which a rule set replaces the running one. Every
//! trigger — a file change seen by the watcher, SIGHUP, `POST /admin/reload`, a new bundle
//! from the hub, the timer — ends in [`Reloader::reload`], which runs on the caller's thread,
//! never on the pipeline's, one reload at a time:
//!
//! 1. *Gather*: read every configured rule file, mapping and the latest hub bundle into a
//!    builder. If its fingerprint equals that of the running set and no rule of the running
//!    set has expired, stop here: nothing to do (this keeps the timer cheap).
//! 2. *Settle*: wait the debounce time and read everything again; only when two consecutive
//!    reads agree is the snapshot compiled, and it is the snapshot that is compiled, not the
//!    files as they are later. A file still being written changes between the reads and is
//!    not loaded; a writer that pauses longer than the debounce can still leave a truncated
//!    file, which is why the build is strict (below) and why write-then-rename is the
//!    protocol to use. The Kubernetes ConfigMap swap (a `..data` symlink replaced in one
//!    rename) is such a rename.
//! 3. *Build strictly*: if any rule fails, the whole set is rejected, the old set keeps
//!    running, every failure is logged with file, line and reason, and the rejection is
//!    counted (`foundry_ruleset_reload_failures_total`) and shown by `/readyz`.
//! 4. *Swap*: [`RuleSetHandle::swap`] stores the new set atomically. The pipeline takes the
//!    current set once per batch, so a batch is evaluated by one set from start to end and
//!    every hit of an event names the version that was live when its batch started.
//!
//! Rules whose `valid_until` has passed are dropped by every build; the timer reloads as
//! soon as the running set holds a rule past its expiry, so an expired rule stops firing
//! within one timer interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::WorkerConfig;
use crate::http::Readiness;
use crate::hub::{Bundle, HubClient, Poll};
use crate::metrics::Metrics;
use crate::rules::{rule_set_builder, RuleSetHandle};
use crate::WorkerError;

/// Why a reload was attempted (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A watched rule file or folder changed.
    Files,
    /// SIGHUP.
    Signal,
    /// `POST /admin/reload`.
    Admin,
    /// The hub served a new bundle.
    Hub,
    /// The periodic timer (missed changes, expiry).
    Timer,
}

impl Trigger {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Files => "files",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
            Trigger::Hub => "hub",
            Trigger::Timer => "timer",
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// A new set runs.
    Swapped {
        /// The version replaced.
        from: String,
        /// The version now running.
        to: String,
    },
    /// The sources give the set that already runs.
    Unchanged {
        /// The running version.
        version: String,
    },
}

/// Compiles on a thread of its own at the lowest CPU priority (SCHED_IDLE on Linux), so that on
/// a busy machine the scheduler gives the cores to the pipeline's batches first and a reload
/// only uses what they leave: the stream's latency, not the reload's, is what must not move.
fn compile_in_background(
    builder: foundry_engine::RuleSetBuilder,
) -> Result<(foundry_engine::RuleSet, foundry_engine::LoadReport), foundry_engine::RuleSetError> {
    let worker = std::thread::Builder::new()
        .name("foundry-compile".into())
        .spawn(move || {
            lower_priority();
            builder.build()
        });
    match worker {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        // No thread to be had: the reload is rejected like any other failure.
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a compile thread");
            Err(foundry_engine::RuleSetError::Io {
                path: "<compile thread>".into(),
                source: e,
            })
        }
    }
}

/// How long a replaced rule set is waited for: a batch that took it holds it for as long as
/// its evaluation lasts.
const RETIRE_WAIT: Duration = Duration::from_secs(10);

/// Frees a replaced rule set on a low-priority thread of its own. Freeing thousands of
/// compiled rules takes tens of milliseconds; left to the last holder, that would be the
/// evaluate stage at the end of the batch that still used the old set, a latency spike in
/// the stream at every reload.
fn retire(replaced: Arc<foundry_engine::RuleSet>) {
    let spawned = std::thread::Builder::new()
        .name("foundry-retire".into())
        .spawn(move || {
            lower_priority();
            let deadline = Instant::now() + RETIRE_WAIT;
            while Arc::strong_count(&replaced) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(replaced);
        });
    if let Err(e) = spawned {
        // The set is then freed by whoever holds it last, as without this thread.
        tracing::debug!(error = %e, "cannot start a thread to free the replaced rule set");
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SCHED_IDLE: the thread runs only when no normal thread wants the core, which keeps it
    // out of the batches' way better than any nice value; nice 19 where that is refused.
    // SAFETY: sched_setscheduler with pid 0 and a valid param only changes this thread's
    // policy; gettid has no preconditions; setpriority on our own thread id only changes its
    // nice value. A failure (reported by the return value) leaves the thread as it was.
    let idle = unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param)
    };
    if idle == 0 {
        return;
    }
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19)
    };
    if result != 0 {
        tracing::debug!("cannot lower the compile thread's priority; it runs at normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Builds, checks and swaps rule sets for one worker; see the module docs.
pub struct Reloader {
    config: WorkerConfig,
    handle: RuleSetHandle,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    bundle: Mutex<Option<Bundle>>,
    /// Fingerprint of the sources the running set was built from; the lock also makes
    /// reloads one at a time.
    running: Mutex<String>,
    /// Fingerprint of the last snapshot that was rejected: the timer does not retry the same
    /// broken sources every interval (asking explicitly, by signal or admin call, does).
    rejected: Mutex<Option<String>>,
    pending: Mutex<Option<Trigger>>,
    wake: Condvar,
    stopped: AtomicBool,
}

impl Reloader {
    /// Builds the first rule set: leniently (rules that fail are logged and left out, as
    /// `foundry scan` does), since there is no older set to keep. With a hub configured,
    /// its bundle is fetched first.
    pub fn start(
        config: WorkerConfig,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Result<Arc<Reloader>, WorkerError> {
        let bundle = match &config.hub {
            Some(hub) => {
                let (bundle, _) = HubClient::new(hub)?.fetch()?;
                tracing::info!(
                    tenant = %bundle.tenant,
                    hub_version = %bundle.version,
                    rules = bundle.rules.len(),
                    "hub rule set fetched"
                );
                Some(bundle)
            }
            None => None,
        };
        let builder = rule_set_builder(&config, bundle.as_ref(), false)?;
        let fingerprint = builder.fingerprint();
        let (set, report) = builder
            .build()
            .map_err(|e| WorkerError::Rules(e.to_string()))?;
        for failure in &report.failed {
            tracing::warn!(path = %failure.path, error = %failure.error, "rule not loaded");
        }
        let handle = RuleSetHandle::new(set, metrics.clone());
        readiness.set_ruleset(true);
        Ok(Arc::new(Reloader {
            config,
            handle,
            metrics,
            readiness,
            bundle: Mutex::new(bundle),
            running: Mutex::new(fingerprint),
            rejected: Mutex::new(None),
            pending: Mutex::new(None),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
        }))
    }

    /// The running rule set's handle (what the pipeline reads).
    pub fn handle(&self) -> &RuleSetHandle {
        &self.handle
    }

    /// Asks the reload thread to reload soon (file changes are debounced first).
    pub fn trigger(&self, trigger: Trigger) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // A file change wins over other triggers: it must be debounced.
        if *pending != Some(Trigger::Files) {
            *pending = Some(trigger);
        }
        self.wake.notify_all();
    }

    /// Replaces the hub bundle the next build uses (tests and the poller).
    pub fn set_bundle(&self, bundle: Bundle) {
        *self.bundle.lock().unwrap_or_else(|e| e.into_inner()) = Some(bundle);
    }

    /// Reloads now, on this thread; see the module docs for the steps.
    pub fn reload(&self, trigger: Trigger) -> Result<ReloadOutcome, WorkerError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let current = self.handle.current();
        let expiry_due = current
            .next_expiry()
            .is_some_and(|t| t <= chrono::Utc::now());
        let rejected = self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut tried = None;
        let outcome = self
            .gather_settled(&running, expiry_due)
            .and_then(|gathered| {
                let Some(builder) = gathered else {
                    return Ok(None);
                };
                let fingerprint = builder.fingerprint();
                if trigger == Trigger::Timer && rejected.as_deref() == Some(fingerprint.as_str()) {
                    return Ok(None); // already rejected, already counted and shown
                }
                tried = Some(fingerprint.clone());
                let (set, report) = compile_in_background(builder).map_err(|e| {
                    if let foundry_engine::RuleSetError::Rejected { report } = &e {
                        for failure in &report.failed {
                            tracing::error!(
                                path = %failure.path,
                                error = %failure.error,
                                "rule failed; reload rejected"
                            );
                        }
                    }
                    WorkerError::Rules(e.to_string())
                })?;
                Ok(Some((set, report, fingerprint)))
            });
        match outcome {
            Ok(None) => Ok(ReloadOutcome::Unchanged {
                version: current.version().to_string(),
            }),
            Ok(Some((set, report, fingerprint))) => {
                *running = fingerprint;
                *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = None;
                self.readiness.set_reload_error(None);
                if set.version() == current.version() {
                    return Ok(ReloadOutcome::Unchanged {
                        version: current.version().to_string(),
                    });
                }
                let from = current.version().to_string();
                let to = set.version().to_string();
                let ids = set.rule_ids();
                let replaced = self.handle.swap(set);
                drop(current);
                retire(replaced);
                self.metrics.reloaded(
                    trigger.as_str(),
                    &from,
                    &to,
                    &ids,
                    report.expired.len(),
                    started.elapsed(),
                );
                Ok(ReloadOutcome::Swapped { from, to })
            }
            Err(e) => {
                if tried.is_some() {
                    *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = tried;
                }
                self.metrics
                    .reload_failed(trigger.as_str(), current.version(), &e);
                self.readiness.set_reload_error(Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Steps 1 and 2: `None` when the sources are those of the running set.
    fn gather_settled(
        &self,
        running: &str,
        expiry_due: bool,
    ) -> Result<Option<foundry_engine::RuleSetBuilder>, WorkerError> {
        let bundle = self
            .bundle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut builder = rule_set_builder(&self.config, bundle.as_ref(), true)?;
        if builder.fingerprint() == running && !expiry_due {
            return Ok(None);
        }
        let local = !(self.config.rules.is_empty()
            && self.config.yara.is_empty()
            && self.config.mapping.is_empty());
        if !local {
            return Ok(Some(builder)); // a bundle is one immutable document
        }
        let settle = Duration::from_millis(self.config.reload.debounce_ms);
        for _ in 0..5 {
            std::thread::sleep(settle);
            let again = rule_set_builder(&self.config, bundle.as_ref(), true)?;
            if again.fingerprint() == builder.fingerprint() {
                return Ok(Some(again));
            }
            builder = again;
        }
        Err(WorkerError::Rules(format!(
            "rule files kept changing for {} ms; not loaded",
            5 * settle.as_millis()
        )))
    }

    /// Starts the reload thread, the file watcher and the hub poller. They run until
    /// [`Reloader::stop`].
    pub fn spawn(self: &Arc<Self>) -> Result<(), WorkerError> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("foundry-reload".into())
            .spawn(move || me.reload_loop())
            .map_err(|e| WorkerError::Pipeline(format!("reload thread: {e}")))?;
        if self.config.reload.watch {
            crate::watch::spawn(self.clone(), &self.config)?;
        }
        if let Some(hub) = &self.config.hub {
            let client = HubClient::new(hub)?;
            let me = self.clone();
            std::thread::Builder::new()
                .name("foundry-hub-poll".into())
                .spawn(move || me.poll_loop(client))
                .map_err(|e| WorkerError::Pipeline(format!("hub poll thread: {e}")))?;
        }
        Ok(())
    }

    /// Stops the threads [`Reloader::spawn`] started (a poll in progress ends on its own).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_all();
    }

    /// Whether [`Reloader::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn reload_loop(&self) {
        let interval = Duration::from_secs(self.config.reload.interval_secs);
        let debounce = Duration::from_millis(self.config.reload.debounce_ms);
        let mut next_timer = Instant::now() + interval;
        while !self.stopped() {
            let trigger = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if self.stopped() {
                        return;
                    }
                    if let Some(t) = pending.take() {
                        break t;
                    }
                    let now = Instant::now();
                    if now >= next_timer {
                        break Trigger::Timer;
                    }
                    pending = self
                        .wake
                        .wait_timeout(pending, next_timer - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            if trigger == Trigger::Files {
                self.debounce(debounce);
            }
            if trigger == Trigger::Timer {
                next_timer = Instant::now() + interval;
            }
            // Failures are logged, counted and shown by the reload itself.
            if let Ok(outcome) = self.reload(trigger) {
                tracing::debug!(trigger = trigger.as_str(), ?outcome, "reload done");
            }
        }
    }

    /// Waits until no file change has been reported for `quiet`.
    fn debounce(&self, quiet: Duration) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let (guard, timeout) = self
                .wake
                .wait_timeout(pending, quiet)
                .unwrap_or_else(|e| e.into_inner());
            pending = guard;
            if timeout.timed_out() || self.stopped() {
                break;
            }
            if *pending == Some(Trigger::Files) {
                *pending = None; // folded into this reload
            }
        }
    }

    fn poll_loop(&self, client: HubClient) {
        let retry = Duration::from_secs(self.config.hub.as_ref().map_or(5, |h| h.retry_secs));
        let mut etag = self
            .bundle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|b| format!("\"{}\"", b.version));
        while !self.stopped() {
            match client.poll(etag.as_deref()) {
                Ok(Poll::NotModified) => {}
                Ok(Poll::Changed(bundle, new_etag)) => {
                    tracing::info!(
                        hub_version = %bundle.version,
                        rules = bundle.rules.len(),
                        "hub rule set changed"
                    );
                    etag = new_etag.or_else(|| Some(format!("\"{}\"", bundle.version)));
                    self.set_bundle(*bundle);
                    self.trigger(Trigger::Hub);
                }
                Err(e) => {
                    self.metrics.hub_poll_failed(&e);
                    std::thread::sleep(retry);
                }
            }
        }
    }
}
