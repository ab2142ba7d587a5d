//! One live stream (`GET /events`): what it sends first (a greeting, the user's wallet,
//! the events missed since `Last-Event-ID`), then the hub's frames as they come, with a
//! keep-alive comment when idle.

use std::collections::{HashMap, VecDeque};

use actix_web::web::Bytes;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::depth::Orders;
use super::frames::{self, Frame, Position};
use super::hub::{learn_unknown, Permit, Receiver, Subscription};
use crate::domain::Key;
use crate::store::{Store, StoreError};

/// Most events a resume reads from the logs; past it, the stream sends `reset`.
pub const MAX_REPLAY_EVENTS: usize = 100_000;

/// On a cluster, how far before the resume point other statements' logs are read again
/// (their shards' clocks may differ by this much); a client may see those events twice
/// and drops them by id.
const CLUSTER_CLOCK_SLACK_MS: u64 = 1000;

/// What a resume found: the frames missed, the last event number read per statement
/// (live frames at or below it were sent already), or why it cannot resume.
#[derive(Debug, Default)]
pub struct Replay {
    /// Frames missed, oldest first.
    pub frames: Vec<Bytes>,
    /// Statement → the last event number read from its log.
    pub upto: HashMap<Key, u64>,
    /// Set when events may have been lost: the client should re-read its state.
    pub reset: Option<String>,
}

/// Reads what a stream of `user` (and of `statement`'s public frames) missed after
/// `from`: the events of the user's statements (those its wallet sent money to, the
/// resume point's and the one asked for) since then.
pub async fn replay(
    store: &Store,
    user: &str,
    statement: Option<Key>,
    from: Position,
) -> Result<Replay, StoreError> {
    let user = user.to_lowercase();
    let mut stmts: Vec<Key> = store.wallet_own(&user).await?.2;
    stmts.extend([from.stmt]);
    stmts.extend(statement);
    stmts.sort();
    stmts.dedup();
    let slack = if store.is_cluster() {
        CLUSTER_CLOCK_SLACK_MS
    } else {
        0
    };
    let mut out = Replay::default();
    let now = crate::domain::Millis::now().0;
    if from.entry.0.saturating_add(store.resume_window_ms()) < now.saturating_sub(1000) {
        out.reset = Some(format!(
            "Last-Event-ID {} is older than the {} s this market keeps events for; re-read your orders",
            from.id(),
            store.resume_window_ms() / 1000
        ));
        return Ok(out);
    }
    let mut found: Vec<(Position, Frame)> = Vec::new();
    let mut read = 0usize;
    for s in stmts {
        let exact = s == from.stmt;
        let (first, last) = store.log_bounds(s).await?;
        let start = if exact {
            if from.n > last {
                out.reset = Some(format!(
                    "Last-Event-ID {} is ahead of statement {s}'s log (at {last})",
                    from.id()
                ));
                return Ok(out);
            }
            if from.n == last {
                out.upto.insert(s, last);
                continue;
            }
            if first.is_none_or(|f| f > from.n + 1) {
                out.reset = Some(format!(
                    "statement {s}'s events after {} are no longer kept; re-read your orders",
                    from.n
                ));
                return Ok(out);
            }
            from.entry_id()
        } else {
            format!("{}-0", from.entry.0.saturating_sub(slack))
        };
        let mut cursor = start;
        let mut orders = Orders::default();
        loop {
            let (entries, events) = store.events_from(s, &cursor, 256).await?;
            let Some(last_event) = events.last() else {
                break;
            };
            cursor = format!("({}", last_event.id);
            read += events.len();
            if read > MAX_REPLAY_EVENTS {
                out.reset = Some(format!(
                    "more than {MAX_REPLAY_EVENTS} events since Last-Event-ID; re-read your orders"
                ));
                return Ok(out);
            }
            learn_unknown(store, s, &events, &mut orders).await;
            for e in &events {
                if exact && e.n <= from.n {
                    orders.apply(e);
                    continue;
                }
                let Some(pos) = Position::of(s, e) else {
                    continue;
                };
                let known = |k: Key| orders.get(k).cloned();
                if statement == Some(s) {
                    if let Some(f) = frames::public(s, e, &known) {
                        found.push((pos, f));
                    }
                }
                if frames::concerned(e, &known).contains(&user) {
                    if let Some(f) = frames::private(s, e, &user) {
                        found.push((pos, f));
                    }
                }
                orders.apply(e);
                out.upto.insert(s, e.n);
            }
            if entries < 256 {
                break;
            }
        }
    }
    found.sort_by_key(|(p, _)| *p);
    out.frames = found.into_iter().map(|(_, f)| f.bytes).collect();
    Ok(out)
}

/// A stream's state as its body is polled.
pub struct EventStream {
    first: VecDeque<Bytes>,
    user: Receiver,
    statement: Option<Receiver>,
    /// Live frames of a statement at or below this number were replayed already.
    upto: HashMap<Key, u64>,
    ping: tokio::time::Interval,
    done: bool,
    _permit: Permit,
}

impl EventStream {
    /// A stream sending `first`, then what `sub` receives.
    pub fn new(
        sub: Subscription,
        first: Vec<Bytes>,
        upto: HashMap<Key, u64>,
        ping: std::time::Duration,
    ) -> EventStream {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        EventStream {
            first: first.into(),
            user: sub.user,
            statement: sub.statement,
            upto,
            ping,
            done: false,
            _permit: sub.permit,
        }
    }

    fn fresh(&self, f: &Frame) -> bool {
        match f.pos {
            Some(p) => self.upto.get(&p.stmt).is_none_or(|n| p.n > *n),
            None => true,
        }
    }

    /// The next bytes to send; `None` ends the stream.
    pub async fn next(&mut self) -> Option<Bytes> {
        if let Some(b) = self.first.pop_front() {
            return Some(b);
        }
        if self.done {
            return None;
        }
        loop {
            let got = tokio::select! {
                r = self.user.recv() => r,
                r = async {
                    match self.statement.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => r,
                _ = self.ping.tick() => return Some(Frame::ping()),
            };
            match got {
                Ok(f) if self.fresh(&f) => return Some(f.bytes.clone()),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    // Fell behind: end it; the client reconnects with its
                    // Last-Event-ID and reads the rest from the log.
                    self.done = true;
                    let f = frames::state(
                        "lagged",
                        &json!({"skipped": n, "reason": "this stream fell behind; reconnect with Last-Event-ID"}),
                    );
                    return Some(f.bytes);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The stream as an HTTP body.
    pub fn body(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + 'static {
        futures_util::stream::unfold(self, |mut s| async move {
            let b = s.next().await?;
            Some((Ok(b), s))
        })
    }
}
