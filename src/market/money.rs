//! The market's economics, pure: collateral, commission, fines and deadlines, and the
//! account movements ([`Payout`]s) each transition makes on its statement. Amounts are exact integers of micro-units (`u128`, so
//! a product of a price and a factor never overflows).
//!
//! - Money moves between a user's account on the statement (free balance and deposit)
//!   and its orders; the account is topped up from the user's wallet and swept back to
//!   it (`store::wallets`).
//! - A request holds its cost in escrow from the moment it is placed; a match re-prices
//!   the escrow to the trade price and releases the rest to the requester.
//! - A proposal holds collateral from its producer's deposit: when placed, the factor
//!   times the highest price it could trade at right then (the best bid, or its own
//!   cost), as far as the deposit covers it and never less than the factor times its own
//!   cost. A match keeps the factor times the trade price and returns the rest; an
//!   incoming proposal passes over requests whose price its collateral does not cover.
//! - A completed match pays the producer the price less the commission (to the market
//!   account) and returns its collateral.
//! - A producer that misses its deadline loses its collateral (the factor times the
//!   price) to the requester: first to restore the request's escrow to its cost, the
//!   rest to the requester's balance. The request returns to its book with its original
//!   time priority; if even the fine cannot restore its escrow (a cost more than factor
//!   + 1 times the price), it returns at the cost its escrow covers.

use std::time::Duration;

use crate::domain::{Key, Millis, Minutes};
use crate::store::{Payout, MARKET_ACCOUNT};

/// The rules of money and time every statement follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Economics {
    /// Collateral per unit of matched price (`pf`): a deposit of X backs X / pf of
    /// matched work at once, and a missed deadline costs pf × price.
    pub collateral_factor: u32,
    /// Commission, in millionths of the price (5000 = 0.5 %).
    pub commission_ppm: u64,
    /// Least commission of a completed trade, micro-units (never more than the price).
    pub commission_min: u64,
    /// Deadline of a match whose proposal gave no `eval_time`, minutes.
    pub default_eval_minutes: u32,
    /// How long a minute of `eval_time` and `wait_period` lasts (60 s; tests shorten it).
    pub minute: Duration,
    /// How long a user's account on a statement stays idle before its free money goes
    /// back to the user's wallet.
    pub sweep_after: Duration,
}

impl Default for Economics {
    fn default() -> Self {
        Economics {
            collateral_factor: 10,
            commission_ppm: 5000,
            commission_min: 1,
            default_eval_minutes: 60,
            minute: Duration::from_secs(60),
            sweep_after: Duration::from_secs(10),
        }
    }
}

impl Economics {
    /// Collateral a match at `price` needs.
    pub fn collateral(&self, price: u64) -> u128 {
        u128::from(self.collateral_factor) * u128::from(price)
    }

    /// The market's commission on a trade at `price`.
    pub fn commission(&self, price: u64) -> u128 {
        let rate = (u128::from(price) * u128::from(self.commission_ppm)).div_ceil(1_000_000);
        rate.max(u128::from(self.commission_min))
            .min(u128::from(price))
    }

    /// `minutes` from `from`.
    pub fn after(&self, from: Millis, minutes: Minutes) -> Millis {
        let ms = self
            .minute
            .as_millis()
            .saturating_mul(u128::from(minutes.0));
        Millis(from.0.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)))
    }

    /// When a match made at `matched` must have its proof.
    pub fn deadline(&self, matched: Millis, eval_time: Option<Minutes>) -> Millis {
        self.after(
            matched,
            eval_time.unwrap_or(Minutes(self.default_eval_minutes)),
        )
    }
}

fn payout(user: &str, kind: &'static str, order: Key) -> Payout {
    Payout {
        user: user.to_owned(),
        balance: 0,
        blocked: 0,
        deposit: 0,
        locked: 0,
        kind,
        order,
        generation_ms: 0,
    }
}

fn neg(v: u128) -> i128 {
    -(i128::try_from(v).unwrap_or(i128::MAX))
}

fn pos(v: u128) -> i128 {
    i128::try_from(v).unwrap_or(i128::MAX)
}

/// Money from the user's wallet arriving in its account with `order` (to the free
/// deposit for a proposal, else the free balance).
pub fn topup(user: &str, order: Key, amount: u128, deposit: bool) -> Option<Payout> {
    (amount > 0).then(|| {
        let mut p = payout(user, "topup", order);
        if deposit {
            p.deposit = pos(amount);
        } else {
            p.balance = pos(amount);
        }
        p
    })
}

/// A request's escrow taken from its requester's free balance.
pub fn escrow(requester: &str, request: Key, amount: u128) -> Option<Payout> {
    (amount > 0).then(|| Payout {
        balance: neg(amount),
        blocked: pos(amount),
        ..payout(requester, "escrow", request)
    })
}

/// A proposal's collateral taken from its producer's free deposit.
pub fn collateral(producer: &str, proposal: Key, amount: u128) -> Option<Payout> {
    (amount > 0).then(|| Payout {
        deposit: neg(amount),
        locked: pos(amount),
        ..payout(producer, "collateral", proposal)
    })
}

/// An idle account's free money back to its wallet.
pub fn sweep(user: &str, balance: u128, deposit: u128) -> Option<Payout> {
    (balance > 0 || deposit > 0).then(|| Payout {
        balance: neg(balance),
        deposit: neg(deposit),
        ..payout(user, "sweep", Key(0))
    })
}

/// A request's escrow back to its requester's balance.
pub fn release(requester: &str, request: Key, amount: u128) -> Option<Payout> {
    (amount > 0).then(|| Payout {
        balance: pos(amount),
        blocked: neg(amount),
        ..payout(requester, "release", request)
    })
}

/// A proposal's collateral back to its producer's deposit.
pub fn unlock(producer: &str, proposal: Key, amount: u128) -> Option<Payout> {
    (amount > 0).then(|| Payout {
        deposit: pos(amount),
        locked: neg(amount),
        ..payout(producer, "unlock", proposal)
    })
}

/// The payouts of a completed trade: the producer earns the price less commission,
/// the market the commission, the requester's escrow is spent, the collateral unlocked.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    e: &Economics,
    requester: &str,
    request: Key,
    producer: &str,
    proposal: Key,
    price: u64,
    collateral: u128,
    generation_ms: u64,
) -> Vec<Payout> {
    let fee = e.commission(price);
    let earned = u128::from(price) - fee;
    let mut out = vec![Payout {
        blocked: neg(u128::from(price)),
        ..payout(requester, "spend", request)
    }];
    // Always sent (even when the commission takes it all): it carries the delivery to
    // the producer's track record.
    out.push(Payout {
        balance: pos(earned),
        generation_ms,
        ..payout(producer, "earn", proposal)
    });
    if fee > 0 {
        out.push(Payout {
            balance: pos(fee),
            ..payout(MARKET_ACCOUNT, "commission", proposal)
        });
    }
    out.extend(unlock(producer, proposal, collateral));
    out
}

/// The payouts of a resale: a request completed at once by a stored proof pays that
/// proof's producer `pay` (less commission); the rest of its escrow `held` goes back.
pub fn resale(
    e: &Economics,
    requester: &str,
    request: Key,
    producer: &str,
    held: u128,
    pay: u64,
) -> Vec<Payout> {
    let pay128 = u128::from(pay).min(held);
    let mut out = Vec::new();
    if pay128 > 0 {
        let fee = e.commission(pay).min(pay128);
        out.push(Payout {
            blocked: neg(pay128),
            ..payout(requester, "spend", request)
        });
        if pay128 > fee {
            out.push(Payout {
                balance: pos(pay128 - fee),
                ..payout(producer, "resale", request)
            });
        }
        if fee > 0 {
            out.push(Payout {
                balance: pos(fee),
                ..payout(MARKET_ACCOUNT, "commission", request)
            });
        }
    }
    out.extend(release(requester, request, held - pay128));
    out
}

/// What a missed deadline does to money: the request's new escrow (and cost), and the
/// payouts of the fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// What the request holds from now on.
    pub held: u128,
    /// The request's cost from now on (micro-units).
    pub cost: u64,
    /// The fine's payouts.
    pub payouts: Vec<Payout>,
}

/// The fine of a producer that missed its deadline: its collateral goes to the
/// requester, first to restore the request's escrow (`held`) to its `cost`.
pub fn fine(
    requester: &str,
    request: Key,
    cost: u64,
    held: u128,
    producer: &str,
    proposal: Key,
    collateral: u128,
) -> Rollback {
    let short = u128::from(cost).saturating_sub(held);
    let topup = short.min(collateral);
    let held = held + topup;
    let cost = u64::try_from(held.min(u128::from(cost))).unwrap_or(cost);
    let mut payouts = Vec::new();
    if collateral > 0 {
        payouts.push(Payout {
            locked: neg(collateral),
            ..payout(producer, "fined", proposal)
        });
        payouts.push(Payout {
            balance: pos(collateral - topup),
            blocked: pos(topup),
            ..payout(requester, "fine", request)
        });
    }
    Rollback {
        held,
        cost,
        payouts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_is_a_rate_with_a_floor_never_above_the_price() {
        let e = Economics::default();
        assert_eq!(e.commission(1_000_000), 5000);
        assert_eq!(e.commission(1), 1);
        assert_eq!(e.commission(150), 1);
        // Rounded up: 0.5 % of 1001 is 5.005.
        assert_eq!(e.commission(1001), 6);
        let none = Economics {
            commission_ppm: 0,
            commission_min: 0,
            ..e
        };
        assert_eq!(none.commission(10), 0);
        // The largest cost: no overflow.
        assert_eq!(e.commission(10u64.pow(18)), 5 * 10u128.pow(15));
        assert_eq!(e.collateral(10u64.pow(18)), 10u128.pow(19));
    }

    #[test]
    fn settling_moves_exactly_the_price_and_the_collateral() {
        let e = Economics::default();
        let p = settle(&e, "r", Key(1), "p", Key(2), 1_000_000, 10_000_000, 5);
        let paid: i128 = p.iter().map(|x| x.balance).sum();
        assert_eq!(paid, 1_000_000);
        assert_eq!(p.iter().map(|x| x.blocked).sum::<i128>(), -1_000_000);
        assert_eq!(p.iter().map(|x| x.deposit).sum::<i128>(), 10_000_000);
        assert_eq!(p.iter().map(|x| x.locked).sum::<i128>(), -10_000_000);
        assert!(p
            .iter()
            .any(|x| x.user == MARKET_ACCOUNT && x.balance == 5000));
    }

    #[test]
    fn a_resale_pays_the_producer_and_releases_the_rest() {
        let e = Economics::default();
        let p = resale(&e, "r", Key(1), "p", 5_000_000, 2_000_000);
        assert_eq!(p.iter().map(|x| x.balance).sum::<i128>(), 5_000_000);
        assert_eq!(p.iter().map(|x| x.blocked).sum::<i128>(), -5_000_000);
        assert!(p
            .iter()
            .any(|x| x.user == "p" && x.balance == 2_000_000 - 10_000));
        // Nothing to pay: all released.
        let p = resale(&e, "r", Key(1), "p", 5, 0);
        assert_eq!((p.len(), p[0].balance), (1, 5));
    }

    #[test]
    fn a_fine_restores_the_escrow_first() {
        // Matched at 2 of a request costing 5: escrow 2, collateral 20.
        let r = fine("r", Key(1), 5, 2, "p", Key(2), 20);
        assert_eq!((r.held, r.cost), (5, 5));
        let to_requester = r.payouts.iter().find(|x| x.user == "r").unwrap();
        assert_eq!((to_requester.balance, to_requester.blocked), (17, 3));
        // Too little to restore: the request is re-priced to its escrow.
        let r = fine("r", Key(1), 100, 2, "p", Key(2), 20);
        assert_eq!((r.held, r.cost), (22, 22));
        // Money in = money out.
        let out: i128 = r.payouts.iter().map(|x| x.balance + x.blocked).sum();
        assert_eq!(out, 20);
    }

    #[test]
    fn deadlines_use_the_proposals_time_or_the_default() {
        let e = Economics {
            minute: Duration::from_millis(100),
            ..Economics::default()
        };
        assert_eq!(e.deadline(Millis(1000), Some(Minutes(3))), Millis(1300));
        assert_eq!(e.deadline(Millis(1000), None), Millis(1000 + 6000));
    }
}
