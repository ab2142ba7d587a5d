//! Wallets, statement accounts, and the money between them.
//!
//! A user's money lives in its wallet (`wallet.lua`, one hash in the user's own slot
//! `{u:<name>}`): `balance` and `deposit`, each the sum of the wallet's ledger; and in
//! its accounts on statements (`transitions.lua`, the statement's `acct` hash in the
//! statement's slot): free balance and deposit, escrow and collateral its orders hold
//! there, each the sum of the statement's account ledger. Orders take their money from
//! the account inside the batch that places them, and trades pay into accounts, so an
//! order needs nothing outside its statement's slot. Nothing atomic can span two slots
//! of a Redis Cluster, so money crosses between a wallet and an account in two steps,
//! each atomic in its own slot, and is at every moment in exactly one place of the books:
//!
//! - **wallet → account** (a top-up, when an order finds the account short): `fund`
//!   takes the money from the wallet and records it in the wallet's outbox under the
//!   order's key, with the time. The order's placement (`transitions.lua`, `new` and
//!   its `money`) is the receipt: it credits the account and takes the order's money
//!   from it, and refuses an order whose money left longer than the funding window ago.
//!   So once the window has passed twice over, an order that is not in its statement
//!   never will be, and its money goes back (`refund`); one that is, clears its outbox
//!   entry (`arrived`). Money in the outbox is the wallet's until the order exists.
//! - **account → wallet** (a sweep of an idle account, or one a short wallet asked for):
//!   the batch takes the account's free money and appends a payout to the statement's
//!   payout stream in the same script; the statement's owner delivers them
//!   (`deliver_payouts`) in stream order, and the wallet applies each once, keeping the
//!   id of the last one it applied from each statement. A payout is the statement's
//!   until its wallet has applied it. Deliveries and fines send track-record entries
//!   (no money) the same way.
//!
//! All amounts are exact integers of micro-units; scripts add and subtract them as
//! decimal strings (`dec.lua`), never as floating point.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;

use super::{Store, StoreError, WalletConfig};
use crate::domain::{Key, Millis};

static FORGET_SENDING: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local s = redis.call('ZSCORE', KEYS[1], ARGV[1]) \
         if s and tonumber(s) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end \
         return 0",
    )
});

/// Settles a wallet's archiver marks (`Store::settle_ledger`). KEYS: first, last;
/// ARGV: wallet, read at, grace cutoff.
static SETTLE_LEDGER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local last = redis.call('ZSCORE', KEYS[2], ARGV[1]) \
         if not last or tonumber(last) <= tonumber(ARGV[3]) then \
           redis.call('ZREM', KEYS[1], ARGV[1]) redis.call('ZREM', KEYS[2], ARGV[1]) return 1 \
         end \
         redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[2], ARGV[1]) \
         return 0",
    )
});

static WALLET: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(include_str!("dec.lua"), include_str!("wallet.lua")))
});

/// The account of the market's commissions: a wallet no user can sign up as.
pub const MARKET_ACCOUNT: &str = "#market";

/// Most payouts of a statement delivered in one round.
const PAYOUTS_PER_ROUND: usize = 1000;

/// The accounts on a statement: free (balance, deposit) by user, and (delivered,
/// missed) by producer.
pub type AccountsOf = (HashMap<String, (u128, u128)>, HashMap<String, (u64, u64)>);

/// A wallet as its user sees it, micro-units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wallet {
    /// Available.
    pub balance: u128,
    /// What the user's open and matched requests hold in escrow.
    pub blocked: u128,
    /// Producer collateral not backing any work.
    pub deposit: u128,
    /// Collateral the user's proposals hold in statements.
    pub locked: u128,
}

/// What `fund` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funded {
    /// This much left the wallet for the order, at this time (Redis's clock).
    Sent {
        /// Amount sent.
        amount: u128,
        /// When.
        at: Millis,
    },
    /// The wallet holds only this much.
    Short {
        /// What the wallet had.
        have: u128,
    },
}

/// Money sent to a statement and not yet known to have arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The order it funds.
    pub order: Key,
    /// Its statement.
    pub statement: Key,
    /// Amount.
    pub amount: u128,
    /// When it left.
    pub at: Millis,
}

fn amount(v: &str) -> Result<u128, StoreError> {
    v.parse::<u128>()
        .map_err(|_| StoreError::Corrupt(format!("wallet amount {v:?}")))
}

/// The wallet's own money (balance, deposit), as its script answers.
/// The members of sorted set `key` scored at or before `cutoff`, lowest first, at most
/// `max`.
fn due(key: &str, cutoff: Millis, max: usize) -> redis::Cmd {
    let mut c = redis::cmd("ZRANGE");
    c.arg(key)
        .arg("-inf")
        .arg(cutoff.0)
        .arg("BYSCORE")
        .arg("LIMIT")
        .arg(0)
        .arg(max);
    c
}

/// Whether wallet op `op` may write a ledger entry: every op that moves money, and
/// any op at all when wallets open with signup money (the first one opens it).
fn writes_ledger(op: &str, w: WalletConfig) -> bool {
    !matches!(op, "get" | "record" | "arrived") || w.signup_credit > 0 || w.signup_deposit > 0
}

fn parse_own(v: &[String]) -> Result<(u128, u128), StoreError> {
    match v {
        [b, d, ..] => Ok((amount(b)?, amount(d)?)),
        _ => Err(StoreError::Corrupt(format!("wallet answered {v:?}"))),
    }
}

/// The answer of the wallet's `get`: its own money, its statements, its outbox.
struct Got<'a> {
    balance: u128,
    deposit: u128,
    statements: Vec<Key>,
    /// Order, entry pairs.
    outbox: &'a [String],
}

fn parse_get(v: &[String]) -> Result<Got<'_>, StoreError> {
    let (balance, deposit) = parse_own(v)?;
    let bad = || StoreError::Corrupt(format!("wallet answered {v:?}"));
    let n: usize = v.get(2).and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    let statements = v
        .get(3..3 + n)
        .ok_or_else(bad)?
        .iter()
        .map(|s| Key::parse(s).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    Ok(Got {
        balance,
        deposit,
        statements,
        outbox: v.get(3 + n..).unwrap_or_default(),
    })
}

impl Store {
    async fn wallet_script<T: redis::FromRedisValue>(
        &self,
        user: &str,
        op: &str,
        args: &[String],
    ) -> Result<T, StoreError> {
        self.wallet_call(user, op, args, false).await
    }

    /// Runs `op` on `user`'s wallet after its marks: the ledger archiver's (when the op
    /// may write a ledger entry) and, with `sending`, the refund resolver's. A mark is
    /// written before the script, so a node that dies after the script leaves it marked:
    /// on one Redis in the same round trip (a pipeline runs in order), on a cluster
    /// (other slots) just before.
    async fn wallet_call<T: redis::FromRedisValue>(
        &self,
        user: &str,
        op: &str,
        args: &[String],
        sending: bool,
    ) -> Result<T, StoreError> {
        let w = self.wallets;
        let mut inv = WALLET.key(self.keys.wallet(user));
        inv.arg(op)
            .arg(w.signup_credit.to_string())
            .arg(w.signup_deposit.to_string())
            .arg(args);
        let ledger = self.ledger_marks && writes_ledger(op, w);
        let mut c = self.conn.clone();
        if !ledger && !sending {
            return Ok(inv.invoke_async(&mut c).await?);
        }
        let me = user.to_lowercase();
        let now = Millis::now().0;
        let mut marks = redis::pipe();
        if sending {
            marks.zadd(self.keys.wallets_sending(), &me, now).ignore();
        }
        if ledger {
            self.mark_ledger(&mut marks, &me, now);
        }
        if self.is_cluster() {
            for cmd in marks.cmd_iter() {
                cmd.query_async::<()>(&mut c).await?;
            }
            return Ok(inv.invoke_async(&mut c).await?);
        }
        let with_script = || {
            let mut p = marks.clone();
            p.invoke_script(&inv);
            p
        };
        let r: Vec<T> = match with_script().query_async(&mut c).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // The script cache was flushed: load it and send all again (the marks
                // are idempotent; the script never ran).
                WALLET.load_async(&mut c).await?;
                with_script().query_async(&mut c).await?
            }
            other => other?,
        };
        r.into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("wallet op {op} answered nothing")))
    }

    /// Adds to `p` the archiver's mark of wallet `me` (lowercased) at `now`: its last
    /// ledger write, and the first one not yet archived (kept if already there).
    fn mark_ledger(&self, p: &mut redis::Pipeline, me: &str, now: u64) {
        p.zadd(self.keys.ledger_last(), me, now).ignore();
        p.cmd("ZADD")
            .arg(self.keys.ledger_first())
            .arg("NX")
            .arg(now)
            .arg(me)
            .ignore();
    }

    /// `user`'s money as the user sees it (the wallet opened now, with the signup
    /// amounts, if it never was): the wallet's own money plus its accounts on
    /// statements, escrow and collateral its orders hold, and money on its way from
    /// the wallet to an account (shown as blocked or locked until it arrives). Reads of
    /// several slots, so exact when the user's money is not moving; a sweep being
    /// delivered (milliseconds) is not shown.
    pub async fn wallet(&self, user: &str) -> Result<Wallet, StoreError> {
        let v: Vec<String> = self.wallet_script(user, "get", &[]).await?;
        let got = parse_get(&v)?;
        let mut w = Wallet {
            balance: got.balance,
            deposit: got.deposit,
            ..Wallet::default()
        };
        let bad = || StoreError::Corrupt(format!("wallet answered {v:?}"));
        for stmt in got.statements {
            let a = self.account(stmt, user).await?;
            w.balance += a.balance;
            w.blocked += a.blocked;
            w.deposit += a.deposit;
            w.locked += a.locked;
        }
        let outbox = got.outbox;
        let mut c = self.conn.clone();
        for pair in outbox.chunks(2) {
            let [order, entry] = pair else {
                return Err(bad());
            };
            let mut it = entry.split('|');
            let (Some(s), Some(a), Some(field)) = (it.next(), it.next(), it.next()) else {
                return Err(bad());
            };
            let (Some(order), Some(stmt)) = (Key::parse(order), Key::parse(s)) else {
                return Err(bad());
            };
            // Arrived (its order is the receipt): counted in the account already.
            let arrived: bool = c.exists(self.keys.statement(stmt).order(order)).await?;
            if !arrived {
                if field == "deposit" {
                    w.locked += amount(a)?;
                } else {
                    w.blocked += amount(a)?;
                }
            }
        }
        Ok(w)
    }

    /// `user`'s account on `stmt`: free balance and deposit, escrow and collateral its
    /// orders hold there.
    pub async fn account(&self, stmt: Key, user: &str) -> Result<Wallet, StoreError> {
        let me = user.to_lowercase();
        let fields = ["b", "k", "d", "l"].map(|f| format!("{me}:{f}"));
        let mut c = self.conn.clone();
        let a: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.statement(stmt).accounts())
            .arg(&fields[..])
            .query_async(&mut c)
            .await?;
        let get = |i: usize| a.get(i).cloned().flatten().map_or(Ok(0), |x| amount(&x));
        Ok(Wallet {
            balance: get(0)?,
            blocked: get(1)?,
            deposit: get(2)?,
            locked: get(3)?,
        })
    }

    /// The money in `user`'s wallet itself (balance, deposit) and the statements where
    /// it has accounts.
    pub async fn wallet_own(&self, user: &str) -> Result<(u128, u128, Vec<Key>), StoreError> {
        let v: Vec<String> = self.wallet_script(user, "get", &[]).await?;
        let got = parse_get(&v)?;
        Ok((got.balance, got.deposit, got.statements))
    }

    /// Asks `stmt`'s owner to send `user`'s free money there back to the wallet now.
    pub async fn request_sweep(&self, stmt: Key, user: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: i64 = c
            .sadd(
                self.keys.statement(stmt).sweep_requests(),
                user.to_lowercase(),
            )
            .await?;
        Ok(())
    }

    /// Takes up to `max` users who asked for their money on `stmt` back.
    pub async fn take_sweep_requests(
        &self,
        stmt: Key,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        let v: Vec<String> = redis::cmd("SPOP")
            .arg(self.keys.statement(stmt).sweep_requests())
            .arg(max)
            .query_async(&mut c)
            .await?;
        Ok(v)
    }

    /// `user`'s track record as a producer: (proofs delivered, deadlines missed, fines in
    /// micro-units, total generation time in ms).
    pub async fn track_record(&self, user: &str) -> Result<(u64, u64, u128, u128), StoreError> {
        let v: Vec<String> = self.wallet_script(user, "record", &[]).await?;
        let bad = || StoreError::Corrupt(format!("track record {v:?}"));
        match v.as_slice() {
            [d, f, fines, g] => Ok((
                d.parse().map_err(|_| bad())?,
                f.parse().map_err(|_| bad())?,
                amount(fines)?,
                amount(g)?,
            )),
            _ => Err(bad()),
        }
    }

    /// Adds `amount` to `user`'s balance, as a ledger entry of `kind`.
    pub async fn credit(
        &self,
        user: &str,
        amount: u128,
        kind: &str,
        reference: &str,
    ) -> Result<Wallet, StoreError> {
        let args = [amount.to_string(), kind.to_owned(), reference.to_owned()];
        let _: Vec<String> = self.wallet_script(user, "credit", &args).await?;
        self.wallet(user).await
    }

    /// Moves `amount` from the balance to the deposit (`to_deposit`) or back. `Err`
    /// holds what the source had when it is short.
    pub async fn move_deposit(
        &self,
        user: &str,
        amount: u128,
        to_deposit: bool,
    ) -> Result<Result<Wallet, u128>, StoreError> {
        let op = if to_deposit { "deposit" } else { "release" };
        let v: Vec<String> = self.wallet_script(user, op, &[amount.to_string()]).await?;
        match v.as_slice() {
            [short, have] if short == "SHORT" => Ok(Err(self::amount(have)?)),
            _ => {
                parse_own(&v)?;
                Ok(Ok(self.wallet(user).await?))
            }
        }
    }

    /// Sends between `least` and `most` of `user`'s balance (or deposit) to `order`
    /// of `stmt`: as much as the wallet has, unless that is less than `least`. The
    /// order must then be placed within the funding window, or it never will be.
    #[allow(clippy::too_many_arguments)]
    pub async fn fund(
        &self,
        user: &str,
        order: Key,
        stmt: Key,
        least: u128,
        most: u128,
        from_deposit: bool,
        kind: &str,
    ) -> Result<Funded, StoreError> {
        let field = if from_deposit { "deposit" } else { "balance" };
        let args = [
            order.to_string(),
            stmt.to_string(),
            least.to_string(),
            most.max(least).to_string(),
            field.to_owned(),
            kind.to_owned(),
        ];
        // The wallet is recorded as sending before the money leaves it, so the resolver
        // finds it even if the node dies right after.
        let v: Vec<String> = self.wallet_call(user, "fund", &args, true).await?;
        match v.as_slice() {
            [ok, amt, at] if ok == "OK" => Ok(Funded::Sent {
                amount: amount(amt)?,
                at: Millis(
                    at.parse()
                        .map_err(|_| StoreError::Corrupt(format!("fund time {at:?}")))?,
                ),
            }),
            [short, have] if short == "SHORT" => Ok(Funded::Short {
                have: amount(have)?,
            }),
            _ => Err(StoreError::Corrupt(format!("fund answered {v:?}"))),
        }
    }

    /// The orders' statements hold their money: forget the transfers.
    pub async fn arrived(&self, user: &str, orders: &[Key]) -> Result<(), StoreError> {
        let args: Vec<String> = orders.iter().map(Key::to_string).collect();
        let _: i64 = self.wallet_script(user, "arrived", &args).await?;
        Ok(())
    }

    /// `order` will never be placed: its money goes back to `user` (once; false when
    /// there was nothing to give back).
    pub async fn refund(&self, user: &str, order: Key) -> Result<bool, StoreError> {
        let n: i64 = self
            .wallet_script(user, "refund", &[order.to_string()])
            .await?;
        Ok(n == 1)
    }

    /// Wallets that sent money at or before `cutoff` (ms), with that time.
    pub async fn wallets_sending_before(
        &self,
        cutoff: Millis,
        max: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut c = self.conn.clone();
        let v: Vec<(String, u64)> = due(&self.keys.wallets_sending(), cutoff, max)
            .arg("WITHSCORES")
            .query_async(&mut c)
            .await?;
        Ok(v)
    }

    /// Forgets that `user` sent money, unless it sent more since `seen` (ms).
    pub async fn forget_sending(&self, user: &str, seen: u64) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: i64 = FORGET_SENDING
            .key(self.keys.wallets_sending())
            .arg(user)
            .arg(seen)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Money `user` sent that is not yet known to have arrived.
    pub async fn outgoing(&self, user: &str) -> Result<Vec<Outgoing>, StoreError> {
        let mut c = self.conn.clone();
        let h: Vec<(String, String)> = c.hgetall(format!("{}:out", self.keys.wallet(user))).await?;
        let bad = |v: &str| StoreError::Corrupt(format!("wallet outbox entry {v:?}"));
        h.into_iter()
            .map(|(k, v)| {
                let mut it = v.split('|');
                let (Some(s), Some(a), Some(_), Some(t)) =
                    (it.next(), it.next(), it.next(), it.next())
                else {
                    return Err(bad(&v));
                };
                Ok(Outgoing {
                    order: Key::parse(&k).ok_or_else(|| bad(&k))?,
                    statement: Key::parse(s).ok_or_else(|| bad(&v))?,
                    amount: amount(a)?,
                    at: Millis(t.parse().map_err(|_| bad(&v))?),
                })
            })
            .collect()
    }

    /// Delivers up to a round of `stmt`'s payouts to their wallets, oldest first, and
    /// removes them from the stream; with them, tells each wallet which of the orders it
    /// funded (`arrived`: user, order) the statement now holds, so one script per wallet
    /// does both. Returns how many payouts were delivered; fewer than a round means the
    /// stream is empty now (unless new ones came meanwhile).
    pub async fn deliver_payouts(
        &self,
        stmt: Key,
        arrived: &[(String, Key)],
    ) -> Result<usize, StoreError> {
        let key = self.keys.statement(stmt).payouts();
        let mut c = self.conn.clone();
        let entries: redis::streams::StreamRangeReply =
            c.xrange_count(&key, "-", "+", PAYOUTS_PER_ROUND).await?;
        if entries.ids.is_empty() && arrived.is_empty() {
            return Ok(0);
        }
        // Per wallet: the orders that arrived, then its payouts in stream order (the
        // wallet applies what is past its mark).
        let mut by_user: std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> =
            Default::default();
        for (user, order) in arrived {
            by_user
                .entry(user.to_lowercase())
                .or_default()
                .0
                .push(order.to_string());
        }
        let mut ids = Vec::with_capacity(entries.ids.len());
        for e in &entries.ids {
            let get = |f: &str| -> Result<String, StoreError> {
                e.get::<String>(f)
                    .ok_or_else(|| StoreError::Corrupt(format!("payout {} lacks {f}", e.id)))
            };
            let user = get("u")?;
            let args = &mut by_user.entry(user.to_lowercase()).or_default().1;
            args.push(e.id.clone());
            for f in ["b", "k", "d", "l", "t", "r"] {
                args.push(get(f)?);
            }
            args.push(e.get::<String>("g").unwrap_or_else(|| "0".into()));
            ids.push(e.id.clone());
        }
        let stmt_text = stmt.to_string();
        let deliveries = by_user.into_iter().map(|(user, (orders, rest))| {
            let mut args = vec![stmt_text.clone(), orders.len().to_string()];
            args.extend(orders);
            args.extend(rest);
            async move {
                let _: i64 = self.wallet_script(&user, "payouts", &args).await?;
                Ok::<(), StoreError>(())
            }
        });
        for r in futures_util::future::join_all(deliveries).await {
            r?;
        }
        if !ids.is_empty() {
            let _: i64 = c.xdel(&key, &ids).await?;
        }
        Ok(ids.len())
    }

    /// The accounts on `stmt`: lowercased user → (free balance, free deposit) of those
    /// holding free money; and lowercased producer → (proofs delivered, deadlines
    /// missed) there.
    pub async fn accounts(&self, stmt: Key) -> Result<AccountsOf, StoreError> {
        let mut c = self.conn.clone();
        let h: Vec<(String, String)> = c.hgetall(self.keys.statement(stmt).accounts()).await?;
        let mut money: HashMap<String, (u128, u128)> = HashMap::new();
        let mut records: HashMap<String, (u64, u64)> = HashMap::new();
        for (f, v) in h {
            let Some((user, which)) = f.rsplit_once(':') else {
                return Err(StoreError::Corrupt(format!("account field {f:?}")));
            };
            let count = || {
                v.parse::<u64>()
                    .map_err(|_| StoreError::Corrupt(format!("account field {f}: {v:?}")))
            };
            match which {
                "b" => money.entry(user.to_owned()).or_default().0 = amount(&v)?,
                "d" => money.entry(user.to_owned()).or_default().1 = amount(&v)?,
                "ok" => records.entry(user.to_owned()).or_default().0 = count()?,
                "fail" => records.entry(user.to_owned()).or_default().1 = count()?,
                _ => {}
            }
        }
        money.retain(|_, (b, d)| *b > 0 || *d > 0);
        Ok((money, records))
    }

    /// The oldest entries of `user`'s wallet ledger still in Redis, at most `max`.
    pub async fn wallet_ledger(
        &self,
        user: &str,
        max: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut c = self.conn.clone();
        let r: redis::streams::StreamRangeReply = c
            .xrange_count(format!("{}:led", self.keys.wallet(user)), "-", "+", max)
            .await?;
        r.ids.iter().map(LedgerEntry::parse).collect()
    }

    /// At most `max` entries of `user`'s wallet ledger from `from` on (an XRANGE
    /// start: `-`, an entry id, or `(<id>` for the entries after it).
    pub async fn wallet_ledger_from(
        &self,
        user: &str,
        from: &str,
        max: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut c = self.conn.clone();
        let r: redis::streams::StreamRangeReply = c
            .xrange_count(format!("{}:led", self.keys.wallet(user)), from, "+", max)
            .await?;
        r.ids.iter().map(LedgerEntry::parse).collect()
    }

    /// Wallets whose ledgers may hold entries not yet archived since at or before
    /// `cutoff` (ms), oldest first, at most `max`, lowercased.
    pub async fn ledgers_due(&self, cutoff: Millis, max: usize) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        Ok(due(&self.keys.ledger_first(), cutoff, max)
            .query_async(&mut c)
            .await?)
    }

    /// Removes the entries of `user`'s ledger up to and including `last` (archived).
    pub async fn trim_wallet_ledger(
        &self,
        user: &str,
        last: &LedgerEntry,
    ) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: i64 = redis::cmd("XTRIM")
            .arg(format!("{}:led", self.keys.wallet(user)))
            .arg("MINID")
            .arg(last.next_id())
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// After archiving everything `user`'s ledger held when read at `read_at`: forgets
    /// the wallet if its last ledger write was marked at least `grace` before (every
    /// script marked before then has run, so its entries were in that read); otherwise
    /// looks again later, as if its first unarchived entry were of `read_at`.
    pub async fn settle_ledger(
        &self,
        user: &str,
        read_at: Millis,
        grace: u64,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let forgot: i64 = SETTLE_LEDGER
            .key(self.keys.ledger_first())
            .key(self.keys.ledger_last())
            .arg(user.to_lowercase())
            .arg(read_at.0)
            .arg(read_at.0.saturating_sub(grace))
            .invoke_async(&mut c)
            .await?;
        Ok(forgot == 1)
    }
}

/// One movement of a wallet's money (`wallet.lua`'s ledger), as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Redis's time of the entry (ms) and its sequence within that ms: the stream id.
    pub at: u64,
    /// Sequence number within `at`.
    pub seq: u64,
    /// What kind of movement (`signup`, `credit`, `deposit`, `fund`, `refund`, ...).
    pub kind: String,
    /// Change of the balance, micro-units.
    pub balance: i128,
    /// Change of the deposit, micro-units.
    pub deposit: i128,
    /// What it pays for (an order, a statement's payout, an operator's reference).
    pub reference: String,
}

impl LedgerEntry {
    fn parse(e: &redis::streams::StreamId) -> Result<LedgerEntry, StoreError> {
        let bad = || StoreError::Corrupt(format!("ledger entry {}", e.id));
        let (ms, seq) = e.id.split_once('-').ok_or_else(bad)?;
        let get = |f: &str| e.get::<String>(f).unwrap_or_default();
        let num = |f: &str| get(f).parse::<i128>().map_err(|_| bad());
        Ok(LedgerEntry {
            at: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
            kind: get("k"),
            balance: num("b")?,
            deposit: num("d")?,
            reference: get("r"),
        })
    }

    /// The smallest stream id after this entry's.
    fn next_id(&self) -> String {
        match self.seq.checked_add(1) {
            Some(s) => format!("{}-{s}", self.at),
            None => format!("{}-0", self.at.saturating_add(1)),
        }
    }
}
