//! Reaching Redis: the [`Store`] handle, its one multiplexed connection (to a single
//! Redis or to a cluster), opening, reconnecting and the health check.
//!
//! The other files of the store add methods to [`Store`]; this one owns what every
//! method shares: the connection and the key layout.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;

use super::keys::Keys;
use super::target::{self, RedisTarget};
use super::StoreError;

/// One multiplexed connection, to a single Redis or to a cluster. Both reconnect by
/// themselves; the cluster one also follows `MOVED`/`ASK` redirections.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        let command = command_of(cmd);
        let sent = match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        };
        timed(command, sent)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        let sent = match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        };
        timed("PIPELINE", sent)
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The metrics label of a command: its name (see [`crate::metrics::command_label`]).
fn command_of(cmd: &redis::Cmd) -> &'static str {
    let first = cmd.args_iter().next().and_then(|a| match a {
        redis::Arg::Simple(b) => Some(b),
        _ => None,
    });
    crate::metrics::command_label(first)
}

/// `call`, timed into the Redis call histogram under `command`.
fn timed<'a, T: Send + 'a>(
    command: &'static str,
    call: redis::RedisFuture<'a, T>,
) -> redis::RedisFuture<'a, T> {
    Box::pin(async move {
        let started = std::time::Instant::now();
        let r = call.await;
        crate::metrics::metrics().redis_call(command, started.elapsed(), r.is_err());
        r
    })
}

impl Conn {
    /// Sends a pipeline and returns each command's reply (server errors as
    /// [`redis::Value::ServerError`], not as a failure of the whole pipeline). On a
    /// cluster it goes to the master of `slot`: its commands should be on that master's
    /// slots (a command on another one is answered `MOVED`).
    pub(super) async fn send_pipeline(
        &mut self,
        pipe: redis::Pipeline,
        slot: u16,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        use redis::aio::ConnectionLike;
        use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
        let n = pipe.len();
        let started = std::time::Instant::now();
        let r = match self {
            Conn::Single(c) => c.req_packed_commands(&pipe, 0, n).await,
            Conn::Cluster(c) => {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                c.route_pipeline(pipe, 0, n, route).await
            }
        };
        crate::metrics::metrics().redis_call("PIPELINE", started.elapsed(), r.is_err());
        r
    }
}

/// Handle to the Redis store; cheap to clone (one multiplexed connection).
#[derive(Clone)]
pub struct Store {
    pub(super) conn: Conn,
    pub(super) keys: Keys,
    target: Arc<RedisTarget>,
    /// Most entries a statement's event log keeps (0: no cap); see `with_event_log_max`.
    pub(super) event_log_max: u64,
    /// How wallets open and how long money may travel; see `with_wallets`.
    pub(super) wallets: WalletConfig,
    /// Whether wallet scripts mark their wallets for the ledger archiver; see
    /// `with_ledger_archive`.
    pub(super) ledger_marks: bool,
    /// How long archived events stay in their log (ms); see `with_resume_window`.
    pub(super) resume_window_ms: u64,
}

/// How wallets open and how long money sent to a statement may take to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletConfig {
    /// Balance a wallet opens with, micro-units (demo and test markets).
    pub signup_credit: u64,
    /// Producer deposit a wallet opens with, micro-units.
    pub signup_deposit: u64,
    /// An order whose money left its wallet longer ago than this is refused by its
    /// statement; past twice this, an order that never arrived is refunded.
    pub funding_window_ms: u64,
}

impl Default for WalletConfig {
    fn default() -> Self {
        WalletConfig {
            signup_credit: 0,
            signup_deposit: 0,
            funding_window_ms: 60_000,
        }
    }
}

/// Default of [`Store::with_resume_window`]: a minute.
pub const RESUME_WINDOW_MS: u64 = 60_000;

/// Default of [`Store::with_event_log_max`].
pub const EVENT_LOG_MAX: u64 = 100_000;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Connects to `target`, namespacing every key under `prefix`.
    pub async fn open(target: &RedisTarget, prefix: &str) -> Result<Store, StoreError> {
        if target.uses_tls() {
            target::install_crypto_provider();
        }
        let certs = target.certificates();
        let conn = if target.is_cluster() {
            let mut builder =
                redis::cluster::ClusterClient::builder(target.seeds().iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(3);
            if let Some(c) = certs {
                builder = builder.certs(c);
            }
            Conn::Cluster(builder.build()?.get_async_connection().await?)
        } else {
            let url = target.seeds()[0].as_str();
            let client = match certs {
                Some(c) => redis::Client::build_with_tls(url, c)?,
                None => redis::Client::open(url)?,
            };
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(2);
            Conn::Single(ConnectionManager::new_with_config(client, config).await?)
        };
        Ok(Store {
            conn,
            keys: Keys::new(prefix),
            target: Arc::new(target.clone()),
            event_log_max: EVENT_LOG_MAX,
            wallets: WalletConfig::default(),
            ledger_marks: false,
            resume_window_ms: RESUME_WINDOW_MS,
        })
    }

    /// True when the store is a Redis Cluster (pipelines must then stay in one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Another connection to the same Redis and prefix. A connection's I/O task runs on
    /// the thread that opens it, so each matcher thread opens its own: one shared
    /// connection would funnel every write through a single thread.
    pub async fn reconnect(&self) -> Result<Store, StoreError> {
        Ok(Store::open(&self.target, self.prefix())
            .await?
            .with_event_log_max(self.event_log_max)
            .with_wallets(self.wallets)
            .with_ledger_archive(self.ledger_marks)
            .with_resume_window(self.resume_window_ms))
    }

    /// Keeps archived events in their statement's log for `ms` after they happened, so
    /// that a live stream (`GET /events`) reconnecting within it resumes without a gap.
    pub fn with_resume_window(mut self, ms: u64) -> Store {
        self.resume_window_ms = ms;
        self
    }

    /// How long archived events stay in their log (ms).
    pub fn resume_window_ms(&self) -> u64 {
        self.resume_window_ms
    }

    /// Subscribes to the channel that tells when a statement's log or a wallet's
    /// ledger grew (one connection of its own, to the first seed that answers: a
    /// cluster delivers every node's messages to every node).
    pub async fn subscribe_events(&self) -> Result<redis::aio::PubSub, StoreError> {
        let certs = self.target.certificates();
        let mut last = None;
        for url in self.target.seeds() {
            let client = match &certs {
                Some(c) => redis::Client::build_with_tls(url.as_str(), c.clone())?,
                None => redis::Client::open(url.as_str())?,
            };
            match client.get_async_pubsub().await {
                Ok(mut p) => {
                    p.subscribe(self.keys.events_channel()).await?;
                    return Ok(p);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(StoreError::from)
            .unwrap_or_else(|| StoreError::Corrupt("no Redis URL".into())))
    }

    /// Sets how wallets open and how long money may travel.
    pub fn with_wallets(mut self, w: WalletConfig) -> Store {
        self.wallets = w;
        self
    }

    /// With `on`, every wallet script that may write a ledger entry first marks its
    /// wallet for the archiver (`Store::mark_ledgers`), which moves the entries to
    /// PostgreSQL; without an archive, wallets keep their ledgers in Redis.
    pub fn with_ledger_archive(mut self, on: bool) -> Store {
        self.ledger_marks = on;
        self
    }

    /// How wallets open and how long money may travel.
    pub fn wallet_config(&self) -> WalletConfig {
        self.wallets
    }

    /// Caps each statement's event log at about `max` entries (0: no cap). The archiver
    /// trims what PostgreSQL holds long before that; the cap bounds the log when no
    /// archiver runs (no database) or one falls far behind, in which case it copies the
    /// statement's records from Redis again instead of replaying lost events.
    pub fn with_event_log_max(mut self, max: u64) -> Store {
        self.event_log_max = max;
        self
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }
}
