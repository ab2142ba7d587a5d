//! The producer daemon: keeps proposals open, proves what matches, pushes the proofs.
//!
//! `proof-market producer --statement K --cost C` replaces the original market's
//! separate proof-producer scripts. A round runs when the market's live stream
//! (`GET /events`) tells of a change to its orders (matched, rolled back, withdrawn,
//! proved), and every `--poll-ms` in any case (the fallback when the stream is down or
//! turned off with `--no-stream`). Each round it (1) finds its proposals that are
//! `processing` — matched but not yet proved, including those left over from before a
//! restart of the daemon or of the market — proves each on a bounded set of threads and
//! pushes the proof; then (2) tops up its open proposals to `--max-open` per statement.
//! Every call goes over HTTP through the client library ([`crate::client`]), with its
//! retries; any failure is logged and the next round tries again, so the daemon rides out
//! market restarts.
//!
//! It sits beside [`crate::cli`], not inside [`crate::client`]: like the command line it is
//! a program built on the client library, and unlike the library it proves (it needs the
//! circuit compiler and the prover), which the library must not pull in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use crate::client::{ClientError, ListFilter, MarketClient};
use crate::domain::{Cost, Side};
use crate::input::PublicInput;
use crate::prover::statements::StatementCircuit;

/// What the daemon does.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Statements to serve.
    pub statements: Vec<String>,
    /// Asking price of each proposal.
    pub cost: Cost,
    /// Generation time promised, in minutes.
    pub eval_time: Option<u32>,
    /// Open proposals to keep per statement.
    pub max_open: usize,
    /// Longest pause between rounds (a stream event starts one sooner).
    pub poll: Duration,
    /// Whether rounds follow the live stream (else only the poll).
    pub stream: bool,
    /// Proofs made at once (0: one per core).
    pub threads: usize,
    /// Stop after this many proofs (None: run until killed).
    pub max_proofs: Option<u64>,
}

/// A running producer.
pub struct Producer {
    client: MarketClient,
    cfg: ProducerConfig,
    circuits: HashMap<String, Arc<StatementCircuit>>,
    slots: Arc<Semaphore>,
    proved: u64,
    /// Our user name (to list our own proposals).
    user: String,
    /// Re-login when the token expires.
    credentials: Option<(String, String)>,
    /// Woken by the stream watcher when the market tells of a change to our orders.
    wake: Arc<Notify>,
    /// The token the watcher opens the stream with (renewed on re-login).
    token: Arc<std::sync::Mutex<Option<String>>>,
}

/// The events that call for a round: our proposals matched, released or settled.
const WAKING: &[&str] = &[
    "matched",
    "rolled_back",
    "withdrawn",
    "proved",
    "resold",
    "reset",
    "lagged",
];

/// Follows the caller's live stream for as long as the daemon runs, waking `wake` on
/// each event of [`WAKING`]; reconnects with the last event id when the stream drops.
async fn watch(
    client: MarketClient,
    token: Arc<std::sync::Mutex<Option<String>>>,
    wake: Arc<Notify>,
) {
    let mut last: Option<String> = None;
    let mut down = false;
    loop {
        let mut c = client.clone();
        c.set_jwt(token.lock().unwrap_or_else(|p| p.into_inner()).clone());
        match c.events(None, last.as_deref()).await {
            Ok(mut stream) => {
                tracing::info!(
                    resumed = last.is_some(),
                    "following the market's live stream"
                );
                down = false;
                // Anything missed while it was down.
                wake.notify_one();
                loop {
                    match stream.next().await {
                        Ok(Some(e)) if WAKING.contains(&e.event.as_str()) => wake.notify_one(),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(error = %e, "live stream lost; reconnecting");
                            break;
                        }
                    }
                }
                last = stream.last_id().map(str::to_owned);
            }
            Err(e) => {
                if !down {
                    tracing::warn!(error = %e, "cannot open the live stream; polling until it is back");
                }
                down = true;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn keys_of(list: &Value) -> Vec<(String, Option<String>)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some((
                        p["_key"].as_str()?.to_owned(),
                        p["request_key"].as_str().map(str::to_owned),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Producer {
    /// A producer acting through `client` (already logged in).
    pub fn new(
        client: MarketClient,
        cfg: ProducerConfig,
        user: String,
        credentials: Option<(String, String)>,
    ) -> Producer {
        let threads = if cfg.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            cfg.threads
        };
        let token = Arc::new(std::sync::Mutex::new(client.jwt().map(str::to_owned)));
        Producer {
            client,
            cfg,
            circuits: HashMap::new(),
            slots: Arc::new(Semaphore::new(threads)),
            proved: 0,
            user,
            credentials,
            wake: Arc::new(Notify::new()),
            token,
        }
    }

    /// Runs rounds until `max_proofs` proofs are pushed (or forever).
    pub async fn run(&mut self) -> anyhow::Result<()> {
        tracing::info!(statements = ?self.cfg.statements, cost = %self.cfg.cost, max_open = self.cfg.max_open, stream = self.cfg.stream, "producer started");
        let watcher = self.cfg.stream.then(|| {
            tokio::spawn(watch(
                self.client.clone(),
                self.token.clone(),
                self.wake.clone(),
            ))
        });
        let done = self.rounds().await;
        if let Some(w) = watcher {
            w.abort();
        }
        done
    }

    async fn rounds(&mut self) -> anyhow::Result<()> {
        loop {
            for stmt in self.cfg.statements.clone() {
                if let Err(e) = self.round(&stmt).await {
                    if matches!(e, ClientError::Http { status: 401, .. }) {
                        self.relogin().await?;
                    } else {
                        tracing::warn!(statement = %stmt, error = %e, "round failed; retrying");
                    }
                }
                if self.cfg.max_proofs.is_some_and(|m| self.proved >= m) {
                    tracing::info!(proved = self.proved, "producer done");
                    return Ok(());
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.cfg.poll) => {}
            }
        }
    }

    async fn relogin(&mut self) -> anyhow::Result<()> {
        let (user, pass) = self.credentials.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "the token was refused and no --user/--passwd was given to log in again"
            )
        })?;
        let jwt = self.client.login(&user, &pass).await?;
        self.client.set_jwt(Some(jwt.clone()));
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(jwt);
        tracing::info!(%user, "logged in again");
        Ok(())
    }

    async fn circuit(&mut self, stmt: &str) -> Result<Arc<StatementCircuit>, ClientError> {
        if let Some(c) = self.circuits.get(stmt) {
            return Ok(c.clone());
        }
        let st = self.client.get_statement(Some(stmt)).await?;
        let ir = st["definition"]["proving_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let c = tokio::task::spawn_blocking(move || StatementCircuit::compile(&ir))
            .await
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .map_err(ClientError::Invalid)?;
        let c = Arc::new(c);
        self.circuits.insert(stmt.to_owned(), c.clone());
        Ok(c)
    }

    async fn mine(&self, stmt: &str, status: &str) -> Result<Value, ClientError> {
        self.client
            .list_orders(
                Side::Proposal,
                &ListFilter {
                    status: Some(status.into()),
                    sender: Some(self.user.clone()),
                    statement_key: Some(stmt.into()),
                    limit: Some(1000),
                    skipped: None,
                },
            )
            .await
    }

    async fn round(&mut self, stmt: &str) -> Result<(), ClientError> {
        let circuit = self.circuit(stmt).await?;
        // 1. Prove and push what is matched, several at once.
        let matched = keys_of(&self.mine(stmt, "processing").await?);
        let mut jobs = Vec::new();
        for (proposal, request) in matched {
            let Some(request) = request else { continue };
            let req = self.client.get_order(Side::Request, &request).await?;
            let input = PublicInput::from_json(&req["input"])
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
            let circuit = circuit.clone();
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
            jobs.push(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let started = Instant::now();
                let r = circuit.prove(&input.values);
                (proposal, request, r, started.elapsed())
            }));
        }
        for job in jobs {
            let (proposal, request, r, took) =
                job.await.map_err(|e| ClientError::Invalid(e.to_string()))?;
            match r {
                Ok((_, proof)) => {
                    let hex = format!("0x{}", hex::encode(&proof));
                    match self.client.push_proof(&hex, Some(&proposal), None).await {
                        Ok(rec) => {
                            self.proved += 1;
                            tracing::info!(%proposal, %request, proof = %rec["_key"], prove_ms = took.as_millis() as u64, "proof pushed");
                        }
                        // Pushed by an earlier run whose answer was lost: nothing to do.
                        Err(ClientError::Http {
                            status: 409,
                            message,
                            ..
                        }) => {
                            tracing::info!(%proposal, %message, "already settled")
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    tracing::error!(%proposal, %request, error = %e, "cannot prove this request")
                }
            }
        }
        // 2. Keep max_open proposals resting, as far as the deposit backs them: each
        // holds collateral from it until its proof is in, so a producer never takes on
        // more work than its deposit covers. When it is short, wait for proofs (which
        // return collateral) or a bigger deposit.
        let open = keys_of(&self.mine(stmt, "created").await?).len();
        for _ in open..self.cfg.max_open {
            match self
                .client
                .push_proposal(stmt, self.cfg.cost, self.cfg.eval_time, None)
                .await
            {
                Ok(p) => {
                    tracing::info!(statement = %stmt, proposal = %p["_key"], status = %p["status"], "proposal placed")
                }
                Err(ClientError::Http {
                    status: 400,
                    message,
                    ..
                }) if message.contains("deposit") => {
                    tracing::info!(statement = %stmt, %message, "deposit backs no more proposals now; waiting");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
