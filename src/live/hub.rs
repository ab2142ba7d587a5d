//! The node's hub of live streams: who is subscribed to what, and the one task that
//! reads the statement logs and wallet ledgers and hands each frame to the streams it
//! concerns.
//!
//! Every node serves streams on its own, from Redis, whichever node owns a statement:
//! `transitions.lua` and `wallet.lua` publish a hint on the `events` channel each time
//! a log or a ledger grows; the hub reads on from its cursor and fans the frames out
//! through one bounded broadcast channel per statement and per user. Hints arrive in
//! order over one connection; when it drops, the hub subscribes again, reads on from
//! its cursors and sends user streams a `reset` (what untracked statements did
//! meanwhile is unknown to it). Statements with a stream of their own are also read
//! once a second regardless, and event numbers are checked to follow each other, so a
//! lost event sends its streams a `reset`. Frames are rendered once per node, not per
//! stream.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::depth::Orders;
use super::frames::{self, Frame, Known};
use crate::domain::Key;
use crate::error::MarketError;
use crate::store::{Event, Store, StoreError};

/// What a node allows of live streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveConfig {
    /// Streams open at once on this node.
    pub max_streams: usize,
    /// Streams one user may hold open at once on this node.
    pub max_streams_per_user: usize,
    /// Frames a stream may fall behind before it is closed (its client reconnects
    /// and resumes from the log).
    pub buffer: usize,
    /// Time between keep-alive comments on an idle stream.
    pub ping: Duration,
}

impl LiveConfig {
    /// Default of `--max-event-streams`.
    pub const MAX_STREAMS: usize = 10_000;
    /// Default of `--max-event-streams-per-user`.
    pub const MAX_STREAMS_PER_USER: usize = 8;
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_streams: Self::MAX_STREAMS,
            max_streams_per_user: Self::MAX_STREAMS_PER_USER,
            buffer: 1024,
            ping: Duration::from_secs(15),
        }
    }
}

type Sender = broadcast::Sender<Arc<Frame>>;
/// The frames a stream receives.
pub type Receiver = broadcast::Receiver<Arc<Frame>>;

#[derive(Default)]
struct Registry {
    statements: HashMap<Key, Sender>,
    users: HashMap<String, Sender>,
    streams_of: HashMap<String, usize>,
    streams: usize,
    closed: bool,
}

enum Cmd {
    /// A stream of this statement opened: track it and send its book.
    Track(Key),
}

/// The hub; see the module docs.
pub struct Hub {
    store: Store,
    config: LiveConfig,
    reg: Mutex<Registry>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

/// One stream's place in the hub: counted against the caps until dropped.
pub struct Permit {
    hub: Arc<Hub>,
    user: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut r = self.hub.reg();
        r.streams = r.streams.saturating_sub(1);
        if let Some(n) = r.streams_of.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                r.streams_of.remove(&self.user);
            }
        }
        crate::metrics::metrics().live_streams(r.streams);
    }
}

/// What a new stream receives: the user's frames and, when it asked for one, a
/// statement's public frames.
pub struct Subscription {
    /// Counts the stream against the caps while it lives.
    pub permit: Permit,
    /// The user's own frames.
    pub user: Receiver,
    /// The statement's public frames.
    pub statement: Option<Receiver>,
}

impl Hub {
    /// Starts the hub's reading task on the current runtime.
    pub fn start(store: Store, config: LiveConfig) -> Arc<Hub> {
        let (tx, rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            store,
            config,
            reg: Mutex::new(Registry::default()),
            cmds: tx,
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move { Reader::new(weak, rx).run().await });
        hub
    }

    fn reg(&self) -> MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caps and timings in force.
    pub fn config(&self) -> LiveConfig {
        self.config
    }

    /// The store streams read from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Opens a stream for `user` (lowercased here), with `statement`'s public frames
    /// when given; refused with 429 past a cap and 503 once the node is stopping.
    pub fn subscribe(
        self: &Arc<Self>,
        user: &str,
        statement: Option<Key>,
    ) -> Result<Subscription, MarketError> {
        let user = user.to_lowercase();
        let mut r = self.reg();
        if r.closed {
            return Err(MarketError::Unavailable {
                message: "this node is stopping; reconnect to another".into(),
                retry_after_secs: 1,
            });
        }
        let mine = r.streams_of.get(&user).copied().unwrap_or(0);
        if mine >= self.config.max_streams_per_user {
            return Err(MarketError::TooManyRequests {
                message: format!(
                    "{user} has {mine} event streams open on this node, the most allowed; \
                     close one first"
                ),
                retry_after_secs: 5,
            });
        }
        if r.streams >= self.config.max_streams {
            return Err(MarketError::Unavailable {
                message: format!(
                    "this node serves {} event streams, its most; try another node",
                    r.streams
                ),
                retry_after_secs: 5,
            });
        }
        let cap = self.config.buffer;
        let user_rx = r
            .users
            .entry(user.clone())
            .or_insert_with(|| broadcast::channel(cap).0)
            .subscribe();
        let stmt_rx = statement.map(|s| {
            r.statements
                .entry(s)
                .or_insert_with(|| broadcast::channel(cap).0)
                .subscribe()
        });
        r.streams += 1;
        *r.streams_of.entry(user.clone()).or_default() += 1;
        crate::metrics::metrics().live_streams(r.streams);
        drop(r);
        if let Some(s) = statement {
            let _ = self.cmds.send(Cmd::Track(s));
        }
        Ok(Subscription {
            permit: Permit {
                hub: self.clone(),
                user,
            },
            user: user_rx,
            statement: stmt_rx,
        })
    }

    /// Ends every stream (their channels close) and refuses new ones: the node stops.
    pub fn close(&self) {
        let mut r = self.reg();
        r.closed = true;
        r.statements.clear();
        r.users.clear();
    }

    /// Streams open on this node.
    pub fn streams(&self) -> usize {
        self.reg().streams
    }

    fn statement_sender(&self, stmt: Key) -> Option<Sender> {
        self.reg()
            .statements
            .get(&stmt)
            .filter(|s| s.receiver_count() > 0)
            .cloned()
    }

    /// The senders of the users among `users` that have streams here.
    fn user_senders(&self, users: &[String]) -> Vec<(String, Sender)> {
        let r = self.reg();
        users
            .iter()
            .filter_map(|u| {
                r.users
                    .get(u)
                    .filter(|s| s.receiver_count() > 0)
                    .map(|s| (u.clone(), s.clone()))
            })
            .collect()
    }

    fn has_users(&self) -> bool {
        self.reg().users.values().any(|s| s.receiver_count() > 0)
    }

    fn wants(&self, stmt: Key) -> bool {
        let r = self.reg();
        r.statements
            .get(&stmt)
            .is_some_and(|s| s.receiver_count() > 0)
            || r.users.values().any(|s| s.receiver_count() > 0)
    }

    /// Drops the channels nobody listens to.
    fn prune(&self) {
        let mut r = self.reg();
        r.statements.retain(|_, s| s.receiver_count() > 0);
        r.users.retain(|_, s| s.receiver_count() > 0);
    }

    /// Sends `reset` to every user stream and to `stmt`'s (or every statement's).
    fn reset_all(&self, reason: &str, stmt: Option<Key>) {
        let f = Arc::new(frames::state("reset", &json!({ "reason": reason })));
        let r = self.reg();
        for s in r.users.values() {
            let _ = s.send(f.clone());
        }
        for (k, s) in &r.statements {
            if stmt.is_none_or(|x| x == *k) {
                let _ = s.send(f.clone());
            }
        }
    }
}

/// Entries read from a log at a time.
const PAGE: usize = 256;
/// A statement nobody has listened to for this long is no longer tracked.
const IDLE: Duration = Duration::from_secs(30);

/// A statement the reader follows.
struct Tracked {
    /// XRANGE start of the next read: `(<id>` after the last entry read, or `<id>`.
    cursor: String,
    /// The number of the last event read (to notice a gap).
    last_n: Option<u64>,
    orders: Orders,
    used: Instant,
}

/// The hub's reading task.
struct Reader {
    hub: std::sync::Weak<Hub>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    tracked: HashMap<Key, Tracked>,
    /// Each followed wallet's ledger cursor.
    wallets: HashMap<String, String>,
}

/// A hint from the `events` channel.
enum Hint {
    Statement(Key, String),
    Wallet(String, String),
}

fn parse_hint(payload: &str) -> Option<Hint> {
    let mut it = payload.splitn(3, ' ');
    match (it.next()?, it.next()?, it.next()) {
        ("w", id, Some(name)) => Some(Hint::Wallet(name.to_owned(), id.to_owned())),
        (stmt, id, None) => Some(Hint::Statement(Key::parse(stmt)?, id.to_owned())),
        _ => None,
    }
}

impl Reader {
    fn new(hub: std::sync::Weak<Hub>, cmds: mpsc::UnboundedReceiver<Cmd>) -> Reader {
        Reader {
            hub,
            cmds,
            tracked: HashMap::new(),
            wallets: HashMap::new(),
        }
    }

    async fn run(mut self) {
        let mut failed = false;
        loop {
            let Some(store) = self.hub.upgrade().map(|h| h.store.clone()) else {
                return;
            };
            let pubsub = match store.subscribe_events().await {
                Ok(p) => p,
                Err(e) => {
                    if !failed {
                        tracing::warn!(error = %e, "live streams: cannot subscribe to the events channel; retrying");
                    }
                    failed = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if failed {
                tracing::info!("live streams: events channel subscribed again");
                // Statements tracked catch up from their cursors below; what other
                // statements did meanwhile for users' streams is unknown to them.
                if let Some(h) = self.hub.upgrade() {
                    h.reset_all(
                        "this node lost its event feed for a while; re-read your orders",
                        None,
                    );
                }
                self.wallets.clear();
            }
            let mut msgs = pubsub.into_on_message();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let mut stmts: Vec<(Key, Option<String>)> = Vec::new();
                let mut wallets: Vec<(String, String)> = Vec::new();
                let mut tracks: Vec<Key> = Vec::new();
                let note = |m: redis::Msg,
                            stmts: &mut Vec<(Key, Option<String>)>,
                            wallets: &mut Vec<(String, String)>| {
                    let Ok(p) = m.get_payload::<String>() else {
                        return;
                    };
                    match parse_hint(&p) {
                        Some(Hint::Statement(k, id)) => stmts.push((k, Some(id))),
                        Some(Hint::Wallet(u, id)) => wallets.push((u, id)),
                        None => {}
                    }
                };
                tokio::select! {
                    m = msgs.next() => match m {
                        Some(m) => note(m, &mut stmts, &mut wallets),
                        None => {
                            tracing::warn!("live streams: the events channel closed; subscribing again");
                            failed = true;
                            break;
                        }
                    },
                    c = self.cmds.recv() => match c {
                        Some(Cmd::Track(s)) => tracks.push(s),
                        None => return,
                    },
                    _ = tick.tick() => {
                        // Statements someone watches are read regardless of hints
                        // (bounded by the streams open); the rest follow their hints.
                        if let Some(h) = self.hub.upgrade() {
                            stmts.extend(
                                self.tracked
                                    .keys()
                                    .filter(|k| h.statement_sender(**k).is_some())
                                    .map(|k| (*k, None)),
                            );
                        }
                        self.housekeeping();
                    }
                }
                // Everything already waiting, read in one round.
                for _ in 0..10_000 {
                    match msgs.next().now_or_never() {
                        Some(Some(m)) => note(m, &mut stmts, &mut wallets),
                        Some(None) | None => break,
                    }
                }
                while let Ok(Cmd::Track(s)) = self.cmds.try_recv() {
                    tracks.push(s);
                }
                let Some(hub) = self.hub.upgrade() else {
                    return;
                };
                self.round(&hub, stmts, wallets, tracks).await;
            }
        }
    }

    fn housekeeping(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        hub.prune();
        let now = Instant::now();
        for (k, t) in self.tracked.iter_mut() {
            if hub.wants(*k) {
                t.used = now;
            }
        }
        self.tracked
            .retain(|_, t| now.duration_since(t.used) < IDLE);
        let r = hub.reg();
        self.wallets.retain(|u, _| r.users.contains_key(u));
    }

    async fn round(
        &mut self,
        hub: &Arc<Hub>,
        stmts: Vec<(Key, Option<String>)>,
        wallets: Vec<(String, String)>,
        tracks: Vec<Key>,
    ) {
        let mut done: HashSet<Key> = HashSet::new();
        for s in tracks {
            if let Err(e) = self.track(hub, s, None).await {
                tracing::warn!(statement = %s, error = %e, "live streams: cannot read the statement");
                continue;
            }
            self.read(hub, s).await;
            done.insert(s);
            // A new stream of it waits for its book.
            if let (Some(tx), Some(t)) = (hub.statement_sender(s), self.tracked.get(&s)) {
                let _ = tx.send(Arc::new(book_frame(s, &t.orders)));
            }
        }
        for (s, hint) in stmts {
            if done.contains(&s) || !hub.wants(s) {
                continue;
            }
            if !self.tracked.contains_key(&s) {
                if let Err(e) = self.track(hub, s, hint).await {
                    tracing::warn!(statement = %s, error = %e, "live streams: cannot read the statement");
                    continue;
                }
            }
            self.read(hub, s).await;
            done.insert(s);
        }
        for (user, id) in wallets {
            let senders = hub.user_senders(std::slice::from_ref(&user));
            let Some((_, tx)) = senders.into_iter().next() else {
                continue;
            };
            let from = self.wallets.get(&user).cloned().unwrap_or(id);
            match hub.store.wallet_ledger_from(&user, &from, PAGE).await {
                Ok(entries) => {
                    for e in &entries {
                        let _ = tx.send(Arc::new(frames::wallet_movement(e)));
                    }
                    if let Some(e) = entries.last() {
                        self.wallets
                            .insert(user.clone(), format!("({}-{}", e.at, e.seq));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live streams: cannot read a wallet ledger")
                }
            }
        }
    }

    /// Starts following `stmt`: from the entry `from` (a hint's) on, or from its
    /// next entry.
    async fn track(
        &mut self,
        hub: &Hub,
        stmt: Key,
        from: Option<String>,
    ) -> Result<(), StoreError> {
        if let Some(t) = self.tracked.get_mut(&stmt) {
            t.used = Instant::now();
            return Ok(());
        }
        let cursor = match from {
            Some(id) => id,
            None => match hub.store.last_entry_id(stmt).await? {
                Some(id) => format!("({id}"),
                None => "-".to_owned(),
            },
        };
        // Read after the cursor was fixed: the log from it on may repeat what the
        // read already shows, which changes nothing (see `depth`).
        let open = hub.store.open_orders(stmt).await?;
        self.tracked.insert(
            stmt,
            Tracked {
                cursor,
                last_n: None,
                orders: Orders::from_open(&open),
                used: Instant::now(),
            },
        );
        Ok(())
    }

    /// Reads `stmt`'s log on from its cursor and sends the frames.
    async fn read(&mut self, hub: &Hub, stmt: Key) {
        let Some(t) = self.tracked.get_mut(&stmt) else {
            return;
        };
        let mut depth_changed = false;
        loop {
            let (entries, events) = match hub.store.events_from(stmt, &t.cursor, PAGE).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(statement = %stmt, error = %e, "live streams: cannot read the log");
                    return;
                }
            };
            let Some(last) = events.last() else {
                break;
            };
            let cursor = format!("({}", last.id);
            if let (Some(prev), Some(first)) = (t.last_n, events.first()) {
                if first.n > prev + 1 {
                    tracing::warn!(statement = %stmt, from = prev + 1, to = first.n - 1, "live streams: events trimmed before they were read");
                    hub.reset_all(
                        "events were lost before this node read them; re-read",
                        Some(stmt),
                    );
                }
            }
            let events: Vec<Event> = events
                .into_iter()
                .filter(|e| t.last_n.is_none_or(|n| e.n > n))
                .collect();
            deliver(hub, stmt, &events, &mut t.orders, &mut depth_changed).await;
            t.last_n = events.last().map(|e| e.n).or(t.last_n);
            t.cursor = cursor;
            if entries < PAGE {
                break;
            }
        }
        if depth_changed {
            if let Some(tx) = hub.statement_sender(stmt) {
                let _ = tx.send(Arc::new(book_frame(stmt, &t.orders)));
            }
        }
    }
}

/// Sends the frames of `events` of `stmt` to the statement's streams and to the users
/// each concerns, keeping `orders` up to date.
async fn deliver(hub: &Hub, stmt: Key, events: &[Event], orders: &mut Orders, changed: &mut bool) {
    let public = hub.statement_sender(stmt);
    if hub.has_users() {
        learn_unknown(&hub.store, stmt, events, orders).await;
    }
    for e in events {
        let known = |k: Key| orders.get(k).cloned();
        if let Some(tx) = &public {
            if let Some(f) = frames::public(stmt, e, &known) {
                let _ = tx.send(Arc::new(f));
            }
        }
        let users = frames::concerned(e, &known);
        for (user, tx) in hub.user_senders(&users) {
            if let Some(f) = frames::private(stmt, e, &user) {
                let _ = tx.send(Arc::new(f));
            }
        }
        *changed |= orders.apply(e);
    }
}

/// Reads from Redis the orders `events` name that `orders` does not know yet.
pub(super) async fn learn_unknown(store: &Store, stmt: Key, events: &[Event], orders: &mut Orders) {
    let unknown = orders.unknown(events);
    if unknown.is_empty() {
        return;
    }
    match store.get_orders(stmt, &unknown).await {
        Ok(found) => {
            for o in &found {
                orders.learn(o.key, Known::of(o));
            }
        }
        Err(e) => tracing::warn!(statement = %stmt, error = %e, "live streams: cannot read orders"),
    }
}

/// The `book` frame of `stmt`.
pub(super) fn book_frame(stmt: Key, orders: &Orders) -> Frame {
    let mut v = orders.book();
    v["statement_key"] = json!(stmt.to_string());
    frames::state("book", &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_parse_and_garbage_is_ignored() {
        assert!(
            matches!(parse_hint("12 1700-0"), Some(Hint::Statement(Key(12), id)) if id == "1700-0")
        );
        assert!(
            matches!(parse_hint("w 1700-1 al ice"), Some(Hint::Wallet(u, id)) if u == "al ice" && id == "1700-1")
        );
        for bad in ["", "x 1-0", "12", "w 1-0"] {
            assert!(parse_hint(bad).is_none(), "{bad}");
        }
    }
}
