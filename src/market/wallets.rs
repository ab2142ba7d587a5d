//! Money as users see it: balances, operator credits, producer deposits, funding an
//! order when it is placed, and giving back money whose order never arrived.
//!
//! How money crosses between a wallet and a statement, atomically on each side, is in
//! `store::wallets`; what each transition pays is in [`super::money`].

use std::time::Duration;

use crate::domain::{amount_text, Key, Millis};
use crate::error::MarketError;
use crate::store::{Funded, Wallet};

use super::matcher::LocalError;
use super::money::Economics;
use super::state::Placed;
use super::Market;

/// A top-up of a user's account on a statement brings the money of this many orders
/// like the one that needed it (as far as the wallet has it).
pub const TOPUP_ORDERS: u128 = 16;

/// How long a short wallet waits for its parked money to come back.
const PULL_BACK_WAIT: Duration = Duration::from_secs(4);

/// Most wallets the resolver looks at per round.
const RESOLVE_WALLETS: usize = 1000;

/// The money an order is placed with.
pub(super) struct Funding {
    /// Whose wallet paid.
    pub user: String,
    /// What left it.
    pub amount: u128,
    /// When (Redis's clock).
    pub at: Millis,
}

/// A producer's record: what it delivered and failed, kept as payouts reach its wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRecord {
    /// Proofs delivered (matches completed).
    pub delivered: u64,
    /// Deadlines missed (matches rolled back).
    pub failures: u64,
    /// Fines paid, micro-units.
    pub fines: u128,
    /// Total generation time of the delivered proofs (match to push), ms.
    pub gen_ms: u128,
}

impl TrackRecord {
    /// Mean generation time in minutes, if it delivered anything.
    pub fn mean_generation_minutes(&self) -> Option<f64> {
        self.gen_ms
            .checked_div(u128::from(self.delivered))
            .map(|ms| ms as f64 / 60_000.0)
    }

    /// The rating: the share of its matches it delivered, smoothed so that a newcomer
    /// starts at 0.5 and one failure among many deliveries costs little:
    /// (delivered + 1) / (delivered + failures + 2).
    pub fn rating(&self) -> f64 {
        (self.delivered as f64 + 1.0) / ((self.delivered + self.failures) as f64 + 2.0)
    }
}

fn compare_tokens(a: &[u8], b: &[u8]) -> bool {
    // Constant time in the length of the given token: no early exit on a mismatch.
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

impl Market {
    /// Sets the economics and the operator's token (`None`: `/admin` calls refused).
    pub fn with_money(mut self, economics: Economics, admin_token: Option<String>) -> Market {
        self.economics = economics;
        self.admin_token = admin_token.filter(|t| !t.is_empty());
        self
    }

    /// `user`'s wallet; only `caller` may read its own.
    pub async fn balance(&self, caller: &str, user: &str) -> Result<Wallet, MarketError> {
        if !caller.eq_ignore_ascii_case(user) {
            return Err(MarketError::Forbidden(format!(
                "{caller} may read only its own balance, not {user}'s"
            )));
        }
        Ok(self.store.wallet(user).await?)
    }

    /// A producer's public track record (404 for an unknown user).
    pub async fn track_record(&self, user: &str) -> Result<TrackRecord, MarketError> {
        if self.store.get_user(user).await?.is_none() {
            return Err(MarketError::NotFound(format!("no user {user}")));
        }
        let (delivered, failures, fines, gen_ms) = self.store.track_record(user).await?;
        Ok(TrackRecord {
            delivered,
            failures,
            fines,
            gen_ms,
        })
    }

    /// Checks the operator's token of an `/admin` call.
    pub fn check_admin(&self, token: Option<&str>) -> Result<(), MarketError> {
        let Some(want) = &self.admin_token else {
            return Err(MarketError::Forbidden(
                "operator calls are off on this market (PROOF_MARKET_ADMIN_TOKEN is not set)"
                    .into(),
            ));
        };
        match token {
            Some(t) if compare_tokens(t.as_bytes(), want.as_bytes()) => Ok(()),
            Some(_) => Err(MarketError::Unauthorized("not the operator's token".into())),
            None => Err(MarketError::Unauthorized(
                "operator calls need `Authorization: Bearer <operator token>`".into(),
            )),
        }
    }

    /// Credits `amount` to an existing user's balance (operator only; the caller
    /// checked the token).
    pub async fn admin_credit(&self, user: &str, amount: u128) -> Result<Wallet, MarketError> {
        if self.store.get_user(user).await?.is_none() {
            return Err(MarketError::NotFound(format!("no user {user}")));
        }
        Ok(self
            .store
            .credit(user, amount, "credit", "operator")
            .await?)
    }

    /// Moves `amount` from `user`'s balance into its producer deposit, or back
    /// (`to_deposit` false: only what no proposal holds).
    pub async fn move_deposit(
        &self,
        user: &str,
        amount: u128,
        to_deposit: bool,
    ) -> Result<Wallet, MarketError> {
        let mut moved = self.store.move_deposit(user, amount, to_deposit).await?;
        if moved.is_err() && self.pull_back(user, !to_deposit, amount).await? {
            moved = self.store.move_deposit(user, amount, to_deposit).await?;
        }
        match moved {
            Ok(w) => Ok(w),
            Err(have) => Err(MarketError::BadRequest(if to_deposit {
                format!(
                    "balance {} is short by {} of the deposit {}",
                    amount_text(have),
                    amount_text(amount - have),
                    amount_text(amount)
                )
            } else {
                format!(
                    "the deposit not backing any work is {}, short by {} of {}",
                    amount_text(have),
                    amount_text(amount - have),
                    amount_text(amount)
                )
            })),
        }
    }

    /// Asks the statements where `user` has free money parked (balance, or deposit when
    /// `deposit`) to send it back to the wallet, and waits until the wallet itself
    /// holds `need` (true) or that cannot happen soon (false). Idle accounts come back
    /// on their own after `sweep_after`; this is for a wallet that is short now.
    async fn pull_back(&self, user: &str, deposit: bool, need: u128) -> Result<bool, MarketError> {
        let (b, d, stmts) = self.store.wallet_own(user).await?;
        let own = |b: u128, d: u128| if deposit { d } else { b };
        let mut parked = 0u128;
        for stmt in stmts {
            let a = self.store.account(stmt, user).await?;
            let free = own(a.balance, a.deposit);
            if free > 0 {
                parked += free;
                self.store.request_sweep(stmt, user).await?;
            }
        }
        if own(b, d) + parked < need {
            return Ok(false);
        }
        // Owners look for requests every second; the sweep then reaches the wallet.
        let until = std::time::Instant::now() + PULL_BACK_WAIT;
        while std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (b, d, _) = self.store.wallet_own(user).await?;
            if own(b, d) >= need {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Tops up `user`'s account on `stmt` from its wallet, with order `order` as the
    /// receipt: at least what the account lacks for the order (`short` says it), and
    /// up to [`TOPUP_ORDERS`] orders' worth more or a tenth of the wallet, whichever is
    /// more, as far as the wallet has it, so the user's next orders there need no trip
    /// to the wallet.
    pub(super) async fn fund_order(
        &self,
        user: &str,
        order: Key,
        stmt: Key,
        short: &Placed,
    ) -> Result<Funding, LocalError> {
        let Placed::Short {
            deposit,
            least,
            most,
            have,
        } = *short
        else {
            return Err(MarketError::Internal("funding an order that is not short".into()).into());
        };
        let need = least.saturating_sub(have);
        let more = most.saturating_sub(have) + least.saturating_mul(TOPUP_ORDERS - 1);
        let kind = "topup";
        let mut funded = self
            .store
            .fund(user, order, stmt, need, more, deposit, kind)
            .await?;
        if let Funded::Short { .. } = funded {
            // Maybe the money is parked on other statements: bring it back, once.
            if self.pull_back(user, deposit, need).await? {
                funded = self
                    .store
                    .fund(user, order, stmt, need, more, deposit, kind)
                    .await?;
            }
        }
        match funded {
            Funded::Sent { amount, at } => Ok(Funding {
                user: user.to_owned(),
                amount,
                at,
            }),
            Funded::Short { have: wallet } => {
                let total = wallet + have;
                Err(MarketError::BadRequest(if deposit {
                    format!(
                        "deposit {} is short by {} of the collateral {} a proposal at this cost \
                         needs ({} × its cost); deposit more with POST /producer/deposit",
                        amount_text(total),
                        amount_text(least - total),
                        amount_text(least),
                        self.economics.collateral_factor
                    )
                } else {
                    format!(
                        "balance {} is short by {} of the request's cost {}",
                        amount_text(total),
                        amount_text(least - total),
                        amount_text(least)
                    )
                })
                .into())
            }
        }
    }

    /// After placing: the order holds its money (`placed`), so the transfer is done;
    /// or it certainly never will (`refund`), so the money goes back now. Otherwise
    /// the resolver settles it once the funding window has passed.
    pub(super) async fn settle_funding(&self, f: &Funding, order: Key, placed: bool) {
        if placed {
            // The statement's owner tells the wallet with its next payout delivery (one
            // script per wallet per batch); the resolver settles whatever it misses.
            return;
        }
        if let Err(e) = self.store.refund(&f.user, order).await {
            tracing::warn!(%order, user = %f.user, error = %e, "refunding an order's funding; the resolver will");
        }
    }

    /// One round of the resolver: money sent to orders more than twice the funding
    /// window ago either arrived (the order exists: forget the transfer) or never will
    /// (refund it). Returns how many transfers it settled.
    pub async fn resolve_transfers(&self) -> Result<usize, MarketError> {
        let window = self.store.wallet_config().funding_window_ms;
        let cutoff = Millis(Millis::now().0.saturating_sub(window.saturating_mul(2)));
        let mut settled = 0;
        for (user, seen) in self
            .store
            .wallets_sending_before(cutoff, RESOLVE_WALLETS)
            .await?
        {
            let mut left = false;
            for t in self.store.outgoing(&user).await? {
                if t.at > cutoff {
                    left = true;
                    continue;
                }
                let exists = match self.store.get_order(t.statement, t.order).await? {
                    Some(_) => true,
                    None => match &self.archive {
                        Some(a) => a.get_order(t.order).await?.is_some(),
                        None => false,
                    },
                };
                if exists {
                    self.store.arrived(&user, &[t.order]).await?;
                } else {
                    tracing::warn!(order = %t.order, %user, amount = %amount_text(t.amount), "order never placed: its money goes back");
                    self.store.refund(&user, t.order).await?;
                }
                settled += 1;
            }
            if !left {
                self.store.forget_sending(&user, seen).await?;
            }
        }
        Ok(settled)
    }

    /// Runs the resolver every half funding window, forever.
    pub fn spawn_resolver(self: std::sync::Arc<Self>) {
        let every =
            Duration::from_millis((self.store.wallet_config().funding_window_ms / 2).max(100));
        actix::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match self.resolve_transfers().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(settled = n, "transfers resolved"),
                    Err(e) => tracing::warn!(error = %e, "resolving transfers failed"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_start_at_a_half_and_follow_deliveries() {
        let r = |delivered, failures| TrackRecord {
            delivered,
            failures,
            fines: 0,
            gen_ms: 0,
        };
        assert_eq!(r(0, 0).rating(), 0.5);
        assert!(r(10, 0).rating() > r(10, 1).rating());
        assert!(r(1, 0).rating() < r(10, 0).rating());
        assert_eq!(r(0, 0).mean_generation_minutes(), None);
        let t = TrackRecord {
            gen_ms: 180_000,
            ..r(2, 0)
        };
        assert_eq!(t.mean_generation_minutes(), Some(1.5));
    }

    #[test]
    fn operator_tokens_compare_whole() {
        assert!(compare_tokens(b"secret-token", b"secret-token"));
        assert!(!compare_tokens(b"secret-tokex", b"secret-token"));
        assert!(!compare_tokens(b"secret", b"secret-token"));
        assert!(!compare_tokens(b"secret-token-and-more", b"secret-token"));
        assert!(!compare_tokens(b"", b"secret-token"));
    }
}
