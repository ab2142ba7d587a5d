//! What the checker reads: orders as the store holds them ([`OrderRow`]), orders as the
//! market acknowledged them ([`AckedOrder`]) and statuses a client read
//! ([`Observation`]). Costs and prices are integers in micro-units, as Redis stores them.

use serde::Serialize;

/// Order side, as the URL and the store spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A bid for a proof.
    Request,
    /// An offer to produce proofs.
    Proposal,
}

impl Kind {
    /// `request` or `proposal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Proposal => "proposal",
        }
    }

    /// The other side.
    pub fn other(self) -> Kind {
        match self {
            Kind::Request => Kind::Proposal,
            Kind::Proposal => Kind::Request,
        }
    }

    /// The side spelled `s`, if any.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "request" => Some(Kind::Request),
            "proposal" => Some(Kind::Proposal),
            _ => None,
        }
    }
}

/// An order as stored. Fields are kept as found (a `kind` or `status` outside the known
/// ones is itself a violation), so a corrupt order is reported instead of skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderRow {
    /// Key.
    pub key: u64,
    /// Statement (from the hash key's tag).
    pub statement: u64,
    /// `kind` field as stored.
    pub kind: String,
    /// `status` field as stored.
    pub status: String,
    /// `cost` (micro-units).
    pub cost: Option<u64>,
    /// `eval_time` (minutes), `None` when empty.
    pub eval_time: Option<u32>,
    /// Arrival number in the statement's matcher: in a matched pair the resting order has
    /// the lower one (an incoming order is numbered after every open order, also after a
    /// restart or a takeover rebuilt the book).
    pub seq: Option<u64>,
    /// `proposal_key` (requests) or `request_key` (proposals).
    pub counterpart: Option<u64>,
    /// `price` (micro-units).
    pub price: Option<u64>,
    /// `proof_key`.
    pub proof_key: Option<u64>,
    /// The `<kind>:<status>` index sets that hold the key.
    pub indexed_as: Vec<String>,
    /// The statement its `loc:` key points to.
    pub located_in: Option<u64>,
    /// Read from the archive (PostgreSQL's `orders`) because Redis no longer holds it:
    /// it has no index entry or locator to check (see [`crate::archive`]).
    pub archived: bool,
    /// `sender` (a user's request never matches its own proposal).
    pub sender: Option<String>,
    /// `held`: a request's escrow or a proposal's collateral (micro-units), when stored.
    pub held: Option<u128>,
}

impl OrderRow {
    /// The side, when `kind` is one.
    pub fn side(&self) -> Option<Kind> {
        Kind::parse(&self.kind)
    }
}

/// An order the market acknowledged with 200, as its answer described it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AckedOrder {
    /// Key.
    pub key: u64,
    /// Side.
    pub kind: Kind,
    /// Statement.
    pub statement: u64,
    /// Cost sent (micro-units).
    pub cost: u64,
    /// Status in the answer.
    pub status: String,
    /// Counterpart in the answer, when it was already matched.
    pub counterpart: Option<u64>,
    /// Price in the answer.
    pub price: Option<u64>,
}

/// A status the harness read for an order (GET or DELETE answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// Key.
    pub key: u64,
    /// Status read.
    pub status: String,
}
