//! The archiver of a node: for every statement whose matcher runs here, it moves the
//! history from the statement's event log to PostgreSQL and then bounds what Redis
//! keeps of it.
//!
//! Each round (every `--archive-interval-ms`), per statement, under the matcher's
//! fencing token:
//! 1. read the oldest entries of the log (16 at a time: one matcher batch each);
//! 2. write them to PostgreSQL in one transaction that also moves the statement's
//!    cursor there and refuses a newer owner's statement ([`Archive::apply`]); events at
//!    or below the cursor are skipped, so a replay after a crash or a takeover writes
//!    nothing twice. A statement PostgreSQL has never seen (or whose log lost events to
//!    its cap) is copied whole from Redis first;
//! 3. only then mark the closed records those events told of, and trim the log through
//!    the last event read (`store::events`, fenced);
//! 4. remove closed records whose retention has passed (and the locators of those made
//!    before key blocks).
//!
//! Nothing leaves Redis before PostgreSQL committed it: a kill -9 of the node between
//! 2 and 3 leaves the events in the log, and the next owner skips them in PostgreSQL
//! but still marks and trims them.
//!
//! Wallets are no statement's: every node's archiver also moves wallet ledgers to
//! PostgreSQL (`wallet_ledger`). A wallet script that may write a ledger entry is
//! preceded by two marks (`Store::wallet_call`): when its wallet's first unarchived
//! entry may have been written (kept while there) and its last write. Each round takes
//! the wallets marked at least [`LEDGER_SETTLE_MS`] ago, oldest first; per wallet it
//! reads the ledger, inserts it (idempotently: nodes may overlap), trims what it
//! inserted, and settles the marks: forgotten when the last write was marked
//! [`LEDGER_GRACE_MS`] before the read (its script has run, so its entry was read),
//! otherwise looked at again a settle time later. A wallet busy without pause is still
//! archived every settle time. A script that runs longer than the grace after its mark
//! leaves its entry in Redis until the wallet's next movement (never lost: the sum of
//! both holds).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use super::router::Router;
use crate::archive::{Applied, Archive, ArchiveError, Batch};
use crate::domain::{Key, Millis, Status};
use crate::store::{Event, EventKind, ProofRecord, Store, StoreError};

/// Log entries read and written at a time (an entry holds one matcher batch's events,
/// at most 1000), so one transaction writes at most 16,000 events.
const BATCH: usize = 16;
/// Batches per statement per round (a busy statement yields to the others).
const BATCHES_PER_ROUND: usize = 16;
/// Closed records removed per script call, and calls per statement per round.
const SWEEP: usize = 1000;
const SWEEPS_PER_ROUND: usize = 8;
/// Statements archived at once.
const IN_FLIGHT: usize = 4;
/// A wallet's ledger is archived once its oldest mark is this old (ms).
const LEDGER_SETTLE_MS: u64 = 1_000;
/// A wallet script runs within this long of its mark (ms).
const LEDGER_GRACE_MS: u64 = 10_000;
/// Wallets archived per round, and ledger entries per wallet per round.
const LEDGER_WALLETS: usize = 256;
const LEDGER_ENTRIES: usize = 1000;

/// The archiver's state on this node.
pub struct Archiver {
    store: Store,
    archive: Arc<Archive>,
    router: Arc<Router>,
    /// Statements whose cursor row exists in PostgreSQL (seen by this process).
    known: Mutex<HashSet<Key>>,
    /// Statements whose last round failed (their next failures are logged at debug).
    failing: Mutex<HashSet<Key>>,
    /// Whether the last round of wallet ledgers failed.
    ledgers_failing: AtomicBool,
}

/// How far behind a statement's archive is after a round.
#[derive(Debug, Default, Clone, Copy)]
struct Behind {
    pending: u64,
    oldest: Option<Millis>,
}

impl Archiver {
    /// Starts archiving this node's statements on the current runtime, with a Redis
    /// connection of its own.
    pub async fn spawn(
        store: &Store,
        archive: Arc<Archive>,
        router: Arc<Router>,
    ) -> Result<(), StoreError> {
        let me = Arc::new(Archiver {
            store: store.reconnect().await?,
            archive,
            router,
            known: Mutex::default(),
            failing: Mutex::default(),
            ledgers_failing: AtomicBool::new(false),
        });
        tokio::spawn(me.run());
        Ok(())
    }

    async fn run(self: Arc<Self>) {
        let period = self.archive.config().interval;
        loop {
            if self.router.is_leaving() {
                return;
            }
            let started = Instant::now();
            self.round().await;
            match self.ledgers().await {
                Ok(()) => {
                    if self.ledgers_failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("archiving wallet ledgers works again");
                    }
                }
                Err(e) => {
                    self.archive.stats().errors.fetch_add(1, Ordering::Relaxed);
                    if self.ledgers_failing.swap(true, Ordering::Relaxed) {
                        tracing::debug!(error = %e, "archiving wallet ledgers failed again");
                    } else {
                        tracing::warn!(error = %e, "archiving wallet ledgers failed; retrying every round (Redis keeps them meanwhile)");
                    }
                }
            }
            tokio::time::sleep(period.saturating_sub(started.elapsed())).await;
        }
    }

    /// One round over every statement this node runs.
    async fn round(&self) {
        let owned = self.router.owned_tokens();
        let behind: Vec<Behind> = stream::iter(owned)
            .map(|(stmt, token)| async move {
                let outcome = self.statement(stmt, token).await;
                let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
                match outcome {
                    Ok(b) => {
                        if failing.remove(&stmt) {
                            tracing::info!(statement = %stmt, "archiving works again");
                        }
                        b
                    }
                    Err((e, b)) => {
                        self.archive.stats().errors.fetch_add(1, Ordering::Relaxed);
                        if failing.insert(stmt) {
                            tracing::warn!(statement = %stmt, error = %e, "archiving failed; retrying every round (Redis keeps the history meanwhile)");
                        } else {
                            tracing::debug!(statement = %stmt, error = %e, "archiving failed again");
                        }
                        b
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let stats = self.archive.stats();
        stats
            .pending_events
            .store(behind.iter().map(|b| b.pending).sum(), Ordering::Relaxed);
        let oldest = behind.iter().filter_map(|b| b.oldest).min();
        stats
            .oldest_pending
            .store(oldest.map_or(0, |m| m.0.max(1)), Ordering::Relaxed);
    }

    /// Archives the wallet ledgers that are due: see the module docs.
    async fn ledgers(&self) -> Result<(), ArchiveError> {
        let cutoff = Millis(Millis::now().0.saturating_sub(LEDGER_SETTLE_MS));
        let due = self.store.ledgers_due(cutoff, LEDGER_WALLETS).await?;
        let done: Vec<Result<(), ArchiveError>> = stream::iter(due)
            .map(|user| async move { self.ledger(&user).await })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        done.into_iter().collect()
    }

    /// Archives one wallet's ledger as far as it goes now.
    async fn ledger(&self, user: &str) -> Result<(), ArchiveError> {
        let read_at = Millis::now();
        let entries = self.store.wallet_ledger(user, LEDGER_ENTRIES).await?;
        if let Some(last) = entries.last() {
            self.archive.insert_wallet_ledger(user, &entries).await?;
            self.store.trim_wallet_ledger(user, last).await?;
            self.archive
                .stats()
                .archived_ledger_entries
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
        }
        if entries.len() < LEDGER_ENTRIES {
            self.store
                .settle_ledger(user, read_at, LEDGER_GRACE_MS)
                .await?;
        }
        Ok(())
    }

    /// Archives one statement: see the module docs. On failure, how far behind it is.
    async fn statement(&self, stmt: Key, token: u64) -> Result<Behind, (ArchiveError, Behind)> {
        let mut behind = Behind::default();
        for _ in 0..BATCHES_PER_ROUND {
            let (entries, events) = self
                .store
                .read_events(stmt, BATCH)
                .await
                .map_err(|e| (e.into(), behind))?;
            if events.is_empty() && self.is_known(stmt) {
                break;
            }
            behind = Behind {
                pending: events.len() as u64,
                oldest: events.first().map(|e| e.at),
            };
            let full = entries == BATCH;
            match self.batch(stmt, token, &events).await {
                Ok(true) => {}
                Ok(false) => return Ok(Behind::default()),
                Err(e) => return Err((e, behind)),
            }
            behind = Behind::default();
            if !full {
                break;
            }
            if let Ok(s) = self.store.log_state(stmt).await {
                behind = Behind {
                    pending: s.pending,
                    oldest: s.oldest,
                };
            }
        }
        self.sweep(stmt, token).await.map_err(|e| (e, behind))?;
        Ok(behind)
    }

    /// Writes one batch of events and then trims them; false when fenced.
    async fn batch(&self, stmt: Key, token: u64, events: &[Event]) -> Result<bool, ArchiveError> {
        let mut proofs = self.read_proofs(stmt, proved_in(events)).await?;
        let mut closed: Vec<(String, Millis)> = events
            .iter()
            .flat_map(|e| e.closed().into_iter().map(move |m| (m, e.at)))
            .collect();
        let mut applied = self
            .archive
            .apply(&Batch {
                statement: stmt,
                fence: token,
                events,
                proofs: &proofs,
                copy: None,
            })
            .await?;
        if applied == Applied::NeedsCopy {
            let (upto, orders, proof_keys) = self.store.statement_records(stmt).await?;
            proofs.extend(self.read_proofs(stmt, proof_keys).await?);
            for o in &orders {
                if matches!(o.status, Status::Completed | Status::Withdrawn) {
                    closed.push((format!("o:{}", o.key), o.updated));
                }
            }
            for p in proofs.values() {
                closed.push((format!("p:{}", p.key), p.created));
            }
            applied = self
                .archive
                .apply(&Batch {
                    statement: stmt,
                    fence: token,
                    events,
                    proofs: &proofs,
                    copy: Some((upto, &orders)),
                })
                .await?;
            tracing::info!(statement = %stmt, records = orders.len(), "statement copied to the archive");
        }
        match applied {
            Applied::Committed { cursor, applied } => {
                self.known
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(stmt);
                let last = events
                    .last()
                    .map_or((String::new(), cursor), |e| (e.id.clone(), e.n));
                self.store
                    .finish_archived(stmt, Some(token), (&last.0, last.1), &closed)
                    .await?;
                self.archive
                    .stats()
                    .archived_events
                    .fetch_add(applied, Ordering::Relaxed);
                Ok(true)
            }
            Applied::Fenced { by } => {
                tracing::info!(statement = %stmt, token, newer = by, "archive fenced: a newer owner writes this statement");
                Ok(false)
            }
            Applied::NeedsCopy => Err(ArchiveError::Corrupt(format!(
                "statement {stmt}: the archive asked for a copy twice"
            ))),
        }
    }

    /// Removes closed records past the retention.
    async fn sweep(&self, stmt: Key, token: u64) -> Result<(), ArchiveError> {
        let retention = self.archive.config().retention;
        let cutoff = Millis(Millis::now().0.saturating_sub(millis(retention)));
        for _ in 0..SWEEPS_PER_ROUND {
            let removed = match self
                .store
                .sweep_closed(stmt, Some(token), cutoff, SWEEP)
                .await
            {
                Err(StoreError::Fenced) => return Ok(()),
                other => other?,
            };
            self.archive
                .stats()
                .removed_records
                .fetch_add(removed.len() as u64, Ordering::Relaxed);
            if removed.len() < SWEEP / 2 {
                break;
            }
        }
        Ok(())
    }

    async fn read_proofs(
        &self,
        stmt: Key,
        keys: Vec<Key>,
    ) -> Result<HashMap<Key, ProofRecord>, ArchiveError> {
        let found: Vec<Result<Option<ProofRecord>, StoreError>> = stream::iter(keys)
            .map(|k| async move { self.store.get_proof(stmt, k).await })
            .buffered(16)
            .collect()
            .await;
        let mut out = HashMap::new();
        for p in found {
            if let Some(p) = p? {
                out.insert(p.key, p);
            }
        }
        Ok(out)
    }

    fn is_known(&self, stmt: Key) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&stmt)
    }
}

fn proved_in(events: &[Event]) -> Vec<Key> {
    events
        .iter()
        .filter_map(|e| match e.what {
            EventKind::Proved { proof, .. } => Some(proof),
            _ => None,
        })
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
