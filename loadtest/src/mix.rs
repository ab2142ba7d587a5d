//! The operation mix: which calls a simulated user makes, in what proportions.
//!
//! Written on the command line as `request=40,proposal=40,get=15,withdraw=5,proof=0`
//! (weights, not necessarily summing to 100). Picking is a weighted draw per call.

use std::fmt;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::rng::Rng;

/// One kind of call the harness measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `POST …/request/` (a requester places a bid).
    PushRequest,
    /// `POST …/proposal/` (a producer places an ask).
    PushProposal,
    /// `GET …/request/{key}` or `…/proposal/{key}` of one's own recent order.
    Get,
    /// `DELETE …/{kind}/{key}` of one's own recent order (409 when it matched already).
    Withdraw,
    /// `POST …/proof` for a matched proposal.
    ProofPush,
    /// The sampled read of a match's counterpart order (not part of the mix).
    VerifyMatch,
    /// The plain actix-web route of the HTTP ceiling (not part of the mix).
    Baseline,
}

impl Op {
    /// All operations in report order.
    pub const ALL: [Op; 7] = [
        Op::PushRequest,
        Op::PushProposal,
        Op::Get,
        Op::Withdraw,
        Op::ProofPush,
        Op::VerifyMatch,
        Op::Baseline,
    ];

    /// Dense index for per-op tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::PushRequest => "push_request",
            Op::PushProposal => "push_proposal",
            Op::Get => "get",
            Op::Withdraw => "withdraw",
            Op::ProofPush => "proof_push",
            Op::VerifyMatch => "verify_match",
            Op::Baseline => "baseline_post",
        }
    }

    /// True for the calls that place an order.
    pub fn is_order(self) -> bool {
        matches!(self, Op::PushRequest | Op::PushProposal | Op::Baseline)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Weighted operation mix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mix {
    /// `(op, weight)` with positive weights only.
    pub weights: Vec<(Op, u32)>,
}

impl Mix {
    /// The default mix of a market run: mostly order intake, some reads and withdrawals.
    pub const DEFAULT: &'static str = "request=40,proposal=40,get=15,withdraw=5,proof=0";
    /// Order intake only, half requests and half proposals.
    pub const INTAKE: &'static str = "request=50,proposal=50";

    /// Parses `name=weight,...`.
    pub fn parse(text: &str) -> Result<Mix> {
        let mut weights: Vec<(Op, u32)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, w)) = part.split_once('=') else {
                bail!("mix entry {part:?} is not name=weight");
            };
            let op = match name.trim() {
                "request" | "push_request" => Op::PushRequest,
                "proposal" | "push_proposal" => Op::PushProposal,
                "get" => Op::Get,
                "withdraw" => Op::Withdraw,
                "proof" | "proof_push" => Op::ProofPush,
                other => bail!(
                    "unknown mix entry {other:?} (use request, proposal, get, withdraw, proof)"
                ),
            };
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("weight of {name:?} is not a whole number"))?;
            if weights.iter().any(|(o, _)| *o == op) {
                bail!("{name:?} appears twice in the mix");
            }
            if w > 0 {
                weights.push((op, w));
            }
        }
        if weights.is_empty() {
            bail!("the mix has no operation with a positive weight");
        }
        Ok(Mix { weights })
    }

    /// Sum of weights.
    pub fn total(&self) -> u64 {
        self.weights.iter().map(|&(_, w)| u64::from(w)).sum()
    }

    /// Draws one operation.
    pub fn pick(&self, rng: &mut Rng) -> Op {
        let mut x = rng.below(self.total());
        for &(op, w) in &self.weights {
            if x < u64::from(w) {
                return op;
            }
            x -= u64::from(w);
        }
        self.weights[self.weights.len() - 1].0
    }

    /// Fraction of calls that place an order.
    pub fn order_share(&self) -> f64 {
        let orders: u64 = self
            .weights
            .iter()
            .filter(|(o, _)| o.is_order())
            .map(|&(_, w)| u64::from(w))
            .sum();
        orders as f64 / self.total() as f64
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(o, w)| format!("{}={w}", o.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_draws_in_proportion() {
        let m = Mix::parse(Mix::DEFAULT).unwrap();
        assert_eq!(m.total(), 100);
        assert_eq!(m.weights.len(), 4, "zero weights are dropped");
        assert!((m.order_share() - 0.8).abs() < 1e-9);
        let mut rng = Rng::new(1);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            *counts.entry(m.pick(&mut rng)).or_insert(0u32) += 1;
        }
        let share = |op| f64::from(counts[&op]) / 100_000.0;
        assert!((share(Op::PushRequest) - 0.40).abs() < 0.01);
        assert!((share(Op::Get) - 0.15).abs() < 0.01);
        assert!((share(Op::Withdraw) - 0.05).abs() < 0.01);
        assert!(!counts.contains_key(&Op::ProofPush));
    }

    #[test]
    fn rejects_bad_mixes() {
        assert!(Mix::parse("").is_err());
        assert!(Mix::parse("request=0").is_err());
        assert!(Mix::parse("bogus=1").is_err());
        assert!(Mix::parse("request=x").is_err());
        assert!(Mix::parse("request=1,request=2").is_err());
        assert_eq!(
            Mix::parse(" proof = 3 ").unwrap().weights,
            vec![(Op::ProofPush, 3)]
        );
    }
}
