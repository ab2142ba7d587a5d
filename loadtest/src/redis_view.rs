//! Reading the market's Redis directly (read-only, sync API): a connection for the
//! invariant check (whose row reader is `market_invariants::redis_rows`) and
//! `INFO memory` for the memory figures.

use anyhow::{Context, Result};

/// Opens a connection (the URL was checked to be loopback).
pub fn connect(url: &str) -> Result<redis::Connection> {
    let client = redis::Client::open(url)?;
    client
        .get_connection_with_timeout(std::time::Duration::from_secs(10))
        .with_context(|| format!("connecting to {url}"))
}

/// A numeric `field:value` line of an `INFO` answer.
pub fn parse_info_u64(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(k, _)| *k == field)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// `used_memory` in bytes.
pub fn used_memory(con: &mut redis::Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query(con)?;
    parse_info_u64(&info, "used_memory").context("INFO memory without used_memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        assert_eq!(parse_info_u64(info, "used_memory"), Some(1_048_576));
        assert_eq!(parse_info_u64(info, "used_memory_rss"), None);
    }
}
