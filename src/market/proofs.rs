//! Proofs: verifying a pushed proof, storing it and completing its orders.

use std::sync::Arc;

use crate::domain::{Key, Millis, Side, Status, UserName};
use crate::error::MarketError;
use crate::input::{outputs_to_text, parse_canonical};
use crate::prover::halo2::PROOF_SYSTEM;
use crate::store::{OrderRecord, ProofRecord};

use super::matcher::{Complete, LocalResult, MatcherHandle};
use super::Market;

/// A pushed proof, parsed.
#[derive(Debug, Clone)]
pub struct ProofPush {
    /// The proof bytes (already within the size limit), shared so that routing the
    /// call again does not copy them.
    pub proof: Arc<[u8]>,
    /// The proposal it answers.
    pub proposal: Option<Key>,
    /// The request it answers.
    pub request: Option<Key>,
}

impl Market {
    /// The statement a proof push is about, from whichever order key it names.
    pub async fn proof_statement(&self, p: &ProofPush) -> Result<Key, MarketError> {
        match (p.proposal, p.request) {
            (Some(k), _) => self.statement_of(Side::Proposal.as_str(), k).await,
            (None, Some(k)) => self.statement_of(Side::Request.as_str(), k).await,
            (None, None) => Err(MarketError::BadRequest(
                "give `proposal_key` or `request_key`".into(),
            )),
        }
    }

    /// The matched orders a proof push names: both must belong to one match.
    async fn matched_pair(&self, p: &ProofPush) -> Result<(OrderRecord, OrderRecord), MarketError> {
        let processing = |o: &OrderRecord| {
            MarketError::Conflict(format!(
                "{} {} is {}; a proof is accepted only while it is processing",
                o.side.as_str(),
                o.key,
                o.status.as_str()
            ))
        };
        match (p.proposal, p.request) {
            (Some(pk), rk) => {
                let proposal = self.get_order(Side::Proposal, pk).await?;
                let rk = match (rk, proposal.counterpart) {
                    (Some(r), Some(c)) if r != c => {
                        return Err(MarketError::BadRequest(format!(
                            "proposal {pk} is matched to request {c}, not {r}"
                        )))
                    }
                    (_, Some(c)) => c,
                    (Some(r), None) => {
                        return Err(MarketError::Conflict(format!(
                            "proposal {pk} is not matched to request {r}"
                        )))
                    }
                    (None, None) => return Err(processing(&proposal)),
                };
                Ok((proposal, self.get_order(Side::Request, rk).await?))
            }
            (None, Some(rk)) => {
                let request = self.get_order(Side::Request, rk).await?;
                let pk = request.counterpart.ok_or_else(|| processing(&request))?;
                Ok((self.get_order(Side::Proposal, pk).await?, request))
            }
            (None, None) => Err(MarketError::BadRequest(
                "give `proposal_key` or `request_key`".into(),
            )),
        }
    }

    /// Verifies a proof for a processing match of the caller's and completes the match
    /// through the statement's matcher `m`. Runs on the owner only, so a proof is
    /// verified once.
    pub async fn push_proof(
        &self,
        m: &MatcherHandle,
        sender: &UserName,
        p: &ProofPush,
    ) -> LocalResult<ProofRecord> {
        let (proposal, request) = self.matched_pair(p).await?;
        if proposal.sender != sender.as_str() {
            return Err(MarketError::Forbidden(format!(
                "proposal {} belongs to another user; only its producer may push its proof",
                proposal.key
            ))
            .into());
        }
        if proposal.status != Status::Processing || request.status != Status::Processing {
            return Err(MarketError::Conflict(format!(
                "proposal {} is {}; a proof is accepted only while it is processing",
                proposal.key,
                proposal.status.as_str()
            ))
            .into());
        }
        let canon = request.canon.clone().unwrap_or_default();
        let inputs = parse_canonical(&canon).map_err(|e| {
            MarketError::Internal(format!("request {}: stored input: {e}", request.key))
        })?;
        let stmt = proposal.statement;
        let (refused, left_ms) = self.store.refused_proofs(stmt, proposal.key).await?;
        if refused >= self.limits.max_refused_proofs {
            return Err(MarketError::TooManyRequests {
                message: format!(
                    "proposal {} has had {refused} proofs refused; no more are checked for it \
                     for {} s",
                    proposal.key,
                    left_ms.div_ceil(1000)
                ),
                retry_after_secs: left_ms.div_ceil(1000).max(1),
            }
            .into());
        }
        // Bytes accepted once are refused before any work (the transition script checks
        // again, atomically).
        if self.store.proof_seen(stmt, &p.proof).await? {
            return Err(MarketError::Conflict(
                "this proof was already accepted for another match; push your own".into(),
            )
            .into());
        }
        let circuit = self.circuits.get(stmt).await?;
        // The length first: a wrong one costs nothing, not a trip through the pool.
        let checked = match circuit.check_proof_len(&p.proof) {
            Err(e) => Err(e),
            Ok(()) => {
                let proof = p.proof.clone();
                self.circuits
                    .pools()
                    .verify
                    .run("verify", move || {
                        let started = std::time::Instant::now();
                        let r = circuit.verify(&inputs, &proof);
                        crate::metrics::metrics()
                            .proof_verify
                            .with_label_values(&[if r.is_ok() { "valid" } else { "invalid" }])
                            .observe(started.elapsed().as_secs_f64());
                        r
                    })
                    .await?
            }
        };
        let output = match checked {
            Ok(output) => output,
            Err(e @ MarketError::BadRequest(_)) => {
                let n = self
                    .store
                    .record_refused_proof(stmt, proposal.key, self.limits.refused_proof_window_ms)
                    .await?;
                tracing::info!(proposal = %proposal.key, refused = n, error = %e, "proof refused");
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let now = Millis::now();
        let record = ProofRecord {
            key: self.next_key_in(proposal.statement).await?,
            statement: proposal.statement,
            request: request.key,
            proposal: proposal.key,
            sender: sender.as_str().to_owned(),
            input: request.input.clone().unwrap_or_else(|| "null".into()),
            generation_ms: now
                .0
                .saturating_sub(proposal.matched_time.map_or(now.0, |m| m.0)),
            created: now,
            output: Some(outputs_to_text(&output)),
            proof_system: PROOF_SYSTEM.into(),
            proof_hex: hex::encode(&p.proof),
        };
        m.ask(Complete {
            record: record.clone(),
            canon,
        })
        .await?;
        tracing::info!(proof = %record.key, request = %request.key, proposal = %proposal.key, "proof stored");
        Ok(record)
    }

    /// Whether `caller` may read proof `p`'s bytes: those who paid for it (the requester
    /// of its match, requests completed at once by it), its producer and its
    /// statement's owner. Its metadata is public.
    pub async fn may_read_proof(&self, caller: &str, p: &ProofRecord) -> Result<bool, MarketError> {
        let me = |u: &str| u.eq_ignore_ascii_case(caller);
        if me(&p.sender) {
            return Ok(true);
        }
        if self
            .store
            .is_proof_buyer(p.statement, p.key, caller)
            .await?
        {
            return Ok(true);
        }
        match self.get_order(Side::Request, p.request).await {
            Ok(r) if me(&r.sender) => return Ok(true),
            Ok(_) | Err(MarketError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        // The statement's head: its owner without reading its (large) definition.
        let head = self.store.statement_heads(&[p.statement]).await?;
        Ok(head
            .into_iter()
            .flatten()
            .next()
            .is_some_and(|st| me(&st.sender)))
    }

    /// One proof: from Redis, or from the archive once Redis no longer holds it.
    pub async fn get_proof(&self, key: Key) -> Result<ProofRecord, MarketError> {
        let found = match self.store.locate(key).await? {
            Some(stmt) => self.store.get_proof(stmt, key).await?,
            None => None,
        };
        let found = match (found, &self.archive) {
            (Some(p), _) => Some(p),
            (None, Some(a)) => a.get_proof(key).await?,
            (None, None) => None,
        };
        found.ok_or_else(|| MarketError::NotFound(format!("no proof {key}")))
    }
}
