//! `proof-market`: run a market node (`serve`) or talk to one (every other subcommand).

use std::path::PathBuf;

/// The node allocates many small, short-lived objects per call (strings, JSON trees,
/// futures); mimalloc serves them faster than glibc malloc (measured: README,
/// Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

use proof_market::api::bodies::{BodyBudget, BodyLimits};
use proof_market::archive::ArchiveConfig;
use proof_market::cli::args::parse_cost;
use proof_market::cli::{ClientCommand, ClientOpts};
use proof_market::cluster::signing::ClusterSecret;
use proof_market::cluster::NodeConfig;
use proof_market::domain::Cost;
use proof_market::market::money::Economics;
use proof_market::market::state::Quotas;
use proof_market::market::{Limits, RateLimits};
use proof_market::prover::pool::{PoolSize, PoolSizes};
use proof_market::prover::statements::CircuitPolicy;
use proof_market::server::{self, HttpLimits, ServeConfig};
use proof_market::store::WalletConfig;
use proof_market::store::{RedisTarget, RedisTls};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "proof-market",
    version,
    about = "A market for zero-knowledge proofs"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "PROOF_MARKET_LOG_JSON")]
    json_logs: bool,
    #[command(flatten)]
    client: ClientOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a market node.
    Serve(Box<ServeArgs>),
    /// Run a producer: keep proposals open, prove what matches, push the proofs.
    Producer(ProducerArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML file of settings (keys are these flags' names, `lease_ms = 5000`); a flag
    /// or an environment variable wins over the file.
    #[arg(long, env = "PROOF_MARKET_CONFIG")]
    config: Option<PathBuf>,
    /// Print every setting (flag and config key, environment variable, default) as a
    /// Markdown table and exit.
    #[arg(long)]
    print_settings: bool,
    /// PostgreSQL for the history (postgres://user:pass@host:port/db, `?sslmode=require`
    /// for TLS). Without it archiving is off and Redis keeps every order and proof.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Connections to PostgreSQL this node keeps.
    #[arg(long, env = "PROOF_MARKET_DATABASE_POOL", default_value_t = ArchiveConfig::POOL as u64, value_parser = clap::value_parser!(u64).range(1..=1000))]
    database_pool: u64,
    /// CA certificates (PEM) to verify PostgreSQL's TLS certificate with (implies TLS).
    #[arg(long, env = "PROOF_MARKET_DATABASE_CA_FILE")]
    database_ca_file: Option<std::path::PathBuf>,
    /// Seconds a closed order or proof stays in Redis after it closed (once archived).
    #[arg(long, env = "PROOF_MARKET_ARCHIVE_RETENTION_SECS", default_value_t = ArchiveConfig::RETENTION_SECS, value_parser = clap::value_parser!(u64).range(0..=30 * 86_400))]
    archive_retention_secs: u64,
    /// Milliseconds between archiver rounds.
    #[arg(long, env = "PROOF_MARKET_ARCHIVE_INTERVAL_MS", default_value_t = ArchiveConfig::INTERVAL_MS, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    archive_interval_ms: u64,
    /// Most entries each statement's event log keeps in Redis (0: no cap).
    #[arg(long, env = "PROOF_MARKET_EVENT_LOG_MAX", default_value_t = proof_market::store::EVENT_LOG_MAX)]
    event_log_max: u64,
    /// Seconds archived events stay in their statement's log, for live streams
    /// (`GET /events`) to resume from with `Last-Event-ID`.
    #[arg(long, env = "PROOF_MARKET_EVENT_RESUME_SECS", default_value_t = proof_market::store::RESUME_WINDOW_MS / 1000, value_parser = clap::value_parser!(u64).range(1..=3600))]
    event_resume_secs: u64,
    /// Live event streams (`GET /events`) this node serves at once.
    #[arg(long, env = "PROOF_MARKET_MAX_EVENT_STREAMS", default_value_t = proof_market::live::LiveConfig::MAX_STREAMS as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_event_streams: u64,
    /// Live event streams one user may hold open at once on this node.
    #[arg(long, env = "PROOF_MARKET_MAX_EVENT_STREAMS_PER_USER", default_value_t = proof_market::live::LiveConfig::MAX_STREAMS_PER_USER as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    max_event_streams_per_user: u64,
    /// Serve the market page (`/`) from this directory's index.html, app.js and
    /// style.css instead of the copies built in.
    #[arg(long, env = "PROOF_MARKET_WEB_DIR")]
    web_dir: Option<std::path::PathBuf>,
    /// Seconds between keep-alive comments on an idle event stream (a proxy's idle
    /// timeout must be longer; a client gone away is noticed at the next one).
    #[arg(long, env = "PROOF_MARKET_EVENT_KEEPALIVE_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=300))]
    event_keepalive_secs: u64,
    /// Balance each new wallet opens with, in units (a demo or test market: clients of
    /// the original market, which knows nothing of money, can then trade).
    #[arg(long, env = "PROOF_MARKET_SIGNUP_CREDIT", default_value = "0", value_parser = parse_amount)]
    signup_credit: u64,
    /// Producer deposit each new wallet opens with, in units.
    #[arg(long, env = "PROOF_MARKET_SIGNUP_DEPOSIT", default_value = "0", value_parser = parse_amount)]
    signup_deposit: u64,
    /// Collateral per unit of matched price: a deposit of X backs X / this of matched
    /// work at once, and a missed deadline costs this × the price (0: no collateral).
    #[arg(long, env = "PROOF_MARKET_COLLATERAL_FACTOR", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=1000))]
    collateral_factor: u32,
    /// The market's commission on each completed trade, in millionths of the price
    /// (5000 = 0.5 %).
    #[arg(long, env = "PROOF_MARKET_COMMISSION_PPM", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    commission_ppm: u64,
    /// The least commission of a trade, in micro-units (never more than the price).
    #[arg(long, env = "PROOF_MARKET_COMMISSION_MIN", default_value_t = 1)]
    commission_min: u64,
    /// Minutes a producer has for a proof when its proposal gave no eval_time.
    #[arg(long, env = "PROOF_MARKET_DEFAULT_EVAL_TIME", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    default_eval_time: u32,
    /// How long a minute of eval_time and wait_period lasts, in milliseconds: 60000 on
    /// a real market; tests and demos shorten it.
    #[arg(long, env = "PROOF_MARKET_MINUTE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    minute_ms: u64,
    /// Milliseconds a user's account on a statement may stay idle before its free money
    /// (parked there by a top-up from the wallet, or earned there) goes back to the
    /// user's wallet.
    #[arg(long, env = "PROOF_MARKET_SWEEP_AFTER_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    sweep_after_ms: u64,
    /// Milliseconds an order's money may take from its wallet to its statement; an
    /// order later than that is refused, and money of an order that never arrived is
    /// given back after twice that.
    #[arg(long, env = "PROOF_MARKET_FUNDING_WINDOW_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(500..=3_600_000))]
    funding_window_ms: u64,
    /// Address to listen on.
    #[arg(long, env = "PROOF_MARKET_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Redis server; a comma-separated list of seed URLs means a Redis Cluster.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Treat a single `--redis-url` as a Redis Cluster seed (a managed cluster's
    /// configuration endpoint).
    #[arg(long, env = "PROOF_MARKET_REDIS_CLUSTER", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    redis_cluster: bool,
    /// PEM CA certificate(s) to trust for `rediss://` instead of the system roots.
    #[arg(long, env = "PROOF_MARKET_REDIS_CA_FILE")]
    redis_ca_file: Option<PathBuf>,
    /// PEM client certificate for Redis servers that require mutual TLS.
    #[arg(
        long,
        env = "PROOF_MARKET_REDIS_CLIENT_CERT",
        requires = "redis_client_key"
    )]
    redis_client_cert: Option<PathBuf>,
    /// PEM private key of `--redis-client-cert`.
    #[arg(
        long,
        env = "PROOF_MARKET_REDIS_CLIENT_KEY",
        requires = "redis_client_cert"
    )]
    redis_client_key: Option<PathBuf>,
    /// This node's id: unique among the market's nodes and stable across its restarts
    /// (default: <hostname>:<port>).
    #[arg(long, env = "PROOF_MARKET_NODE_ID")]
    node_id: Option<String>,
    /// Base URL other nodes use to forward calls to this one (default: http://<listen
    /// address>).
    #[arg(long, env = "PROOF_MARKET_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Statement lease in milliseconds: a lost node's statements move after about this
    /// long.
    #[arg(long, env = "PROOF_MARKET_LEASE_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    lease_ms: u64,
    /// Seconds an order's Idempotency-Key is remembered after the order was placed
    /// (1 s .. 30 days; the same on every node).
    #[arg(long, env = "PROOF_MARKET_IDEMPOTENCY_RETENTION", default_value_t = 24 * 3600, value_parser = clap::value_parser!(u64).range(1..=30 * 24 * 3600))]
    idempotency_retention: u64,
    /// Namespace of this market's Redis keys (several markets can share one Redis).
    #[arg(long, env = "PROOF_MARKET_KEY_PREFIX", default_value = "pm")]
    key_prefix: String,
    /// Directory for local files (the generated token secret).
    #[arg(long, env = "PROOF_MARKET_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// File holding the secret that calls between nodes are signed with (HMAC-SHA256;
    /// the same on every node, at least 32 bytes, mode 0600 or 0400, or 0440/0640 if
    /// root owns it). Or set PROOF_MARKET_CLUSTER_SECRET to the secret itself (not
    /// both). Without either the node forwards no calls and takes none: right for a
    /// single node only.
    #[arg(long, env = "PROOF_MARKET_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Token lifetime in seconds. The signing secret comes from PROOF_MARKET_JWT_SECRET
    /// (at least 32 bytes, else the node refuses to start) or is generated in
    /// <data-dir>/jwt-secret (mode 0600; a file readable by others is refused).
    #[arg(long, env = "PROOF_MARKET_TOKEN_TTL", default_value_t = 24 * 3600)]
    token_ttl: u64,
    /// Longest time in seconds from a login through any chain of `user/renew`: then the
    /// user must log in again (default 30 days).
    #[arg(long, env = "PROOF_MARKET_TOKEN_MAX_AGE", default_value_t = 30 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    token_max_age: u64,
    /// Milliseconds a node trusts its cached copy of a user's token revocation time: a
    /// logout or password change on one node voids the tokens on the others within
    /// this delay (at once on the node that took it).
    #[arg(long, env = "PROOF_MARKET_REVOCATION_CACHE_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    revocation_cache_ms: u64,
    /// Failed logins allowed per user name (case-insensitive) in a window; more are
    /// answered 429 without checking the password.
    #[arg(long, env = "PROOF_MARKET_LOGIN_FAILURES_PER_NAME", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    login_failures_per_name: u64,
    /// Failed logins allowed per client IP (the TCP peer) in a window; more are
    /// answered 429 without checking the password.
    #[arg(long, env = "PROOF_MARKET_LOGIN_FAILURES_PER_IP", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    login_failures_per_ip: u64,
    /// Seconds failed logins are counted for, from the first failure (counted in Redis,
    /// so across all nodes).
    #[arg(long, env = "PROOF_MARKET_LOGIN_WINDOW", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    login_window: u64,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "PROOF_MARKET_HTTP_WORKERS", default_value_t = 0)]
    http_workers: usize,
    /// Matcher threads (0: one per core).
    #[arg(long, env = "PROOF_MARKET_MATCHER_THREADS", default_value_t = 0)]
    matcher_threads: usize,
    /// Threads that build circuit keys and verify proofs (0: one per core).
    #[arg(long, env = "PROOF_MARKET_PROVER_THREADS", default_value_t = 0)]
    prover_threads: usize,
    /// Keygen and verification jobs queued or running before new ones get 503.
    #[arg(long, env = "PROOF_MARKET_PROVER_QUEUE", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    prover_queue: u64,
    /// Threads that hash and check passwords (argon2).
    #[arg(long, env = "PROOF_MARKET_AUTH_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    auth_threads: u64,
    /// Password jobs queued or running before new ones get 503.
    #[arg(long, env = "PROOF_MARKET_AUTH_QUEUE", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    auth_queue: u64,
    /// Threads that compile circuits and evaluate order inputs.
    #[arg(long, env = "PROOF_MARKET_CIRCUIT_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    circuit_threads: u64,
    /// Compile and evaluation jobs queued or running before new ones get 503.
    #[arg(long, env = "PROOF_MARKET_CIRCUIT_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    circuit_queue: u64,
    /// Largest circuit accepted: a table of 2^k rows (statement push refuses larger).
    #[arg(long, env = "PROOF_MARKET_MAX_CIRCUIT_K", default_value_t = proof_market::prover::statements::DEFAULT_MAX_K, value_parser = clap::value_parser!(u32).range(4..=proof_market::prover::halo2::MAX_K as i64))]
    max_circuit_k: u32,
    /// MiB of compiled circuits and their keys kept in memory (least recently used
    /// dropped first).
    #[arg(long, env = "PROOF_MARKET_CIRCUIT_CACHE_MIB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(16..=1 << 20))]
    circuit_cache_mib: u64,
    /// Refused proofs a proposal may push per window before its pushes get 429
    /// unchecked.
    #[arg(long, env = "PROOF_MARKET_MAX_REFUSED_PROOFS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_refused_proofs: u64,
    /// Calls per second per client IP (IPv6: per /64), all nodes together; 0 = off.
    #[arg(long, env = "PROOF_MARKET_RATE_LIMIT_IP", default_value_t = proof_market::market::RateLimits::PER_IP)]
    rate_limit_ip: u32,
    /// Calls per second per user, all nodes together; 0 = off.
    #[arg(long, env = "PROOF_MARKET_RATE_LIMIT_USER", default_value_t = proof_market::market::RateLimits::PER_USER)]
    rate_limit_user: u32,
    /// Seconds of calls a quiet client may send at once (the token buckets' size).
    #[arg(long, env = "PROOF_MARKET_RATE_LIMIT_BURST", default_value_t = proof_market::market::RateLimits::BURST_SECS, value_parser = clap::value_parser!(u32).range(1..=3600))]
    rate_limit_burst: u32,
    /// Orders one user may have open (created or processing) on one statement; 0 = no
    /// limit.
    #[arg(long, env = "PROOF_MARKET_MAX_OPEN_ORDERS", default_value_t = Quotas::OPEN_ORDERS)]
    max_open_orders: u32,
    /// Idempotency-Keys remembered for one user on one statement; 0 = no limit.
    #[arg(long, env = "PROOF_MARKET_MAX_IDEMPOTENCY_KEYS", default_value_t = Quotas::IDEMPOTENCY_KEYS)]
    max_idempotency_keys: u32,
    /// Statements one user may push per day; 0 = no limit.
    #[arg(
        long,
        env = "PROOF_MARKET_MAX_STATEMENTS_PER_DAY",
        default_value_t = 20
    )]
    max_statements_per_day: u64,
    /// Seconds of the --max-refused-proofs window, from a proposal's first refused proof.
    #[arg(long, env = "PROOF_MARKET_REFUSED_PROOF_WINDOW", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    refused_proof_window: u64,
    /// Milliseconds a client has to send a request's head (line and headers); then 408
    /// and the connection is closed.
    #[arg(long, env = "PROOF_MARKET_CLIENT_REQUEST_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    client_request_timeout_ms: u64,
    /// Milliseconds a client has to send a request's whole body; then 408.
    #[arg(long, env = "PROOF_MARKET_BODY_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    body_read_timeout_ms: u64,
    /// Open client connections per HTTP worker; more wait in the listen backlog.
    #[arg(long, env = "PROOF_MARKET_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Largest sign-up and `/_open/auth` body, in bytes.
    #[arg(long, env = "PROOF_MARKET_MAX_ACCOUNT_BODY", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(256..=1 << 20))]
    max_account_body: u64,
    /// Largest request/proposal body, in bytes.
    #[arg(long, env = "PROOF_MARKET_MAX_ORDER_BODY", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1024..=16 << 20))]
    max_order_body: u64,
    /// Largest producer/register body, in bytes.
    #[arg(long, env = "PROOF_MARKET_MAX_PRODUCER_BODY", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1024..=1 << 20))]
    max_producer_body: u64,
    /// MiB of large bodies (beyond each body's first 64 KiB) read at once by this node;
    /// a call that finds it spent gets 503 + Retry-After.
    #[arg(long, env = "PROOF_MARKET_BODY_BUDGET_MIB", default_value_t = 128, value_parser = clap::value_parser!(u64).range(16..=65_536))]
    body_budget_mib: u64,
}

#[derive(clap::Args)]
struct ProducerArgs {
    /// Statement to serve (repeat for several).
    #[arg(long = "statement", alias = "key", required = true)]
    statements: Vec<String>,
    /// Asking price per proof.
    #[arg(long, value_parser = parse_cost, allow_negative_numbers = true)]
    cost: Cost,
    /// Generation time promised, in minutes.
    #[arg(long = "eval-time", alias = "eval_time")]
    eval_time: Option<u32>,
    /// Open proposals to keep per statement.
    #[arg(long = "max-open", alias = "max_open", default_value_t = 2)]
    max_open: usize,
    /// Longest milliseconds between rounds: a round also runs as soon as the live
    /// stream tells of a match or another change to this producer's orders.
    #[arg(long = "poll-ms", default_value_t = 5000)]
    poll_ms: u64,
    /// Poll only: do not follow the market's live stream (`GET /events`).
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Proofs made at once (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Exit after pushing this many proofs (default: run until stopped).
    #[arg(long = "max-proofs")]
    max_proofs: Option<u64>,
    /// Log in as this user (else the token of --auth is used).
    #[arg(long)]
    user: Option<String>,
    /// Password for --user.
    #[arg(long, env = "PROOF_MARKET_PASSWORD", hide_env_values = true)]
    passwd: Option<String>,
}

fn producer(opts: &ClientOpts, a: ProducerArgs) -> anyhow::Result<()> {
    use proof_market::client::{AuthFile, MarketClient};
    use proof_market::producer::{Producer, ProducerConfig};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut client = MarketClient::new(&opts.url, None);
        let (user, credentials) = match (a.user, a.passwd) {
            (Some(u), Some(p)) => {
                client.set_jwt(Some(client.login(&u, &p).await?));
                (u.clone(), Some((u, p)))
            }
            (Some(_), None) => anyhow::bail!("--user needs --passwd (or PROOF_MARKET_PASSWORD)"),
            (None, _) => {
                let auth = AuthFile::load_for(&opts.auth, &opts.url)?;
                client.set_jwt(Some(auth.jwt));
                (auth.user, None)
            }
        };
        let cfg = ProducerConfig {
            statements: a.statements,
            cost: a.cost,
            eval_time: a.eval_time,
            max_open: a.max_open,
            poll: std::time::Duration::from_millis(a.poll_ms.max(10)),
            stream: !a.no_stream,
            threads: a.threads,
            max_proofs: a.max_proofs,
        };
        Producer::new(client, cfg, user, credentials).run().await
    })
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// mimalloc's options (ids of `mi_option_e` in mimalloc.h, v2) that keep a node's memory
/// flat: free pages go back to the OS at once instead of after a delay (argon2's 19 MiB
/// per password check stayed resident otherwise: 55 MB after a burst of logins instead
/// of 35), and arenas reserved from now on are committed as they are used.
fn allocator_returns_memory() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set only stores an option value.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    allocator_returns_memory();
    let listener = std::net::TcpListener::bind(&args.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut redis = RedisTarget::parse(&args.redis_url, args.redis_cluster)
        .map_err(|e| anyhow::anyhow!("--redis-url: {e}"))?;
    if let Some(tls) = RedisTls::load(
        args.redis_ca_file.as_deref(),
        args.redis_client_cert.as_deref(),
        args.redis_client_key.as_deref(),
    )
    .map_err(anyhow::Error::msg)?
    {
        redis = redis.with_tls(tls).map_err(anyhow::Error::msg)?;
    }
    let cluster_secret = ClusterSecret::load(
        std::env::var("PROOF_MARKET_CLUSTER_SECRET").ok().as_deref(),
        args.cluster_secret_file.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("cluster secret: {e}"))?;
    let host = hostname();
    let node_id = args
        .node_id
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("{host}:{}", addr.port()));
    if !proof_market::cluster::is_node_id(&node_id) {
        anyhow::bail!(
            "--node-id must be at most {} bytes without spaces",
            proof_market::cluster::MAX_NODE_ID
        );
    }
    let advertise_url = match args.advertise_url {
        Some(u) => u,
        None if addr.ip().is_unspecified() => format!("http://{host}:{}", addr.port()),
        None => format!("http://{addr}"),
    };
    // Node-to-node calls are plain HTTP on the cluster's private network: signed with
    // the cluster secret, not encrypted.
    if !advertise_url.starts_with("http://") {
        anyhow::bail!(
            "--advertise-url must start with http:// (nodes talk plain HTTP to each other)"
        );
    }
    let cfg = ServeConfig {
        redis,
        node: NodeConfig {
            id: node_id,
            url: advertise_url.trim_end_matches('/').to_owned(),
            lease: std::time::Duration::from_millis(args.lease_ms),
            idempotency_retention: std::time::Duration::from_secs(args.idempotency_retention),
            quotas: Quotas {
                max_open_orders: args.max_open_orders,
                max_idempotency_keys: args.max_idempotency_keys,
            },
            economics: Economics {
                collateral_factor: args.collateral_factor,
                commission_ppm: args.commission_ppm,
                commission_min: args.commission_min,
                default_eval_minutes: args.default_eval_time,
                minute: Duration::from_millis(args.minute_ms),
                sweep_after: Duration::from_millis(args.sweep_after_ms),
            },
        },
        key_prefix: args.key_prefix,
        data_dir: args.data_dir,
        jwt_secret: std::env::var("PROOF_MARKET_JWT_SECRET").ok(),
        cluster_secret,
        token_ttl_secs: args.token_ttl,
        auth: proof_market::auth::AuthPolicy {
            max_age_secs: args.token_max_age,
            revocation_cache: std::time::Duration::from_millis(args.revocation_cache_ms),
            login_failures_per_name: args.login_failures_per_name,
            login_failures_per_ip: args.login_failures_per_ip,
            login_window_secs: args.login_window,
        },
        http_workers: args.http_workers,
        matcher_threads: args.matcher_threads,
        pools: PoolSizes {
            auth: PoolSize {
                threads: args.auth_threads as usize,
                queue: args.auth_queue as usize,
            },
            circuit: PoolSize {
                threads: args.circuit_threads as usize,
                queue: args.circuit_queue as usize,
            },
            verify: PoolSize {
                threads: args.prover_threads,
                queue: args.prover_queue as usize,
            },
        },
        circuits: CircuitPolicy {
            max_k: args.max_circuit_k,
            cache_bytes: (args.circuit_cache_mib as usize) << 20,
        },
        limits: Limits {
            max_refused_proofs: args.max_refused_proofs,
            refused_proof_window_ms: args.refused_proof_window * 1000,
            rate: RateLimits {
                per_ip: args.rate_limit_ip,
                per_user: args.rate_limit_user,
                burst_secs: args.rate_limit_burst,
            },
            max_statements_per_day: args.max_statements_per_day,
            ..Limits::default()
        },
        http: HttpLimits {
            client_request_timeout: Duration::from_millis(args.client_request_timeout_ms),
            max_connections: args.max_connections as usize,
            body: BodyLimits {
                account: args.max_account_body as usize,
                order: args.max_order_body as usize,
                producer: args.max_producer_body as usize,
                read_timeout: Duration::from_millis(args.body_read_timeout_ms),
                budget: Arc::new(BodyBudget::new((args.body_budget_mib as usize) << 20)),
                ..BodyLimits::for_market(&Limits::default())
            },
        },
        archive: args
            .database_url
            .filter(|u| !u.trim().is_empty())
            .map(|url| ArchiveConfig {
                url,
                pool: args.database_pool as usize,
                ca_file: args.database_ca_file,
                retention: Duration::from_secs(args.archive_retention_secs),
                interval: Duration::from_millis(args.archive_interval_ms),
            }),
        event_log_max: args.event_log_max,
        event_resume: Duration::from_secs(args.event_resume_secs),
        live: proof_market::live::LiveConfig {
            max_streams: args.max_event_streams as usize,
            max_streams_per_user: args.max_event_streams_per_user as usize,
            ping: Duration::from_secs(args.event_keepalive_secs),
            ..Default::default()
        },
        web: proof_market::api::page::WebAssets { dir: args.web_dir },
        wallets: WalletConfig {
            signup_credit: args.signup_credit,
            signup_deposit: args.signup_deposit,
            funding_window_ms: args.funding_window_ms,
        },
        admin_token: std::env::var("PROOF_MARKET_ADMIN_TOKEN").ok(),
    };
    actix_web::rt::System::new().block_on(server::run(listener, cfg))
}

/// An amount in units (`0`, `12.5`), in micro-units.
fn parse_amount(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    s.trim()
        .parse::<proof_market::domain::Cost>()
        .map(|c| c.micros())
        .map_err(|e| e.to_string())
}

/// The machine's host name (a pod's name in Kubernetes), for default node ids.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn client(opts: &ClientOpts, cmd: ClientCommand) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(proof_market::cli::run(opts, cmd))
}

/// Settings read only from the environment: secrets, which a command line shows to
/// every user of the machine and a config file is easily copied with.
const ENV_ONLY: &[proof_market::cli::config_file::EnvOnly] = &[
    (
        "PROOF_MARKET_JWT_SECRET",
        "generated into `<data-dir>/jwt-secret`",
        "secret signing the users' tokens: the same on every node of a market",
    ),
    (
        "PROOF_MARKET_CLUSTER_SECRET",
        "unset",
        "the secret nodes sign calls to each other with (or `--cluster-secret-file`)",
    ),
    (
        "PROOF_MARKET_ADMIN_TOKEN",
        "unset (no operator calls)",
        "the operator's token for `/admin` calls (credits)",
    ),
];

/// Global flags that are settings of `serve` too (the others are the client's).
const SERVE_GLOBALS: &[&str] = &["json-logs"];

/// The command line, with the settings of `serve --config FILE` under it.
fn parse_cli() -> Cli {
    use clap::CommandFactory;
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cmd = Cli::command();
    cmd.build();
    let matches = cmd.clone().get_matches_from(&argv);
    if let (Some(("serve", sm)), Some(serve)) = (matches.subcommand(), cmd.find_subcommand("serve"))
    {
        if let Some(path) = sm.get_one::<PathBuf>("config") {
            match proof_market::cli::config_file::extra_args(serve, sm, path, SERVE_GLOBALS) {
                Ok(extra) => argv.extend(extra),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            }
        }
        if sm.get_flag("print_settings") {
            print!(
                "{}",
                proof_market::cli::config_file::settings_table(serve, SERVE_GLOBALS, ENV_ONLY)
            );
            std::process::exit(0);
        }
    }
    Cli::parse_from(argv)
}

fn main() {
    let cli = parse_cli();
    let result = match cli.command {
        Command::Serve(a) => {
            init_logs(cli.json_logs);
            serve(*a)
        }
        Command::Producer(a) => {
            init_logs(cli.json_logs);
            producer(&cli.client, a)
        }
        Command::Client(c) => client(&cli.client, c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
