//! Storage: one [`Store`] over sqlx's `Any` driver, so the same SQL runs on SQLite and
//! PostgreSQL.
//!
//! The SQL is kept to what both accept: `$N` placeholders (sqlx's SQLite driver reads `$N`
//! as the N-th argument), TEXT and BIGINT columns only, booleans as 0/1, timestamps as
//! RFC 3339 UTC text, no `RETURNING`, no `SUM` (PostgreSQL would answer NUMERIC, which the
//! `Any` driver cannot decode); aggregates that need it are summed in Rust.
//!
//! SQLite allows one writer at a time and answers `SQLITE_BUSY` to a deferred transaction that
//! tries to upgrade to a write while another writer holds the lock. Rather than retry, the
//! store serialises its own write transactions behind an async mutex when the backend is
//! SQLite ([`Store::begin_write`]); readers never wait for it. On PostgreSQL the mutex is not
//! taken, and row-level locking does the work.

pub mod community;
pub mod feedback;
pub mod rules;
pub mod tenants;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::HubError;

/// Versioned migrations, embedded from `crates/hub/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The hub's database: a connection pool plus the SQLite write lock.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    write_lock: Option<Arc<Mutex<()>>>,
}

/// A write transaction; on SQLite it also holds the store's write lock until dropped.
pub struct WriteTx {
    /// The open transaction; commit it with `tx.commit()`.
    pub tx: Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits the transaction and releases the write lock.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Store {
    /// Connects to `db_url` (`sqlite://…` or `postgres://…`) and runs pending migrations.
    pub async fn open(db_url: &str, max_connections: u32) -> Result<Store, HubError> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(db_url)
            .map_err(|e| HubError::Config(format!("bad db_url '{db_url}': {e}")))?;
        let sqlite = db_url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers (pollers) run while a writer commits; the busy
                        // timeout covers the rare checkpoint contention.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        tracing::info!(
            backend = if sqlite { "sqlite" } else { "postgres" },
            "hub store opened"
        );
        let write_lock = sqlite.then(|| Arc::new(Mutex::new(())));
        Ok(Store { pool, write_lock })
    }

    /// The connection pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction (serialised on SQLite, see the module docs).
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The current time as stored: RFC 3339, UTC, microseconds, `Z`.
pub fn now_text() -> String {
    format_time(Utc::now())
}

/// Formats a timestamp the way the store keeps it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a stored or client-sent RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("'{s}' is not an RFC 3339 timestamp ({e}); use e.g. 2027-01-31T00:00:00Z")
        })
}

/// A new random id with the given prefix (`r_`, `c_`, `u_` …): 96 bits from the OS.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(12))
}

/// `n` random bytes from the OS, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

/// SHA-256 of `data`, hex-encoded.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}
