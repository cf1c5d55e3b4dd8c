//! Which input offsets are safe to commit: the at-least-once bookkeeping.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every partition's track, by partition (a fast hash: looked up twice per record).
type Tracks = HashMap<PartitionKey, PartitionTrack, foldhash::fast::RandomState>;

/// A partition of an input: Kafka topic and partition, or a file name and partition 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// Topic (or file name).
    pub topic: Arc<str>,
    /// Partition (0 for files).
    pub partition: i32,
}

/// A commit to make: the next offset to read on a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    /// The partition.
    pub key: PartitionKey,
    /// Every record below this offset has all its outputs acknowledged.
    pub offset: i64,
}

#[derive(Debug, Default)]
struct PartitionTrack {
    /// Whether this worker owns the partition now; a revoked partition keeps its track (for
    /// the epoch) but registers and commits nothing.
    owned: bool,
    /// Bumped on every assignment, so tickets from an earlier ownership of the same partition
    /// cannot touch the current one.
    epoch: u64,
    /// Offsets read whose outputs are not all acknowledged yet.
    pending: BTreeSet<i64>,
    /// One past the highest offset read; -1 before the first record.
    next: i64,
    /// The last offset handed out for committing; -1 before the first.
    committed: i64,
}

impl PartitionTrack {
    fn safe(&self) -> Option<i64> {
        match self.pending.first() {
            Some(&low) => Some(low),
            None if self.next >= 0 => Some(self.next),
            None => None,
        }
    }
}

/// Delivery bookkeeping shared by the source, the pipeline and the sinks.
///
/// # Protocol
///
/// Every record read is *registered* under its partition and offset before it enters the
/// pipeline, and gets a [`Ticket`] holding one reference for the pipeline itself. When the
/// record has been evaluated, the emitter adds one reference per output (each hit, or its
/// dead letter), hands a clone of the ticket to the sink with each output, and then drops the
/// pipeline's reference. A sink calls [`Ticket::done`] when Kafka (or the file) has
/// acknowledged that output; a failed delivery is re-sent, never acknowledged. When the last
/// reference is done the record is *complete* and leaves its partition's pending set.
///
/// The offset that is safe to commit on a partition is the lowest pending offset (that
/// record, and any after it, will be read again after a crash), or one past the highest
/// offset read when nothing is pending. Because records are registered in the order they are
/// read, a record that completes early never lets the commit skip a slower one before it.
/// Commits are therefore monotone per ownership, never pass an unacknowledged output, and a
/// crash re-delivers at most the records in flight plus those completed since the last commit.
///
/// Ownership changes are explicit: [`Delivery::assign`] starts a fresh track with a new epoch
/// and [`Delivery::revoke`] drops it; a ticket of an older epoch still releases its in-flight
/// slot but no longer moves any commit.
///
/// The number of registered, incomplete records is the *in-flight* count. The source stops
/// taking records at [`Delivery::limit`], which bounds memory whatever the output does.
pub struct Delivery {
    tracks: Mutex<Tracks>,
    changed: Condvar,
    /// Threads waiting on `changed`, counted under the lock. A completion wakes the condition
    /// variable only when someone waits: a wake is a system call, and most records complete
    /// while nobody does.
    waiters: AtomicUsize,
    in_flight: AtomicUsize,
    limit: usize,
    gauge: prometheus::IntGauge,
}

impl Delivery {
    /// Bookkeeping that pauses the input at `limit` records in flight; `gauge` mirrors the count.
    pub fn new(limit: usize, gauge: prometheus::IntGauge) -> Arc<Delivery> {
        Arc::new(Delivery {
            tracks: Mutex::new(Tracks::default()),
            changed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            limit,
            gauge,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Tracks> {
        // A panic elsewhere must not stop acknowledgements from being counted.
        self.tracks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits on `changed` for at most `wait`, counted as a waiter meanwhile.
    fn wait_changed<'a>(
        &self,
        tracks: MutexGuard<'a, Tracks>,
        wait: Duration,
    ) -> MutexGuard<'a, Tracks> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let tracks = self
            .changed
            .wait_timeout(tracks, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        tracks
    }

    /// The in-flight bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Records registered and not yet complete.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Starts tracking partitions this worker now owns.
    pub fn assign(&self, keys: &[PartitionKey]) {
        let mut tracks = self.lock();
        for key in keys {
            let epoch = tracks.get(key).map_or(0, |t| t.epoch) + 1;
            tracks.insert(
                key.clone(),
                PartitionTrack {
                    owned: true,
                    epoch,
                    next: -1,
                    committed: -1,
                    ..Default::default()
                },
            );
        }
    }

    /// Stops tracking partitions this worker no longer owns.
    pub fn revoke(&self, keys: &[PartitionKey]) {
        let mut tracks = self.lock();
        for key in keys {
            // Keep the epoch so a later assignment still outranks tickets from this one.
            if let Some(t) = tracks.get_mut(key) {
                *t = PartitionTrack {
                    owned: false,
                    epoch: t.epoch,
                    next: -1,
                    committed: -1,
                    ..Default::default()
                };
            }
        }
        drop(tracks);
        self.changed.notify_all();
    }

    /// One line per partition: ownership, epoch, next offset, last offset handed out for
    /// committing, and pending count (diagnostics and tests).
    pub fn describe(&self) -> Vec<String> {
        let tracks = self.lock();
        let mut out: Vec<String> = tracks
            .iter()
            .map(|(k, t)| {
                format!(
                    "{}:{} owned={} epoch={} next={} committed={} pending={}",
                    k.topic,
                    k.partition,
                    t.owned,
                    t.epoch,
                    t.next,
                    t.committed,
                    t.pending.len()
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The current ownership epoch of `key`: 0 when this worker does not own it.
    pub fn epoch(&self, key: &PartitionKey) -> u64 {
        self.lock()
            .get(key)
            .filter(|t| t.owned)
            .map_or(0, |t| t.epoch)
    }

    /// Registers a record just read; the ticket holds the pipeline's reference.
    pub fn register(self: &Arc<Self>, key: &PartitionKey, offset: i64) -> Arc<Ticket> {
        self.register_read(key, offset, None)
    }

    /// Registers a record read during ownership epoch `read_in` (see [`Delivery::epoch`]). A
    /// record read in an earlier ownership of its partition (it waited in a buffer while the
    /// partition was revoked and assigned again) still runs, but counts toward no commit:
    /// the new ownership re-reads from the last commit, and that record's offset must not
    /// move the new ownership's commits past what it has itself read.
    pub fn register_read(
        self: &Arc<Self>,
        key: &PartitionKey,
        offset: i64,
        read_in: Option<u64>,
    ) -> Arc<Ticket> {
        let mut tracks = self.lock();
        // Inputs without assignments (files) own a partition from its first record on.
        let track = tracks.entry(key.clone()).or_insert_with(|| PartitionTrack {
            owned: true,
            epoch: 1,
            next: -1,
            committed: -1,
            ..Default::default()
        });
        // A record of a partition revoked after it was fetched still runs (its hits are a
        // duplicate at worst) but must not move that partition's commits: epoch 0 matches none.
        let current = read_in.is_none_or(|e| e == track.epoch);
        let epoch = if track.owned && current {
            track.pending.insert(offset);
            track.next = track.next.max(offset + 1);
            track.epoch
        } else {
            0
        };
        drop(tracks);
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.gauge.set(n as i64);
        Arc::new(Ticket {
            delivery: self.clone(),
            key: key.clone(),
            epoch,
            offset,
            remaining: AtomicUsize::new(1),
        })
    }

    fn complete(&self, key: &PartitionKey, epoch: u64, offset: i64) {
        let mut tracks = self.lock();
        if let Some(t) = tracks.get_mut(key).filter(|t| t.epoch == epoch) {
            t.pending.remove(&offset);
        }
        // Both under the lock, so a waiter that checked before this completion is counted.
        let n = self.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        let wake = self.waiters.load(Ordering::Relaxed) > 0;
        drop(tracks);
        self.gauge.set(n as i64);
        if wake {
            self.changed.notify_all();
        }
    }

    /// Offsets that moved since they were last handed out, marked as handed out. With
    /// `only` set, just those partitions.
    pub fn take_commits(&self, only: Option<&[PartitionKey]>) -> Vec<CommitOffset> {
        let mut tracks = self.lock();
        let mut out = Vec::new();
        for (key, t) in tracks.iter_mut() {
            if !t.owned || only.is_some_and(|keys| !keys.contains(key)) {
                continue;
            }
            if let Some(safe) = t.safe().filter(|&s| s > t.committed) {
                t.committed = safe;
                out.push(CommitOffset {
                    key: key.clone(),
                    offset: safe,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// A commit of `offset` on `key` failed (for example during a rebalance): forget that it
    /// was handed out, so the next [`Delivery::take_commits`] offers the partition's safe
    /// offset again. Without this, a failed last commit would never be retried.
    pub fn commit_failed(&self, key: &PartitionKey, offset: i64) {
        let mut tracks = self.lock();
        if let Some(t) = tracks.get_mut(key) {
            if t.owned && t.committed <= offset {
                t.committed = -1;
            }
        }
    }

    /// Offers every owned partition's safe offset again at the next
    /// [`Delivery::take_commits`], even where it was handed out already. Committing an offset
    /// twice is harmless; a commit that was lost without an error (during a rebalance the
    /// group may drop it) would otherwise never be repeated once the partition is idle.
    pub fn offer_again(&self) {
        for t in self.lock().values_mut() {
            if t.owned {
                t.committed = -1;
            }
        }
    }

    /// Waits until none of `keys` (every partition when `None`) has a pending record, or until
    /// `deadline`. Returns whether they drained.
    pub fn wait_drained(&self, keys: Option<&[PartitionKey]>, deadline: Instant) -> bool {
        let mut tracks = self.lock();
        loop {
            let busy = tracks
                .iter()
                .any(|(k, t)| !t.pending.is_empty() && keys.is_none_or(|keys| keys.contains(k)));
            if !busy {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            tracks = self.wait_changed(tracks, (deadline - now).min(Duration::from_millis(100)));
        }
    }
}

/// One record's outstanding outputs; see [`Delivery`] for the protocol.
pub struct Ticket {
    delivery: Arc<Delivery>,
    key: PartitionKey,
    epoch: u64,
    offset: i64,
    remaining: AtomicUsize,
}

impl Ticket {
    /// Expects `n` more acknowledgements.
    pub fn expect(&self, n: usize) {
        self.remaining.fetch_add(n, Ordering::AcqRel);
    }

    /// One output acknowledged (or the pipeline's own reference released).
    pub fn done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.delivery.complete(&self.key, self.epoch, self.offset);
        }
    }

    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ticket({}:{}@{})",
            self.key.topic, self.key.partition, self.offset
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic: "t".into(),
            partition: p,
        }
    }

    #[test]
    fn commit_never_passes_an_unacknowledged_record() {
        let d = Delivery::new(100, prometheus::IntGauge::new("g", "g").unwrap());
        d.assign(&[key(0)]);
        let a = d.register(&key(0), 10);
        let b = d.register(&key(0), 11);
        let c = d.register(&key(0), 12);
        b.expect(1);
        b.done(); // pipeline reference; one hit still out
        c.done(); // no outputs
        assert_eq!(
            d.take_commits(None),
            vec![CommitOffset {
                key: key(0),
                offset: 10
            }]
        );
        a.done();
        assert_eq!(
            d.take_commits(None),
            vec![CommitOffset {
                key: key(0),
                offset: 11
            }]
        );
        b.done(); // the hit's acknowledgement
        assert_eq!(
            d.take_commits(None),
            vec![CommitOffset {
                key: key(0),
                offset: 13
            }]
        );
        assert_eq!(d.take_commits(None), vec![]);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn tickets_of_an_earlier_ownership_do_not_move_commits() {
        let d = Delivery::new(100, prometheus::IntGauge::new("g", "g").unwrap());
        d.assign(&[key(1)]);
        let old = d.register(&key(1), 5);
        d.revoke(&[key(1)]);
        d.assign(&[key(1)]);
        let new = d.register(&key(1), 3);
        old.done();
        assert_eq!(
            d.take_commits(None),
            vec![CommitOffset {
                key: key(1),
                offset: 3
            }]
        );
        new.done();
        assert_eq!(
            d.take_commits(None),
            vec![CommitOffset {
                key: key(1),
                offset: 4
            }]
        );
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn a_record_read_before_a_reassignment_moves_no_commit() {
        let d = Delivery::new(100, prometheus::IntGauge::new("g", "g").unwrap());
        d.assign(&[key(0)]);
        let first = d.epoch(&key(0));
        // Read at offset 900 in the first ownership; the partition is revoked and assigned
        // again before that record is registered, and the new ownership re-reads from 100.
        d.revoke(&[key(0)]);
        d.assign(&[key(0)]);
        assert_ne!(d.epoch(&key(0)), first);
        d.register_read(&key(0), 900, Some(first)).done();
        let now = d.epoch(&key(0));
        d.register_read(&key(0), 100, Some(now)).done();
        assert_eq!(
            d.take_commits(None),
            vec![CommitOffset {
                key: key(0),
                offset: 101
            }],
            "the commit follows what this ownership read, not the stale 900"
        );
    }

    #[test]
    fn a_failed_commit_is_offered_again() {
        let d = Delivery::new(100, prometheus::IntGauge::new("g", "g").unwrap());
        d.assign(&[key(0)]);
        d.register(&key(0), 7).done();
        let first = d.take_commits(None);
        assert_eq!(
            first,
            vec![CommitOffset {
                key: key(0),
                offset: 8
            }]
        );
        assert_eq!(d.take_commits(None), vec![], "handed out once");
        d.commit_failed(&key(0), 8);
        assert_eq!(
            d.take_commits(None),
            first,
            "offered again after the failure"
        );
        // A failure of an older commit does not undo a newer one that was handed out.
        d.register(&key(0), 8).done();
        assert_eq!(
            d.take_commits(None),
            vec![CommitOffset {
                key: key(0),
                offset: 9
            }]
        );
        d.commit_failed(&key(0), 8);
        assert_eq!(d.take_commits(None), vec![]);
    }

    #[test]
    fn records_of_a_revoked_partition_commit_nothing() {
        let d = Delivery::new(100, prometheus::IntGauge::new("g", "g").unwrap());
        d.assign(&[key(2)]);
        d.revoke(&[key(2)]);
        let late = d.register(&key(2), 40);
        late.done();
        assert_eq!(d.take_commits(None), vec![]);
        assert_eq!(d.in_flight(), 0);
    }
}
