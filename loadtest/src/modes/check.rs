//! `check`: the invariant check of the soak, on a market's Redis as it is now, without
//! load or acknowledgements (e.g. after a crash test); with `--database-url`, on its
//! archive in PostgreSQL too. Exits 1 on violations.

use std::time::Instant;

use anyhow::Result;
use market_invariants::{self as invariants, pg_rows, redis_rows};

use crate::cli::CheckArgs;
use crate::{loopback, redis_view};

/// Runs the `check` mode.
pub async fn main(a: CheckArgs) -> Result<i32> {
    let url = loopback::check_redis_url(&a.redis_url)?;
    let prefix = a.key_prefix.clone();
    let settled = !a.unsettled;
    let db = a
        .database_url
        .as_deref()
        .map(loopback::check_postgres_url)
        .transpose()?;
    let t = Instant::now();
    let c = tokio::task::spawn_blocking(move || -> Result<invariants::Checked> {
        let mut con = redis_view::connect(&url)?;
        match db {
            None => {
                let rows = redis_rows::read_orders(&mut con, &prefix, &[])?;
                Ok(invariants::check(&rows, &[], &[], settled))
            }
            Some(db) => {
                let mut pg = pg_rows::connect(&db)?;
                let (rows, archive) = pg_rows::read_all(&mut con, &prefix, &[], &mut pg)?;
                Ok(invariants::check_with_archive(
                    rows,
                    archive,
                    &[],
                    &[],
                    settled,
                ))
            }
        }
    })
    .await??;
    println!(
        "{} orders ({:?}; {} only in PostgreSQL, {} in both, {} archive cursors), {} matches, checked in {:.1} s: {} violation(s)",
        c.orders,
        c.by_status,
        c.archived,
        c.in_both,
        c.cursors,
        c.matches,
        t.elapsed().as_secs_f64(),
        c.violations.len()
    );
    for v in c.violations.iter().take(200) {
        println!("VIOLATION {}: keys {:?}: {}", v.rule, v.keys, v.detail);
    }
    Ok(if c.violations.is_empty() { 0 } else { 1 })
}
