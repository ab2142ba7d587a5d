//! One transaction per batch of a statement's events: lock the statement's cursor
//! row, refuse a stale owner, skip what is already applied, write the rest as a few
//! set-based statements, move the cursor, commit.
//!
//! Every write is an upsert keyed by the record's key, and an order that is closed
//! (completed, withdrawn: final states) is never changed again, so applying an event
//! twice, or an event over a copy that already reflects it, leaves the same rows.

use std::collections::HashMap;

use tokio_postgres::Transaction;

use super::ArchiveError;
use crate::domain::{Key, Status};
use crate::store::{Event, EventKind, LedgerEntry, OrderRecord, ProofRecord};

/// A batch of one statement's history to write.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The statement.
    pub statement: Key,
    /// The owner's fencing token.
    pub fence: u64,
    /// Its events, oldest first, as read from its log.
    pub events: &'a [Event],
    /// The proofs that `proved` events (and the copy) name, read from Redis.
    pub proofs: &'a HashMap<Key, ProofRecord>,
    /// A full copy of the statement's records in Redis, which reflects at least every
    /// event up to the number given; sent when [`Applied::NeedsCopy`] asked for it.
    pub copy: Option<(u64, &'a [OrderRecord])>,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Committed; the statement's cursor is now at `cursor`, `applied` events of the
    /// batch were new.
    Committed {
        /// The last event number the archive holds.
        cursor: u64,
        /// Events written by this batch.
        applied: u64,
    },
    /// A newer owner (token `by`) has written this statement: nothing was written.
    Fenced {
        /// The newer token.
        by: u64,
    },
    /// The archive has never seen this statement (records may predate its log), or the
    /// log lost events to its cap: send the batch again with a copy of its records.
    NeedsCopy,
}

const NOT_CLOSED: &str = "orders.status NOT IN ('completed', 'withdrawn')";

pub(super) async fn apply(
    c: &mut deadpool_postgres::Object,
    b: &Batch<'_>,
) -> Result<Applied, ArchiveError> {
    let stmt = b.statement.0 as i64;
    let fence = b.fence as i64;
    let tx = c.transaction().await?;
    let created = tx
        .execute(
            "INSERT INTO archive_cursor (statement_key, event_seq, fence) VALUES ($1, 0, $2) \
             ON CONFLICT DO NOTHING",
            &[&stmt, &fence],
        )
        .await?
        == 1;
    let row = tx
        .query_one(
            "SELECT event_seq, fence FROM archive_cursor WHERE statement_key = $1 FOR UPDATE",
            &[&stmt],
        )
        .await?;
    let (mut cursor, held): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if held > fence {
        return Ok(Applied::Fenced { by: held as u64 });
    }
    let gap = b
        .events
        .first()
        .is_some_and(|e| e.n as i64 > cursor.saturating_add(1));
    match b.copy {
        None if created || gap => return Ok(Applied::NeedsCopy),
        None => {}
        Some((upto, orders)) => {
            upsert_orders(&tx, orders.iter()).await?;
            insert_trades(
                &tx,
                orders.iter().filter_map(|o| {
                    match (o.side, o.counterpart, o.price, o.matched_time) {
                        (crate::domain::Side::Request, Some(p), Some(price), Some(at)) => {
                            Some((o.key, p, o.statement, price.micros(), at.0))
                        }
                        _ => None,
                    }
                }),
            )
            .await?;
            insert_proofs(&tx, b.proofs.values()).await?;
            cursor = cursor.max(upto as i64);
        }
    }
    // Movements of every event of the batch, even those a copy already covers (a copy
    // holds records, not the ledger); keyed, so none is written twice.
    insert_ledger(&tx, stmt, &b.events.iter().collect::<Vec<_>>()).await?;
    let new: Vec<&Event> = b.events.iter().filter(|e| e.n as i64 > cursor).collect();
    // Kinds are applied set-based within segments in lifecycle order; a rollback takes a
    // request back to `created`, so it ends a segment and is applied on its own.
    for segment in new.split_inclusive(|e| matches!(e.what, EventKind::RolledBack { .. })) {
        apply_segment(&tx, b, segment).await?;
        if let Some(e) = segment.last() {
            if let EventKind::RolledBack {
                request,
                proposal,
                cost,
            } = e.what
            {
                let at = e.at.0 as i64;
                tx.execute(
                    &format!(
                        "UPDATE orders SET status = 'created', counterpart = NULL, price = NULL, \
                         matched_time = NULL, updated_on = $2, cost = $3 \
                         WHERE key = $1 AND {NOT_CLOSED}"
                    ),
                    &[&(request.0 as i64), &at, &(cost as i64)],
                )
                .await?;
                tx.execute(
                    &format!(
                        "UPDATE orders SET status = 'withdrawn', updated_on = $2, failed = $2 \
                         WHERE key = $1 AND {NOT_CLOSED}"
                    ),
                    &[&(proposal.0 as i64), &at],
                )
                .await?;
            }
        }
    }
    let last = b.events.last().map_or(cursor, |e| cursor.max(e.n as i64));
    tx.execute(
        "UPDATE archive_cursor SET event_seq = $2, fence = $3 WHERE statement_key = $1",
        &[&stmt, &last, &fence],
    )
    .await?;
    tx.commit().await?;
    Ok(Applied::Committed {
        cursor: last as u64,
        applied: new.len() as u64,
    })
}

/// Applies events of one segment (no rollback but maybe its last), set-based per kind.
async fn apply_segment(
    tx: &Transaction<'_>,
    b: &Batch<'_>,
    new: &[&Event],
) -> Result<(), ArchiveError> {
    // Set-based, one statement per kind, in lifecycle order: an order's events within a
    // batch are placed, then matched, then proved or withdrawn, so applying kinds in
    // that order ends where applying the events one by one ends.
    let placed = new.iter().filter_map(|e| match &e.what {
        EventKind::Placed(o) => Some(o.as_ref()),
        _ => None,
    });
    upsert_orders(tx, placed).await?;
    let matched: Vec<(Key, Key, u64, u64)> = new
        .iter()
        .filter_map(|e| match e.what {
            EventKind::Matched {
                request,
                proposal,
                price,
            } => Some((request, proposal, price, e.at.0)),
            _ => None,
        })
        .collect();
    if !matched.is_empty() {
        let mut keys = Vec::new();
        let mut other = Vec::new();
        let mut prices = Vec::new();
        let mut ats = Vec::new();
        for &(r, p, price, at) in &matched {
            for (k, o) in [(r, p), (p, r)] {
                keys.push(k.0 as i64);
                other.push(o.0 as i64);
                prices.push(price as i64);
                ats.push(at as i64);
            }
        }
        tx.execute(
            &format!(
                "UPDATE orders SET status = 'processing', counterpart = u.other, price = u.price, \
                 matched_time = u.at, updated_on = u.at \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) \
                   AS u(key, other, price, at) \
                 WHERE orders.key = u.key AND {NOT_CLOSED}"
            ),
            &[&keys, &other, &prices, &ats],
        )
        .await?;
        insert_trades(
            tx,
            matched
                .iter()
                .map(|&(r, p, price, at)| (r, p, b.statement, price, at)),
        )
        .await?;
    }
    let mut proved = Vec::new();
    let (mut done_keys, mut done_proofs, mut done_ats) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gone_keys, mut gone_ats) = (Vec::new(), Vec::new());
    for e in new {
        match e.what {
            EventKind::Proved {
                proof,
                request,
                proposal,
            } => {
                let record = b.proofs.get(&proof).ok_or_else(|| {
                    ArchiveError::Corrupt(format!(
                        "statement {}: event {} names proof {proof}, which Redis does not hold",
                        b.statement, e.n
                    ))
                })?;
                proved.push(record);
                for k in [request, proposal] {
                    done_keys.push(k.0 as i64);
                    done_proofs.push(proof.0 as i64);
                    done_ats.push(e.at.0 as i64);
                }
            }
            EventKind::Withdrawn { key, .. } => {
                gone_keys.push(key.0 as i64);
                gone_ats.push(e.at.0 as i64);
            }
            EventKind::Resold {
                request,
                proof,
                price,
            } => {
                tx.execute(
                    &format!(
                        "UPDATE orders SET status = 'completed', proof_key = $2, price = $3, \
                         counterpart = NULL, matched_time = NULL, updated_on = $4 \
                         WHERE key = $1 AND {NOT_CLOSED}"
                    ),
                    &[
                        &(request.0 as i64),
                        &(proof.0 as i64),
                        &(price as i64),
                        &(e.at.0 as i64),
                    ],
                )
                .await?;
            }
            _ => {}
        }
    }
    insert_proofs(tx, proved.into_iter()).await?;
    if !done_keys.is_empty() {
        tx.execute(
            &format!(
                "UPDATE orders SET status = 'completed', proof_key = u.proof, updated_on = u.at \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(key, proof, at) \
                 WHERE orders.key = u.key AND {NOT_CLOSED}"
            ),
            &[&done_keys, &done_proofs, &done_ats],
        )
        .await?;
    }
    if !gone_keys.is_empty() {
        tx.execute(
            &format!(
                "UPDATE orders SET status = 'withdrawn', updated_on = u.at \
                 FROM UNNEST($1::bigint[], $2::bigint[]) AS u(key, at) \
                 WHERE orders.key = u.key AND {NOT_CLOSED}"
            ),
            &[&gone_keys, &gone_ats],
        )
        .await?;
    }
    Ok(())
}

/// Inserts orders, or refreshes those already there that are not closed. An order
/// given twice (a copy read while it moved between indexes) is written as given last.
async fn upsert_orders<'o>(
    tx: &Transaction<'_>,
    orders: impl Iterator<Item = &'o OrderRecord>,
) -> Result<(), ArchiveError> {
    let latest: std::collections::BTreeMap<Key, &OrderRecord> =
        orders.map(|o| (o.key, o)).collect();
    let mut cols = OrderColumns::default();
    for o in latest.into_values() {
        cols.push(o);
    }
    if cols.key.is_empty() {
        return Ok(());
    }
    let c = &cols;
    tx.execute(
        &format!(
            "INSERT INTO orders (key, side, statement_key, status, cost, eval_time, wait_period, \
               sender, created_on, updated_on, seq, input, canon, counterpart, matched_time, \
               price, proof_key, failed) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], \
               $5::bigint[], $6::int[], $7::int[], $8::text[], $9::bigint[], $10::bigint[], \
               $11::bigint[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], \
               $16::bigint[], $17::bigint[], $18::bigint[]) \
             ON CONFLICT (key) DO UPDATE SET status = EXCLUDED.status, \
               updated_on = EXCLUDED.updated_on, counterpart = EXCLUDED.counterpart, \
               matched_time = EXCLUDED.matched_time, price = EXCLUDED.price, \
               proof_key = EXCLUDED.proof_key, cost = EXCLUDED.cost, failed = EXCLUDED.failed \
             WHERE {NOT_CLOSED}"
        ),
        &[
            &c.key,
            &c.side,
            &c.statement,
            &c.status,
            &c.cost,
            &c.eval_time,
            &c.wait_period,
            &c.sender,
            &c.created,
            &c.updated,
            &c.seq,
            &c.input,
            &c.canon,
            &c.counterpart,
            &c.matched_time,
            &c.price,
            &c.proof_key,
            &c.failed,
        ],
    )
    .await?;
    Ok(())
}

/// Orders as column arrays, for `UNNEST`.
#[derive(Default)]
struct OrderColumns {
    key: Vec<i64>,
    side: Vec<&'static str>,
    statement: Vec<i64>,
    status: Vec<&'static str>,
    cost: Vec<i64>,
    eval_time: Vec<Option<i32>>,
    wait_period: Vec<Option<i32>>,
    sender: Vec<String>,
    created: Vec<i64>,
    updated: Vec<i64>,
    seq: Vec<i64>,
    input: Vec<Option<String>>,
    canon: Vec<Option<String>>,
    counterpart: Vec<Option<i64>>,
    matched_time: Vec<Option<i64>>,
    price: Vec<Option<i64>>,
    proof_key: Vec<Option<i64>>,
    failed: Vec<Option<i64>>,
}

impl OrderColumns {
    fn push(&mut self, o: &OrderRecord) {
        let status: &'static str = match o.status {
            Status::Created => "created",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Withdrawn => "withdrawn",
        };
        self.key.push(o.key.0 as i64);
        self.side.push(o.side.as_str());
        self.statement.push(o.statement.0 as i64);
        self.status.push(status);
        self.cost.push(o.cost.micros() as i64);
        self.eval_time.push(o.eval_time.map(|m| m.0 as i32));
        self.wait_period.push(o.wait_period.map(|m| m.0 as i32));
        self.sender.push(o.sender.clone());
        self.created.push(o.created.0 as i64);
        self.updated.push(o.updated.0 as i64);
        self.seq.push(o.seq as i64);
        self.input.push(o.input.clone());
        self.canon.push(o.canon.clone());
        self.counterpart.push(o.counterpart.map(|k| k.0 as i64));
        self.matched_time.push(o.matched_time.map(|m| m.0 as i64));
        self.price.push(o.price.map(|p| p.micros() as i64));
        self.proof_key.push(o.proof_key.map(|k| k.0 as i64));
        self.failed.push(o.failed.map(|m| m.0 as i64));
    }
}

/// Inserts trades (request, proposal, statement, price, time) not yet there.
async fn insert_trades(
    tx: &Transaction<'_>,
    trades: impl Iterator<Item = (Key, Key, Key, u64, u64)>,
) -> Result<(), ArchiveError> {
    let (mut r, mut p, mut s, mut price, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in trades {
        r.push(t.0 .0 as i64);
        p.push(t.1 .0 as i64);
        s.push(t.2 .0 as i64);
        price.push(t.3 as i64);
        at.push(t.4 as i64);
    }
    if r.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO trades (request_key, proposal_key, statement_key, price, matched_time) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
           $5::bigint[]) ON CONFLICT DO NOTHING",
        &[&r, &p, &s, &price, &at],
    )
    .await?;
    Ok(())
}

/// Inserts the account movements of `moved` events (keyed by statement, event number
/// and position: applying an event twice writes nothing new).
async fn insert_ledger(
    tx: &Transaction<'_>,
    stmt: i64,
    events: &[&Event],
) -> Result<(), ArchiveError> {
    let (mut seq, mut idx, mut user, mut bal, mut blk) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut dep, mut lock, mut kind, mut order, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in events {
        let EventKind::Moved(moves) = &e.what else {
            continue;
        };
        for (i, m) in moves.iter().enumerate() {
            seq.push(e.n as i64);
            idx.push(i32::try_from(i).unwrap_or(i32::MAX));
            user.push(m.user.as_str());
            bal.push(m.balance.to_string());
            blk.push(m.blocked.to_string());
            dep.push(m.deposit.to_string());
            lock.push(m.locked.to_string());
            kind.push(m.kind.as_str());
            order.push(m.order.0 as i64);
            at.push(e.at.0 as i64);
        }
    }
    if seq.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO ledger (statement_key, event_seq, idx, user_name, balance, blocked,            deposit, locked, kind, order_key, at)          SELECT $1, s, i, u, b::numeric, k::numeric, d::numeric, l::numeric, t, o, a          FROM UNNEST($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[],            $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[])            AS m(s, i, u, b, k, d, l, t, o, a)          ON CONFLICT DO NOTHING",
        &[
            &stmt, &seq, &idx, &user, &bal, &blk, &dep, &lock, &kind, &order, &at,
        ],
    )
    .await?;
    Ok(())
}

/// Inserts a wallet's ledger entries not yet there.
pub(super) async fn insert_wallet_ledger(
    c: &tokio_postgres::Client,
    user: &str,
    entries: &[LedgerEntry],
) -> Result<(), ArchiveError> {
    if entries.is_empty() {
        return Ok(());
    }
    let n = entries.len();
    let (mut at, mut seq, mut kind) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut bal, mut dep, mut refs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for e in entries {
        at.push(
            i64::try_from(e.at)
                .map_err(|_| ArchiveError::Corrupt(format!("ledger time {}", e.at)))?,
        );
        seq.push(
            i64::try_from(e.seq)
                .map_err(|_| ArchiveError::Corrupt(format!("ledger sequence {}", e.seq)))?,
        );
        kind.push(e.kind.as_str());
        bal.push(e.balance.to_string());
        dep.push(e.deposit.to_string());
        refs.push(e.reference.as_str());
    }
    c.execute(
        "INSERT INTO wallet_ledger (user_name, at, seq, kind, balance, deposit, reference) \
         SELECT $1, a, s, k, b::numeric, d::numeric, r \
         FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
           AS m(a, s, k, b, d, r) \
         ON CONFLICT DO NOTHING",
        &[&user.to_lowercase(), &at, &seq, &kind, &bal, &dep, &refs],
    )
    .await?;
    Ok(())
}

/// Inserts proofs not yet there (a proof never changes).
async fn insert_proofs<'p>(
    tx: &Transaction<'_>,
    proofs: impl Iterator<Item = &'p ProofRecord>,
) -> Result<(), ArchiveError> {
    let mut key = Vec::new();
    let mut stmt = Vec::new();
    let mut request = Vec::new();
    let mut proposal = Vec::new();
    let mut sender = Vec::new();
    let mut input = Vec::new();
    let mut generation = Vec::new();
    let mut created = Vec::new();
    let mut output = Vec::new();
    let mut system = Vec::new();
    let mut bytes = Vec::new();
    for f in proofs {
        let raw = hex::decode(&f.proof_hex).map_err(|_| {
            ArchiveError::Corrupt(format!("proof {}: stored bytes are not hex", f.key))
        })?;
        key.push(f.key.0 as i64);
        stmt.push(f.statement.0 as i64);
        request.push(f.request.0 as i64);
        proposal.push(f.proposal.0 as i64);
        sender.push(f.sender.as_str());
        input.push(f.input.as_str());
        generation.push(f.generation_ms as i64);
        created.push(f.created.0 as i64);
        output.push(f.output.as_deref());
        system.push(f.proof_system.as_str());
        bytes.push(raw);
    }
    if key.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO proofs (key, statement_key, request_key, proposal_key, sender, input, \
           generation_ms, created_on, output, proof_system, proof) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
           $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], \
           $11::bytea[]) ON CONFLICT DO NOTHING",
        &[
            &key,
            &stmt,
            &request,
            &proposal,
            &sender,
            &input,
            &generation,
            &created,
            &output,
            &system,
            &bytes,
        ],
    )
    .await?;
    Ok(())
}
