//! History in PostgreSQL: closed orders, trades and proofs archived from Redis.
//!
//! Each statement's owner runs the archiver (`market::archiving`) over the statement's
//! event log (`store::events`): [`Archive::apply`] writes a batch of events in one
//! transaction that also moves the statement's cursor, fenced by the owner's token, so
//! a replay after a crash or a takeover applies nothing twice and a stale owner writes
//! nothing. Only after the commit does the archiver trim the log and, a retention later,
//! remove the closed records from Redis. Reads fall through here when Redis no longer
//! holds a record ([`Archive::get_order`], [`Archive::get_proof`],
//! [`Archive::closed_orders`]).
//!
//! The schema is versioned SQL under `migrations/`, applied at start by refinery under
//! an advisory lock (so nodes starting together migrate once).

mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::Row;

use crate::domain::{Cost, Key, Millis, Minutes, Side, Status};
use crate::store::{LedgerEntry, OrderRecord, ProofRecord, StoreError};

pub use writer::{Applied, Batch};

mod embedded {
    refinery::embed_migrations!("src/archive/migrations");
}

/// Advisory lock id held while migrating ("pm-hist" in ASCII).
const MIGRATION_LOCK: i64 = 0x0070_6d2d_6869_7374;

/// Where the archive is and how the archiver runs.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// `postgres://user[:password]@host[:port]/database[?sslmode=require]`.
    pub url: String,
    /// Connections this node keeps.
    pub pool: usize,
    /// CA certificates (PEM) to verify the server with; implies TLS.
    pub ca_file: Option<PathBuf>,
    /// How long a closed record stays in Redis after it closed (and once archived).
    pub retention: Duration,
    /// Time between archiver rounds.
    pub interval: Duration,
}

impl ArchiveConfig {
    /// Default of `--database-pool`.
    pub const POOL: usize = 8;
    /// Default of `--archive-retention-secs`.
    pub const RETENTION_SECS: u64 = 300;
    /// Default of `--archive-interval-ms`.
    pub const INTERVAL_MS: u64 = 200;
}

/// An archive failure.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// PostgreSQL answered with an error or could not be reached.
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Migrating the schema failed.
    #[error("migrating the archive schema: {0}")]
    Migration(#[from] refinery::Error),
    /// The settings do not work (URL, TLS files).
    #[error("{0}")]
    Config(String),
    /// Redis failed while archiving.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row does not parse.
    #[error("corrupt archive row: {0}")]
    Corrupt(String),
}

/// A PostgreSQL error with the server's message (tokio-postgres shows only "db error").
fn postgres_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// What the archiver has done on this node, for `/health`.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Events committed to PostgreSQL.
    pub archived_events: AtomicU64,
    /// Closed records removed from Redis.
    pub removed_records: AtomicU64,
    /// Wallet ledger entries committed to PostgreSQL.
    pub archived_ledger_entries: AtomicU64,
    /// Rounds of a statement that failed.
    pub errors: AtomicU64,
    /// Events of this node's statements not yet trimmed (last round's count).
    pub pending_events: AtomicU64,
    /// Unix ms of the oldest event of this node's statements not yet archived (0: none).
    pub oldest_pending: AtomicU64,
}

/// The archive's state as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveHealth {
    /// Age of the oldest event not yet in PostgreSQL, in ms (0: none).
    pub lag_ms: u64,
    /// Events not yet trimmed from the logs of this node's statements.
    pub pending_events: u64,
    /// Events committed so far by this node.
    pub archived_events: u64,
    /// Closed records removed from Redis by this node.
    pub removed_records: u64,
    /// Wallet ledger entries committed so far by this node.
    pub archived_ledger_entries: u64,
    /// Failed statement rounds.
    pub errors: u64,
    /// PostgreSQL answered just now.
    pub reachable: bool,
}

/// The history database: a pool of connections and the archiver's counters.
pub struct Archive {
    pool: Pool,
    cfg: ArchiveConfig,
    stats: ArchiveStats,
}

const CLOSED: [&str; 2] = ["completed", "withdrawn"];

impl Archive {
    /// Connects (the URL and TLS settings checked now, connections opened on demand)
    /// and applies the migrations.
    pub async fn open(cfg: ArchiveConfig) -> Result<Archive, ArchiveError> {
        for query in [
            "get_order",
            "get_proof",
            "closed_orders",
            "insert_wallet_ledger",
            "apply_batch",
        ] {
            crate::metrics::metrics()
                .postgres_seconds
                .with_label_values(&[query]);
        }
        let pg: tokio_postgres::Config = cfg
            .url
            .parse()
            .map_err(|e| ArchiveError::Config(format!("--database-url: {e}")))?;
        let tls = tls_for(&pg, cfg.ca_file.as_deref())?;
        let mgr_cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mgr = match &tls {
            Some(t) => Manager::from_config(pg.clone(), t.clone(), mgr_cfg),
            None => Manager::from_config(pg.clone(), tokio_postgres::NoTls, mgr_cfg),
        };
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool.max(1))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| ArchiveError::Config(format!("postgres pool: {e}")))?;
        let archive = Archive {
            pool,
            cfg,
            stats: ArchiveStats::default(),
        };
        archive.migrate().await?;
        Ok(archive)
    }

    /// Applies the migrations not yet applied, one node at a time.
    async fn migrate(&self) -> Result<(), ArchiveError> {
        let mut obj = self.pool.get().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let report = embedded::migrations::runner().run_async(client).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        for m in report?.applied_migrations() {
            tracing::info!(migration = %m, "archive schema migrated");
        }
        Ok(())
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ArchiveConfig {
        &self.cfg
    }

    /// The archiver's counters.
    pub fn stats(&self) -> &ArchiveStats {
        &self.stats
    }

    /// The archive's state now, for `/health`.
    pub async fn health(&self) -> ArchiveHealth {
        // Bounded: a load balancer's health check must not hang on a dead database.
        let ping = async {
            match self.pool.get().await {
                Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
                Err(_) => false,
            }
        };
        let reachable = tokio::time::timeout(Duration::from_secs(1), ping)
            .await
            .unwrap_or(false);
        let s = &self.stats;
        let oldest = s.oldest_pending.load(Ordering::Relaxed);
        ArchiveHealth {
            lag_ms: if oldest == 0 {
                0
            } else {
                Millis::now().0.saturating_sub(oldest)
            },
            pending_events: s.pending_events.load(Ordering::Relaxed),
            archived_events: s.archived_events.load(Ordering::Relaxed),
            removed_records: s.removed_records.load(Ordering::Relaxed),
            archived_ledger_entries: s.archived_ledger_entries.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            reachable,
        }
    }

    /// An archived order.
    pub async fn get_order(&self, key: Key) -> Result<Option<OrderRecord>, ArchiveError> {
        timed("get_order", async {
            let c = self.pool.get().await?;
            let row = c
                .query_opt(
                    &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE key = $1"),
                    &[&(key.0 as i64)],
                )
                .await?;
            row.map(|r| order_from_row(&r)).transpose()
        })
        .await
    }

    /// An archived proof.
    pub async fn get_proof(&self, key: Key) -> Result<Option<ProofRecord>, ArchiveError> {
        timed("get_proof", async {
            let c = self.pool.get().await?;
            let row = c
                .query_opt(
                    "SELECT key, statement_key, request_key, proposal_key, sender, input, \
                     generation_ms, created_on, output, proof_system, proof \
                     FROM proofs WHERE key = $1",
                    &[&(key.0 as i64)],
                )
                .await?;
            row.map(|r| proof_from_row(&r)).transpose()
        })
        .await
    }

    /// Closed (completed or withdrawn) orders of one side, ascending by key, at most
    /// `limit`: those of `status` if given (an open status finds none here), of
    /// `sender`, of `statement`. Open orders are always in Redis.
    pub async fn closed_orders(
        &self,
        side: Side,
        status: Option<Status>,
        sender: Option<&str>,
        statement: Option<Key>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, ArchiveError> {
        timed("closed_orders", async {
            let statuses: Vec<&str> = match status {
                Some(s) if CLOSED.contains(&s.as_str()) => vec![s.as_str()],
                Some(_) => return Ok(Vec::new()),
                None => CLOSED.to_vec(),
            };
            let c = self.pool.get().await?;
            let stmt = statement.map(|k| k.0 as i64);
            let rows = c
                .query(
                    &format!(
                        "SELECT {ORDER_COLUMNS} FROM orders WHERE side = $1 AND status = ANY($2) \
                         AND ($3::text IS NULL OR sender = $3) \
                         AND ($4::bigint IS NULL OR statement_key = $4) \
                         ORDER BY key LIMIT $5"
                    ),
                    &[
                        &side.as_str(),
                        &statuses,
                        &sender,
                        &stmt,
                        &(limit.min(i64::MAX as usize) as i64),
                    ],
                )
                .await?;
            rows.iter().map(order_from_row).collect()
        })
        .await
    }

    /// Writes entries of `user`'s wallet ledger (keyed by the user and the entry's
    /// stream id: writing one twice writes nothing new).
    pub async fn insert_wallet_ledger(
        &self,
        user: &str,
        entries: &[LedgerEntry],
    ) -> Result<(), ArchiveError> {
        timed("insert_wallet_ledger", async {
            let c = self.pool.get().await?;
            writer::insert_wallet_ledger(&c, user, entries).await
        })
        .await
    }

    /// A wallet's ledger entries in the archive, oldest first: (time ms, sequence,
    /// kind, balance change, deposit change, reference).
    pub async fn wallet_ledger(&self, user: &str) -> Result<Vec<LedgerEntry>, ArchiveError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT at, seq, kind, balance::text, deposit::text, reference \
                 FROM wallet_ledger WHERE user_name = $1 ORDER BY at, seq",
                &[&user.to_lowercase()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let bad = |what: &str| ArchiveError::Corrupt(format!("wallet ledger {what}"));
                Ok(LedgerEntry {
                    at: u(r.try_get(0)?, "at")?,
                    seq: u(r.try_get(1)?, "seq")?,
                    kind: r.try_get(2)?,
                    balance: r
                        .try_get::<_, String>(3)?
                        .parse()
                        .map_err(|_| bad("balance"))?,
                    deposit: r
                        .try_get::<_, String>(4)?
                        .parse()
                        .map_err(|_| bad("deposit"))?,
                    reference: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Writes a batch of one statement's history; see [`Batch`].
    pub async fn apply(&self, batch: &Batch<'_>) -> Result<Applied, ArchiveError> {
        timed("apply_batch", async {
            let mut c = self.pool.get().await?;
            writer::apply(&mut c, batch).await
        })
        .await
    }
}

/// `call`, timed into the PostgreSQL call histogram under `query`.
async fn timed<T, E>(
    query: &'static str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    let r = call.await;
    crate::metrics::metrics().postgres_call(query, started.elapsed(), r.is_err());
    r
}

/// The TLS connector the URL and CA file ask for: none unless `sslmode=require` or a
/// CA file is given; then rustls, verifying the server's certificate and name against
/// the CA file, or the Mozilla roots without one.
fn tls_for(
    pg: &tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, ArchiveError> {
    if ca_file.is_none() && pg.get_ssl_mode() != SslMode::Require {
        return Ok(None);
    }
    crate::store::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(path).map_err(|e| {
                ArchiveError::Config(format!("--database-ca-file {}: {e}", path.display()))
            })?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    ArchiveError::Config(format!("--database-ca-file {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    ArchiveError::Config(format!("--database-ca-file {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(ArchiveError::Config(format!(
                    "--database-ca-file {}: no certificate in it",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// The `orders` columns in [`order_from_row`]'s order.
const ORDER_COLUMNS: &str = "key, side, statement_key, status, cost, eval_time, wait_period, \
     sender, created_on, updated_on, seq, input, canon, counterpart, matched_time, price, proof_key, failed";

fn u(v: i64, what: &str) -> Result<u64, ArchiveError> {
    u64::try_from(v).map_err(|_| ArchiveError::Corrupt(format!("negative {what}")))
}

fn order_from_row(r: &Row) -> Result<OrderRecord, ArchiveError> {
    let key = Key(u(r.try_get("key")?, "key")?);
    let bad = |what: &str| ArchiveError::Corrupt(format!("order {key}: bad `{what}`"));
    let side = match r.try_get::<_, &str>("side")? {
        "request" => Side::Request,
        "proposal" => Side::Proposal,
        _ => return Err(bad("side")),
    };
    let opt_key = |f: &str| -> Result<Option<Key>, ArchiveError> {
        r.try_get::<_, Option<i64>>(f)?
            .map(|v| u(v, f).map(Key))
            .transpose()
    };
    let minutes = |f: &str| -> Result<Option<Minutes>, ArchiveError> {
        r.try_get::<_, Option<i32>>(f)?
            .map(|v| u32::try_from(v).map(Minutes).map_err(|_| bad(f)))
            .transpose()
    };
    let cost = |v: i64, f: &str| Cost::from_micros(u(v, f)?).map_err(|_| bad(f));
    Ok(OrderRecord {
        key,
        side,
        statement: Key(u(r.try_get("statement_key")?, "statement_key")?),
        cost: cost(r.try_get("cost")?, "cost")?,
        eval_time: minutes("eval_time")?,
        wait_period: minutes("wait_period")?,
        sender: r.try_get("sender")?,
        created: Millis(u(r.try_get("created_on")?, "created_on")?),
        updated: Millis(u(r.try_get("updated_on")?, "updated_on")?),
        status: Status::parse(r.try_get("status")?).ok_or_else(|| bad("status"))?,
        seq: u(r.try_get("seq")?, "seq")?,
        input: r.try_get("input")?,
        canon: r.try_get("canon")?,
        counterpart: opt_key("counterpart")?,
        matched_time: r
            .try_get::<_, Option<i64>>("matched_time")?
            .map(|v| u(v, "matched_time").map(Millis))
            .transpose()?,
        price: r
            .try_get::<_, Option<i64>>("price")?
            .map(|v| cost(v, "price"))
            .transpose()?,
        proof_key: opt_key("proof_key")?,
        held: 0,
        funded_at: None,
        failed: r
            .try_get::<_, Option<i64>>("failed")?
            .map(|v| u(v, "failed").map(Millis))
            .transpose()?,
    })
}

fn proof_from_row(r: &Row) -> Result<ProofRecord, ArchiveError> {
    let key = |f: &str| -> Result<Key, ArchiveError> { Ok(Key(u(r.try_get(f)?, f)?)) };
    Ok(ProofRecord {
        key: key("key")?,
        statement: key("statement_key")?,
        request: key("request_key")?,
        proposal: key("proposal_key")?,
        sender: r.try_get("sender")?,
        input: r.try_get("input")?,
        generation_ms: u(r.try_get("generation_ms")?, "generation_ms")?,
        created: Millis(u(r.try_get("created_on")?, "created_on")?),
        output: r.try_get("output")?,
        proof_system: r.try_get("proof_system")?,
        proof_hex: hex::encode(r.try_get::<_, &[u8]>("proof")?),
    })
}
