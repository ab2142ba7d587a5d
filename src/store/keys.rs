//! The Redis key layout: the one place that names the store's keys.
//!
//! Every key starts with the store's prefix `P`. Keys of one statement `K` also carry
//! the hash tag `{stmt:K}`, so they share one Redis Cluster slot and a statement's
//! transitions run as single-slot scripts:
//!
//! | key                                | type   | holds                                        |
//! |------------------------------------|--------|----------------------------------------------|
//! | `P:{stmt:K}:st`                    | string | the statement's JSON text                    |
//! | `P:{stmt:K}:head`                  | string | the same without its definition (lists)      |
//! | `P:{stmt:K}:o:O`                   | hash   | order `O` ([`super::OrderRecord`] fields)    |
//! | `P:{stmt:K}:ix:<side>:<status>`    | zset   | keys of the orders of one side and status    |
//! | `P:{stmt:K}:proof:F`               | hash   | proof `F` ([`super::ProofRecord`] fields)    |
//! | `P:{stmt:K}:proven`                | hash   | canonical input → key of the proof of it     |
//! | `P:{stmt:K}:idem`                  | hash   | scoped idempotency key → `<order>:<millis>`  |
//! | `P:{stmt:K}:lease`                 | string | the node owning the statement (with a TTL)   |
//! | `P:{stmt:K}:fence`                 | string | the fencing token, one more per acquisition  |
//! | `P:{stmt:K}:fenced`                | string | count of stale batches the script refused    |
//! | `P:{stmt:K}:refused:O`             | string | refused proofs for proposal `O` (TTL)        |
//! | `P:{stmt:K}:events`                | stream | the event log (see `transitions.lua`)        |
//! | `P:{stmt:K}:evseq`                 | string | the number of the last event appended        |
//! | `P:{stmt:K}:closed`                | zset   | archived closed records (`o:O`, `p:F`) by close time (ms), to remove after the retention |
//! | `P:{stmt:K}:archived`              | string | the number of the last event archived        |
//! | `P:{stmt:K}:archived_id`           | string | the stream id of that event's entry (the log keeps archived entries for the resume window) |
//! | `P:statements`                     | zset   | every statement key                          |
//! | `P:seq`                            | string | the counter new keys are reserved from       |
//! | `P:blocks`                         | zset   | blocks of order and proof keys, `<first>:<last>:<statement>` scored by first key |
//! | `P:loc:O`                          | string | the statement of an order or proof made before key blocks (read, no longer written) |
//! | `P:user:<name>`                    | string | a user (JSON), under its lowercased name*    |
//! | `P:user-names-lowercased`          | string | set once old accounts' names are claimed     |
//! | `P:revoked:<name>`                 | string | tokens issued before this (Unix ms) are void |
//! | `P:login-fail:name:<name>`         | string | failed logins for a lowercased name (TTL)    |
//! | `P:login-fail:ip:<ip>`             | string | failed logins from a client IP (TTL)         |
//! | `P:rate:ip:<ip>`                   | hash   | a client IP's token bucket (TTL)             |
//! | `P:rate:user:<name>`               | hash   | a user's token bucket (TTL)                  |
//! | `P:statements-pushed:<name>`       | string | statements a user pushed today (TTL)         |
//! | `P:producer:<name>`                | string | a producer's profile (JSON)                  |
//! | `P:{stmt:K}:pay`                   | stream | payouts to wallets not yet delivered (`transitions.lua`) |
//! | `P:{stmt:K}:seen`                  | set    | SHA-256 of every proof accepted (never again) |
//! | `P:{stmt:K}:buyers:F`              | set    | users who paid for proof `F` (may read its bytes) |
//! | `P:{stmt:K}:stats`                 | hash   | last trade; completed trades, their price and generation-time sums |
//! | `P:{stmt:K}:day:D`                 | hash   | UTC day `D`'s open, close, min, max, volume, trades (8 days) |
//! | `P:{stmt:K}:trades`                | list   | the latest 100 trades, newest first          |
//! | `P:{stmt:K}:resale`                | hash   | proof → `<producer>\|<price>`: who a resale pays, and how much |
//! | `P:{stmt:K}:acct`                  | hash   | users' accounts here: `<user>:b` free balance, `:k` escrow held, `:d` free deposit, `:l` collateral held |
//! | `P:{stmt:K}:sweep`                 | set    | users whose wallets asked for their free money here back now |
//! | `P:{u:<name>}:w`                   | hash   | a user's wallet (`wallet.lua`), lowercased name |
//! | `P:{u:<name>}:led`                 | stream | the wallet's ledger                          |
//! | `P:{u:<name>}:out`                 | hash   | money sent to statements, not yet known to have arrived |
//! | `P:{u:<name>}:stmts`               | set    | statements the wallet sent money to (its accounts) |
//! | `P:wallets:sending`                | zset   | wallets with money in flight, by last send (ms) |
//! | `P:{wallets}:led-first`            | zset   | wallets whose ledger may hold entries not archived, by when that began (ms) |
//! | `P:{wallets}:led-last`             | zset   | the same wallets by their last ledger write (ms) |
//! | `P:nodes`                          | zset   | node id, scored by heartbeat expiry (ms)     |
//! | `P:node-urls`                      | hash   | node id → the URL calls are forwarded to     |
//! | `P:events`                         | pub/sub channel | "the log grew" hints for live streams (`transitions.lua`, `wallet.lua`) |
//!
//! \* Accounts created before names were case-insensitive are under the exact name;
//! reading one claims its lowercased key too.
//!
//! Rust code gets each name from [`Keys`] and [`StmtKeys`]. The Lua scripts are given
//! their keys as arguments, except `transitions.lua`, which receives a statement's base
//! `P:{stmt:K}` and appends the suffixes below to it; a test here checks that it uses
//! exactly these.

use crate::domain::{Key, Side, Status};

const STATEMENT: &str = ":st";
const HEAD: &str = ":head";
const ORDER: &str = ":o:";
const INDEX: &str = ":ix:";
const PROOF: &str = ":proof:";
const PROVEN: &str = ":proven";
const IDEMPOTENCY: &str = ":idem";
const LEASE: &str = ":lease";
const FENCE: &str = ":fence";
const FENCED: &str = ":fenced";
const REFUSED: &str = ":refused:";
const EVENTS: &str = ":events";
const EVSEQ: &str = ":evseq";
const CLOSED: &str = ":closed";
const ARCHIVED: &str = ":archived";
const ARCHIVED_ID: &str = ":archived_id";
const PAY: &str = ":pay";
const SEEN: &str = ":seen";
const BUYERS: &str = ":buyers:";
const STATS: &str = ":stats";
const TRADES: &str = ":trades";
const DAY: &str = ":day:";
const RESALE: &str = ":resale";
const ACCOUNTS: &str = ":acct";

/// The names of a store's keys, all under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn global(&self, what: &str) -> String {
        format!("{}:{what}", self.prefix)
    }

    /// The keys of statement `stmt`.
    pub fn statement(&self, stmt: Key) -> StmtKeys {
        StmtKeys {
            base: format!("{}:{{stmt:{stmt}}}", self.prefix),
        }
    }

    /// The pub/sub channel telling nodes that a statement's log or a wallet's ledger
    /// grew (see `transitions.lua` and `wallet.lua`).
    pub fn events_channel(&self) -> String {
        self.global("events")
    }

    /// The sorted set of every statement key.
    pub fn statements(&self) -> String {
        self.global("statements")
    }

    /// The counter new statement, order and proof keys are reserved from.
    pub fn seq(&self) -> String {
        self.global("seq")
    }

    /// The blocks of keys reserved for statements' orders and proofs.
    pub fn blocks(&self) -> String {
        self.global("blocks")
    }

    /// The locator of an order or proof made before key blocks: its statement's key.
    pub fn locator(&self, key: Key) -> String {
        self.global(&format!("loc:{key}"))
    }

    /// The key base of a user's wallet, `P:{u:<lowercased name>}` (see `wallet.lua`).
    pub fn wallet(&self, name: &str) -> String {
        format!("{}:{{u:{}}}", self.prefix, name.to_lowercase())
    }

    /// Wallets that sent money to statements, scored by their last send (ms).
    pub fn wallets_sending(&self) -> String {
        self.global("wallets:sending")
    }

    /// Wallets whose ledger may hold entries not yet archived, scored by the time (ms)
    /// the oldest of them may have been written (`Store::mark_ledgers`).
    pub fn ledger_first(&self) -> String {
        self.global("{wallets}:led-first")
    }

    /// The same wallets scored by their last ledger write (ms); same slot as
    /// [`Keys::ledger_first`], so one script settles both.
    pub fn ledger_last(&self) -> String {
        self.global("{wallets}:led-last")
    }

    /// A user's record.
    pub fn user(&self, name: &str) -> String {
        self.global(&format!("user:{name}"))
    }

    /// Set once every account stored under its exact name has claimed its lowercased
    /// name (see `Store::claim_legacy_user_names`).
    pub fn user_names_lowercased(&self) -> String {
        self.global("user-names-lowercased")
    }

    /// A user's revocation time (`name` lowercased).
    pub fn revoked(&self, name: &str) -> String {
        self.global(&format!("revoked:{name}"))
    }

    /// Failed logins for a (lowercased) user name, expiring with the window.
    pub fn login_failures_name(&self, name: &str) -> String {
        self.global(&format!("login-fail:name:{name}"))
    }

    /// Failed logins from a client IP, expiring with the window.
    pub fn login_failures_ip(&self, ip: &str) -> String {
        self.global(&format!("login-fail:ip:{ip}"))
    }

    /// A client IP's token bucket.
    pub fn rate_ip(&self, ip: &str) -> String {
        self.global(&format!("rate:ip:{ip}"))
    }

    /// A user's token bucket (`name` lowercased).
    pub fn rate_user(&self, name: &str) -> String {
        self.global(&format!("rate:user:{name}"))
    }

    /// Statements a user (lowercased) pushed in the current day-long window.
    pub fn statements_pushed(&self, name: &str) -> String {
        self.global(&format!("statements-pushed:{name}"))
    }

    /// A producer's profile.
    pub fn producer(&self, name: &str) -> String {
        self.global(&format!("producer:{name}"))
    }

    /// The live nodes, scored by heartbeat expiry.
    pub fn nodes(&self) -> String {
        self.global("nodes")
    }

    /// The URL of each node.
    pub fn node_urls(&self) -> String {
        self.global("node-urls")
    }
}

/// The keys of one statement: `<prefix>:{stmt:K}` and names under it, one cluster slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StmtKeys {
    base: String,
}

impl StmtKeys {
    /// `<prefix>:{stmt:K}`, the base `transitions.lua` builds its keys from.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// SHA-256 of every proof of the statement accepted so far.
    pub fn seen_proofs(&self) -> String {
        self.under(SEEN)
    }

    /// Users who paid for proof `proof` (its requester, requests completed by it).
    pub fn proof_buyers(&self, proof: Key) -> String {
        self.under(&format!("{BUYERS}{proof}"))
    }

    /// Proof → who made it and the price it was paid (what a resale pays).
    pub fn resale(&self) -> String {
        self.under(RESALE)
    }

    /// Last trade and completed-trade sums.
    pub fn stats(&self) -> String {
        self.under(STATS)
    }

    /// The latest trades, newest first.
    pub fn trades(&self) -> String {
        self.under(TRADES)
    }

    /// UTC day `day`'s (days since the epoch) trading summary.
    pub fn day(&self, day: u64) -> String {
        self.under(&format!("{DAY}{day}"))
    }

    /// The users' accounts on the statement (`transitions.lua`).
    pub fn accounts(&self) -> String {
        self.under(ACCOUNTS)
    }

    /// Users whose wallets asked for their accounts' free money back now.
    pub fn sweep_requests(&self) -> String {
        self.under(":sweep")
    }

    /// The statement's payouts not yet delivered to wallets.
    pub fn payouts(&self) -> String {
        self.under(PAY)
    }

    fn under(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base)
    }

    /// The statement's JSON text.
    pub fn text(&self) -> String {
        self.under(STATEMENT)
    }

    /// The statement's JSON text without its definition.
    pub fn head(&self) -> String {
        self.under(HEAD)
    }

    /// An order's hash.
    pub fn order(&self, key: Key) -> String {
        format!("{}{ORDER}{key}", self.base)
    }

    /// A proof's hash.
    pub fn proof(&self, key: Key) -> String {
        format!("{}{PROOF}{key}", self.base)
    }

    /// The sorted set of the orders of one side and status.
    pub fn index(&self, side: Side, status: Status) -> String {
        format!("{}{INDEX}{}:{}", self.base, side.as_str(), status.as_str())
    }

    /// Proved canonical inputs → proof keys.
    pub fn proven(&self) -> String {
        self.under(PROVEN)
    }

    /// Remembered idempotency keys.
    pub fn idempotency(&self) -> String {
        self.under(IDEMPOTENCY)
    }

    /// The owning node's lease.
    pub fn lease(&self) -> String {
        self.under(LEASE)
    }

    /// The fencing token.
    pub fn fence(&self) -> String {
        self.under(FENCE)
    }

    /// The count of stale batches refused.
    pub fn fenced(&self) -> String {
        self.under(FENCED)
    }

    /// The event log (a stream).
    pub fn events(&self) -> String {
        self.under(EVENTS)
    }

    /// The number of the last event appended.
    pub fn event_seq(&self) -> String {
        self.under(EVSEQ)
    }

    /// Archived closed records awaiting removal, scored by close time.
    pub fn closed(&self) -> String {
        self.under(CLOSED)
    }

    /// The number of the last event archived.
    pub fn archived(&self) -> String {
        self.under(ARCHIVED)
    }

    /// The stream id of the entry of the last event archived.
    pub fn archived_id(&self) -> String {
        self.under(ARCHIVED_ID)
    }

    /// The count of refused proofs for a proposal.
    pub fn refused(&self, proposal: Key) -> String {
        format!("{}{REFUSED}{proposal}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_layout() {
        let k = Keys::new("pm");
        let s = k.statement(Key(12));
        assert_eq!(s.base(), "pm:{stmt:12}");
        assert_eq!(s.text(), "pm:{stmt:12}:st");
        assert_eq!(s.head(), "pm:{stmt:12}:head");
        assert_eq!(s.order(Key(5)), "pm:{stmt:12}:o:5");
        assert_eq!(s.proof(Key(6)), "pm:{stmt:12}:proof:6");
        assert_eq!(
            s.index(Side::Proposal, Status::Created),
            "pm:{stmt:12}:ix:proposal:created"
        );
        assert_eq!(s.proven(), "pm:{stmt:12}:proven");
        assert_eq!(s.idempotency(), "pm:{stmt:12}:idem");
        assert_eq!(s.lease(), "pm:{stmt:12}:lease");
        assert_eq!(s.fence(), "pm:{stmt:12}:fence");
        assert_eq!(s.fenced(), "pm:{stmt:12}:fenced");
        assert_eq!(s.refused(Key(7)), "pm:{stmt:12}:refused:7");
        assert_eq!(s.events(), "pm:{stmt:12}:events");
        assert_eq!(s.event_seq(), "pm:{stmt:12}:evseq");
        assert_eq!(s.closed(), "pm:{stmt:12}:closed");
        assert_eq!(s.archived(), "pm:{stmt:12}:archived");
        assert_eq!(s.payouts(), "pm:{stmt:12}:pay");
        assert_eq!(s.seen_proofs(), "pm:{stmt:12}:seen");
        assert_eq!(s.proof_buyers(Key(9)), "pm:{stmt:12}:buyers:9");
        assert_eq!(s.stats(), "pm:{stmt:12}:stats");
        assert_eq!(s.resale(), "pm:{stmt:12}:resale");
        assert_eq!(s.trades(), "pm:{stmt:12}:trades");
        assert_eq!(s.day(20_000), "pm:{stmt:12}:day:20000");
        assert_eq!(k.wallet("Al"), "pm:{u:al}");
        assert_eq!(k.wallets_sending(), "pm:wallets:sending");
        assert_eq!(k.ledger_first(), "pm:{wallets}:led-first");
        assert_eq!(k.ledger_last(), "pm:{wallets}:led-last");
        assert_eq!(k.statements(), "pm:statements");
        assert_eq!(k.seq(), "pm:seq");
        assert_eq!(k.locator(Key(5)), "pm:loc:5");
        assert_eq!(k.blocks(), "pm:blocks");
        assert_eq!(k.user("al"), "pm:user:al");
        assert_eq!(k.revoked("al"), "pm:revoked:al");
        assert_eq!(k.login_failures_name("al"), "pm:login-fail:name:al");
        assert_eq!(k.login_failures_ip("::1"), "pm:login-fail:ip:::1");
        assert_eq!(k.producer("al"), "pm:producer:al");
        assert_eq!(k.rate_ip("::1"), "pm:rate:ip:::1");
        assert_eq!(k.rate_user("al"), "pm:rate:user:al");
        assert_eq!(k.statements_pushed("al"), "pm:statements-pushed:al");
        assert_eq!(k.nodes(), "pm:nodes");
        assert_eq!(k.node_urls(), "pm:node-urls");
        assert_eq!(k.events_channel(), "pm:events");
        assert_eq!(
            k.statement(Key(12)).archived_id(),
            "pm:{stmt:12}:archived_id"
        );
    }

    /// `transitions.lua` builds its keys from the statement base `B`; it must use these
    /// suffixes and no others.
    #[test]
    fn the_transition_script_builds_the_same_keys() {
        let script = include_str!("transitions.lua");
        let used = [
            ORDER,
            INDEX,
            PROOF,
            PROVEN,
            IDEMPOTENCY,
            FENCE,
            FENCED,
            EVENTS,
            EVSEQ,
            PAY,
            SEEN,
            BUYERS,
            STATS,
            TRADES,
            DAY,
            RESALE,
            ACCOUNTS,
        ];
        for suffix in used {
            let built = format!("B .. '{suffix}'");
            assert_eq!(script.matches(&built).count(), 1, "{built}");
        }
        assert_eq!(script.matches("B .. ").count(), used.len());
    }
}
