//! A statement's market data, as `transitions.lua` keeps it with every match and
//! proof: the last trade, the day's summary, completed-trade sums, the latest trades.
//! Reads are a few small hashes and one short list, however long the history.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{Store, StoreError};
use crate::domain::{Key, Millis};

/// One UTC day's trading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Day {
    /// First trade price of the day (micro-units).
    pub open: Option<u64>,
    /// Last trade price of the day.
    pub close: Option<u64>,
    /// Lowest and highest prices.
    pub min: Option<u64>,
    /// Highest price.
    pub max: Option<u64>,
    /// Sum of the day's trade prices.
    pub volume: u128,
    /// Trades.
    pub trades: u64,
}

/// A statement's market data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketData {
    /// The last trade's price and time.
    pub last: Option<(u64, Millis)>,
    /// Today (UTC).
    pub today: Day,
    /// Completed trades.
    pub completed: u64,
    /// Sum of their prices.
    pub price_sum: u128,
    /// Sum of their generation times (match to proof), ms.
    pub gen_ms_sum: u128,
}

/// A trade as the latest-trades list keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    /// The request.
    pub request: Key,
    /// The proposal.
    pub proposal: Key,
    /// Price (micro-units).
    pub price: u64,
    /// When.
    pub at: Millis,
}

fn num<T: std::str::FromStr>(h: &HashMap<String, String>, f: &str) -> Option<T> {
    h.get(f).and_then(|v| v.parse().ok())
}

impl Store {
    /// `stmt`'s market data as of `now`.
    pub async fn market_data(&self, stmt: Key, now: Millis) -> Result<MarketData, StoreError> {
        let k = self.keys.statement(stmt);
        let mut c = self.conn.clone();
        let stats: HashMap<String, String> = c.hgetall(k.stats()).await?;
        let day: HashMap<String, String> = c.hgetall(k.day(now.0 / 86_400_000)).await?;
        Ok(MarketData {
            last: num::<u64>(&stats, "last").zip(num::<u64>(&stats, "last_at").map(Millis)),
            today: Day {
                open: num(&day, "open"),
                close: num(&day, "close"),
                min: num(&day, "min"),
                max: num(&day, "max"),
                volume: num(&day, "volume").unwrap_or(0),
                trades: num(&day, "trades").unwrap_or(0),
            },
            completed: num(&stats, "completed").unwrap_or(0),
            price_sum: num(&stats, "price_sum").unwrap_or(0),
            gen_ms_sum: num(&stats, "gen_ms_sum").unwrap_or(0),
        })
    }

    /// `stmt`'s latest trades, newest first, at most `max`.
    pub async fn recent_trades(&self, stmt: Key, max: usize) -> Result<Vec<Trade>, StoreError> {
        let mut c = self.conn.clone();
        let items: Vec<String> = c
            .lrange(
                self.keys.statement(stmt).trades(),
                0,
                max.saturating_sub(1) as isize,
            )
            .await?;
        items
            .iter()
            .map(|t| {
                let bad = || StoreError::Corrupt(format!("trade {t:?}"));
                let mut it = t.split('|');
                let mut next = || {
                    it.next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or_else(bad)
                };
                Ok(Trade {
                    request: Key(next()?),
                    proposal: Key(next()?),
                    price: next()?,
                    at: Millis(next()?),
                })
            })
            .collect()
    }
}
