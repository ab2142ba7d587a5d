//! Reading the archive straight from the market's PostgreSQL (feature `pg`; sync
//! client, read-only): `orders` and `archive_cursor` of the schema in
//! `src/archive/migrations/V1__history.sql`, as [`Archive`] for
//! [`check_with_archive`](crate::archive::check_with_archive).
//!
//! The sync `postgres` client runs a runtime of its own: call these off any async
//! runtime's threads (e.g. in `spawn_blocking`). TLS is not offered: the checker reads
//! a PostgreSQL on the same machine (loopback or a socket).

use std::fmt;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::archive::{Archive, Cursor};
use crate::order::{AckedOrder, OrderRow};
use crate::redis_rows::{self, Source};

/// What can go wrong reading Redis and PostgreSQL.
#[derive(Debug)]
pub enum ReadError {
    /// Redis.
    Redis(redis::RedisError),
    /// PostgreSQL.
    Postgres(postgres::Error),
    /// A value the checker cannot take (a negative key, say).
    Data(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Redis(e) => write!(f, "reading Redis: {e}"),
            ReadError::Postgres(e) => write!(f, "reading PostgreSQL: {e}"),
            ReadError::Data(e) => write!(f, "reading PostgreSQL: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Redis(e) => Some(e),
            ReadError::Postgres(e) => Some(e),
            ReadError::Data(_) => None,
        }
    }
}

impl From<redis::RedisError> for ReadError {
    fn from(e: redis::RedisError) -> Self {
        ReadError::Redis(e)
    }
}

impl From<postgres::Error> for ReadError {
    fn from(e: postgres::Error) -> Self {
        ReadError::Postgres(e)
    }
}

/// Connects to `url` (`postgres://user@host:port/db`, no TLS).
pub fn connect(url: &str) -> Result<Client, postgres::Error> {
    Client::connect(url, NoTls)
}

/// A non-negative BIGINT as u64; a negative one reads as absent (and then fails the
/// check that needs it).
fn unsigned(v: Option<i64>) -> Option<u64> {
    v.and_then(|x| u64::try_from(x).ok())
}

const ORDERS: &str = "SELECT key, side, statement_key, status, cost, eval_time, seq, \
                      counterpart, price, proof_key FROM orders";

/// Every row of `orders`, as rows marked `archived` (streamed, not all held twice).
pub fn read_orders(pg: &mut Client) -> Result<Vec<OrderRow>, ReadError> {
    let mut out = Vec::new();
    let mut it = pg.query_raw(ORDERS, std::iter::empty::<i64>())?;
    while let Some(r) = it.next()? {
        let key: i64 = r.try_get(0)?;
        let statement: i64 = r.try_get(2)?;
        let (Ok(key), Ok(statement)) = (u64::try_from(key), u64::try_from(statement)) else {
            return Err(ReadError::Data(format!(
                "order key {key} / statement {statement} is negative"
            )));
        };
        let eval_time: Option<i32> = r.try_get(5)?;
        out.push(OrderRow {
            key,
            statement,
            kind: r.try_get(1)?,
            status: r.try_get(3)?,
            cost: unsigned(r.try_get(4)?),
            eval_time: eval_time.and_then(|t| u32::try_from(t).ok()),
            seq: unsigned(r.try_get(6)?),
            counterpart: unsigned(r.try_get(7)?),
            price: unsigned(r.try_get(8)?),
            proof_key: unsigned(r.try_get(9)?),
            indexed_as: Vec::new(),
            located_in: None,
            archived: true,
            sender: None,
            held: None,
        });
    }
    out.sort_by_key(|r| r.key);
    Ok(out)
}

/// Every row of `archive_cursor`.
pub fn read_cursors(pg: &mut Client) -> Result<Vec<Cursor>, ReadError> {
    let mut out = Vec::new();
    for r in pg.query(
        "SELECT statement_key, event_seq FROM archive_cursor ORDER BY statement_key",
        &[],
    )? {
        let (s, e): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        let (Ok(statement), Ok(event_seq)) = (u64::try_from(s), u64::try_from(e)) else {
            return Err(ReadError::Data(format!(
                "archive_cursor ({s}, {e}) is negative"
            )));
        };
        out.push(Cursor {
            statement,
            event_seq,
        });
    }
    Ok(out)
}

/// Reads everything the archive check needs, in the order that keeps it sound on a
/// live market: PostgreSQL's cursors, then Redis' rows and event counters, then
/// PostgreSQL's orders. Returns Redis' rows and the archive.
pub fn read_all(
    con: &mut impl Source,
    prefix: &str,
    acked: &[AckedOrder],
    pg: &mut Client,
) -> Result<(Vec<OrderRow>, Archive), ReadError> {
    let cursors = read_cursors(pg)?;
    let mut rows = redis_rows::read_orders(con, prefix, acked)?;
    let stmts: Vec<u64> = cursors.iter().map(|c| c.statement).collect();
    let evseq = redis_rows::read_evseq(con, prefix, &stmts)?;
    let orders = read_orders(pg)?;
    // An order listed by an index but without a hash when read may have been removed
    // between the two reads (the archiver runs on): if PostgreSQL has it and no index
    // lists it any more, it left Redis whole.
    let archived: std::collections::HashSet<u64> = orders.iter().map(|o| o.key).collect();
    let suspects: Vec<(u64, u64, Vec<String>)> = rows
        .iter()
        .filter(|r| r.kind == "missing-hash" && archived.contains(&r.key))
        .map(|r| (r.key, r.statement, r.indexed_as.clone()))
        .collect();
    if !suspects.is_empty() {
        let mut cmds = Vec::new();
        for (k, s, ix) in &suspects {
            for name in ix {
                let mut c = redis::cmd("ZSCORE");
                c.arg(format!("{prefix}:{{stmt:{s}}}:ix:{name}")).arg(k);
                cmds.push(c);
            }
        }
        let mut replies = con.batch(cmds)?.into_iter();
        let mut gone = std::collections::HashSet::new();
        for (k, _, ix) in &suspects {
            let still = ix
                .iter()
                .filter_map(|_| replies.next())
                .filter(|v| !matches!(v, redis::Value::Nil))
                .count();
            if still == 0 {
                gone.insert(*k);
            }
        }
        rows.retain(|r| !(r.kind == "missing-hash" && gone.contains(&r.key)));
    }
    Ok((
        rows,
        Archive {
            orders,
            cursors,
            evseq,
        },
    ))
}
