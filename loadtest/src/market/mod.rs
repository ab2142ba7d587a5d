//! Speaking the market's HTTP API: the changeable target URL, simulated users (one
//! connection pool each) and the population a run drives. Setting users and statements
//! up is in [`setup`]; the bodies the harness sends and the answer fields it reads are in
//! [`wire`].

mod setup;
mod wire;

pub use setup::{example_proof, get_json, populate, populate_spread, prove_input};
pub use wire::{proof_body, proposal_body, request_body, OrderAnswer};

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::header::HeaderValue;

use crate::http1::Pool;

/// The market root path.
pub const ROOT: &str = "/_db/market/v0_0";

/// Base URL of the node under test. It changes when the harness restarts the node (a
/// restarted node listens on a new port), so calls read it each time.
#[derive(Debug)]
pub struct Target {
    base: RwLock<(Arc<str>, SocketAddr)>,
}

/// The socket address of an `http://` base URL.
pub fn socket_addr(base: &str) -> Result<SocketAddr> {
    let url = reqwest::Url::parse(base)?;
    url.socket_addrs(|| Some(80))?
        .into_iter()
        .next()
        .with_context(|| format!("no address for {base}"))
}

impl Target {
    /// A target at `base` (already checked to be loopback).
    pub fn new(base: &str) -> Result<Target> {
        Ok(Target {
            base: RwLock::new((Arc::from(base), socket_addr(base)?)),
        })
    }

    /// The current base URL.
    pub fn base(&self) -> Arc<str> {
        self.base
            .read()
            .map(|b| b.0.clone())
            .unwrap_or_else(|e| e.into_inner().0.clone())
    }

    /// The current socket address.
    pub fn addr(&self) -> SocketAddr {
        self.base
            .read()
            .map(|b| b.1)
            .unwrap_or_else(|e| e.into_inner().1)
    }

    /// Points at a new base URL (after a restart).
    pub fn set(&self, base: &str) -> Result<()> {
        let addr = socket_addr(base)?;
        let mut b = self.base.write().unwrap_or_else(|e| e.into_inner());
        *b = (Arc::from(base), addr);
        Ok(())
    }
}

/// Order side: the checker's, so that acknowledged orders go to it as they are.
pub use market_invariants::Kind;

/// An order a simulated user placed.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    /// Its key.
    pub key: u64,
    /// Its side.
    pub kind: Kind,
}

/// What a simulated user remembers between calls (bounded).
#[derive(Debug, Default)]
pub struct UserState {
    /// Recently placed orders, newest last.
    pub recent: VecDeque<Placed>,
    /// Own proposals known to be matched and not yet proved.
    pub matched: VecDeque<u64>,
}

/// How many recent orders and matched proposals a user remembers.
const MEMORY: usize = 64;

impl UserState {
    /// Remembers a placed order.
    pub fn placed(&mut self, p: Placed) {
        if self.recent.len() >= MEMORY {
            self.recent.pop_front();
        }
        self.recent.push_back(p);
    }

    /// Remembers an own matched proposal.
    pub fn matched(&mut self, proposal: u64) {
        if self.matched.len() >= MEMORY {
            self.matched.pop_front();
        }
        self.matched.push_back(proposal);
    }
}

/// The node a simulated user is pinned to (several nodes): its calls all go there.
#[derive(Debug, Clone)]
pub struct Home {
    /// Index of the node among the market's nodes.
    pub index: usize,
    /// The node.
    pub target: Arc<Target>,
}

/// One simulated requester or producer: its own HTTP connection pool and token.
#[derive(Debug)]
pub struct SimUser {
    /// The node this user calls, when pinned to one (else the run's target).
    pub home: Option<Home>,
    /// The connection pool of the measured calls; only this user uses it.
    pub pool: Pool,
    /// The `Authorization: Bearer <jwt>` header line (CRLF-terminated), for `pool`.
    pub auth_text: String,
    /// A reqwest client for setup and out-of-band reads (not measured).
    pub http: reqwest::Client,
    /// `Bearer <jwt>`.
    pub auth: HeaderValue,
    /// What it remembers.
    pub state: Mutex<UserState>,
}

/// The HTTP client of one simulated user.
pub fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Users and statements a run drives.
#[derive(Debug)]
pub struct Population {
    /// Users that place requests.
    pub requesters: Vec<Arc<SimUser>>,
    /// Users that place proposals and push proofs.
    pub producers: Vec<Arc<SimUser>>,
    /// Statement keys.
    pub statements: Vec<u64>,
    /// Several nodes: statement → index of the node owning it (empty otherwise), to
    /// tell local orders from forwarded ones.
    pub owners: HashMap<u64, usize>,
    /// The nodes by index when orders go to their statement's owner directly (as the
    /// market's client library sends them) instead of to the user's node; empty: they
    /// go to the user's node, which forwards them.
    pub direct: Vec<Arc<Target>>,
}

impl Population {
    /// A population of users that need no login (the baseline server ignores tokens).
    pub fn anonymous(users: usize) -> Result<Population> {
        let mk = |_: usize| -> Result<Arc<SimUser>> {
            Ok(Arc::new(SimUser {
                home: None,
                pool: Pool::new(),
                auth_text: "Authorization: Bearer baseline\r\n".into(),
                http: http_client()?,
                auth: HeaderValue::from_static("Bearer baseline"),
                state: Mutex::new(UserState::default()),
            }))
        };
        let half = users.max(2) / 2;
        Ok(Population {
            requesters: (0..half).map(mk).collect::<Result<_>>()?,
            producers: (half..users.max(2)).map(mk).collect::<Result<_>>()?,
            statements: vec![1],
            owners: HashMap::new(),
            direct: Vec::new(),
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.requesters.len() + self.producers.len()
    }

    /// `(entry node, owner node)` of an order `user` places on `statement`, when the
    /// user is pinned to a node and the statement's owner is known.
    pub fn route(&self, user: &SimUser, statement: u64) -> Option<(usize, usize)> {
        let owner = *self.owners.get(&statement)?;
        if !self.direct.is_empty() {
            return Some((owner, owner));
        }
        let entry = user.home.as_ref()?.index;
        Some((entry, owner))
    }

    /// The node an order on `statement` is sent to instead of the user's, when orders
    /// go to their statement's owner directly.
    pub fn direct_to(&self, statement: u64) -> Option<SocketAddr> {
        let owner = *self.owners.get(&statement)?;
        Some(self.direct.get(owner)?.addr())
    }
}

#[cfg(test)]
mod tests {
    use super::setup::home_of;
    use super::*;

    #[test]
    fn users_spread_round_robin_and_routes_classify() {
        let homes: Vec<usize> = (0..7).map(|i| home_of(i, 3)).collect();
        assert_eq!(homes, vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(home_of(5, 1), 0);
        assert_eq!(home_of(5, 0), 0);
        let nodes: Vec<Arc<Target>> = (1..=3)
            .map(|p| Arc::new(Target::new(&format!("http://127.0.0.1:{p}")).unwrap()))
            .collect();
        let user = |home: Option<usize>| SimUser {
            home: home.map(|i| Home {
                index: i,
                target: nodes[i].clone(),
            }),
            pool: Pool::new(),
            auth_text: String::new(),
            http: http_client().unwrap(),
            auth: HeaderValue::from_static("Bearer x"),
            state: Mutex::new(UserState::default()),
        };
        let pop = Population {
            requesters: Vec::new(),
            producers: Vec::new(),
            statements: vec![10, 11],
            owners: HashMap::from([(10, 0), (11, 2)]),
            direct: Vec::new(),
        };
        assert_eq!(pop.route(&user(Some(0)), 10), Some((0, 0)));
        assert_eq!(pop.route(&user(Some(1)), 11), Some((1, 2)));
        assert_eq!(pop.route(&user(Some(1)), 99), None);
        assert_eq!(pop.route(&user(None), 10), None);
    }

    #[test]
    fn target_can_move() {
        let t = Target::new("http://127.0.0.1:1").unwrap();
        t.set("http://127.0.0.1:2").unwrap();
        assert_eq!(&*t.base(), "http://127.0.0.1:2");
        assert_eq!(t.addr(), "127.0.0.1:2".parse().unwrap());
    }
}
