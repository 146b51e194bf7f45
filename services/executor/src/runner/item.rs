//! One item, one purchase (docs/design/DOMAIN.md "Idempotency"): claim the item, claim its
//! purchase_attempts row by insert-if-absent before any purchase call, guard look-up,
//! offering, sent_at, purchase, record the commitment at once, tag, write the outcome.
//! An attempt already present is reconciled, never bought blindly.

use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cudly_aws::error::{AwsErrorKind, AwsFailure};
use cudly_aws::purchase::{AwsService, Commitment, PurchaseError, PurchaseSpec, Purchaser, Quote};
use cudly_common::idempotency::mask_token;
use futures::future::OptionFuture;
use tracing::Instrument;

use crate::domain::clocks::{self, SentAt};
use crate::domain::status::{AttemptState, ItemStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::metrics::{self, PurchaseOutcome};
use crate::repo::attempts::{self, AttemptRow, NewAttempt};
use crate::repo::history::{self, NewPurchase};
use crate::repo::items::{self, ItemRow};
use crate::repo::{self, executions};
use crate::runner::child::ChildContext;
use crate::runner::lock::{self, OfferingLock};
use crate::runner::permits::CallPermit;

/// Purchase calls one item may send before giving up (each after reconciliation found
/// nothing): the outcome then stays unknown for a later run to reconcile.
const MAX_SENDS: u32 = 3;
/// Reconciliations that may fail to settle an unknown outcome before the attempt is in
/// doubt (an operator resolves it): the look-ups of a reconciliation can fail for good
/// (a permission removed, an API changed), and the lineage must not stay blocked.
const MAX_RECONCILE_FAILURES: i32 = 3;
/// Re-reads of a purchase attempt that changed under us before giving up.
const MAX_ATTEMPT_CLAIMS: u32 = 4;

/// How an item's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemEnd {
    /// The item has its outcome (bought, failed or skipped).
    Settled,
    /// The run must stop (lease lost or shutdown); the item is left for a later run.
    Stopped,
}

/// Runs one item of a child.
pub async fn run_item(ctx: &ChildContext<'_>, item: &ItemRow) -> ExecutorResult<ItemEnd> {
    let span = tracing::info_span!(
        "item",
        index = item.item_index,
        token = %mask_token(&item.idempotency_token),
        service = %item.recommendation.0.service,
    );
    run_item_inner(ctx, item).instrument(span).await
}

async fn run_item_inner(ctx: &ChildContext<'_>, item: &ItemRow) -> ExecutorResult<ItemEnd> {
    let recommendation = &item.recommendation.0;
    let spec = PurchaseSpec {
        limit_price: item.limit_price(ctx.price_tolerance),
        ..PurchaseSpec::new(recommendation, &item.idempotency_token)
    };
    // Only a pending item can lead to a fresh attempt (see `LookUps`); an in_flight one
    // is reclaimed and looks up after its claim.
    let prefetch = match item.status() {
        Ok(ItemStatus::Pending) => Some(LookUps::start(ctx.cloud_for(&spec.region), spec.clone())),
        _ => None,
    };
    let mut conn = ctx.acquire().await?;
    if !items::claim(&mut conn, ctx.lease, ctx.child_id, item.item_index).await? {
        let current = items::get(&mut conn, ctx.child_id, item.item_index).await?;
        let settled = current
            .map(|row| row.status().map(ItemStatus::is_settled))
            .transpose()?
            .unwrap_or(false);
        return Ok(if settled {
            ItemEnd::Settled
        } else {
            ItemEnd::Stopped
        });
    }
    drop(conn);
    let cloud = ctx.cloud_for(&spec.region);
    let mut run = ItemRun {
        ctx,
        item,
        spec,
        cloud,
        lock: None,
        call: None,
        sends: 0,
        recorded_ids: Vec::new(),
        offering_id: None,
        unrecorded_checked: false,
    };
    let result = run.drive(prefetch).await;
    run.release_lock().await;
    result
}

/// Where the purchase of an item stands.
enum Step {
    /// Nothing was sent: look the token up, then buy.
    Guard,
    /// Send the purchase of this offering.
    Send { offering_id: String },
    /// A purchase was sent then and its outcome is unknown.
    Reconcile { sent: SentAt },
}

/// How the wait for the purchase lock of an item ended.
enum LockWait {
    /// Taken now.
    Held,
    /// Already held, or the service needs none.
    Unneeded,
    Stopped,
    TimedOut,
}

/// What a step leads to: the next step, or the end of the item's turn.
type Next = ControlFlow<ItemEnd, Step>;

/// Ends the item's turn with `result`.
fn end(result: ExecutorResult<ItemEnd>) -> ExecutorResult<Next> {
    result.map(ControlFlow::Break)
}

/// The guard look-up by token and the offering look-up (priced) of an item.
type LookUpResults = (
    Result<Option<Commitment>, PurchaseError>,
    Result<Quote, PurchaseError>,
);

/// The guard and offering look-ups, started before the item and its attempt are
/// claimed so that their round trips overlap the claims'. Both are reads. Their answer
/// counts only when the attempt is a fresh insert: no run ever held this token, so
/// nothing bought under it can appear between the look-up and the claim. Any other claim
/// looks up again after it. Dropping it stops the look-ups.
struct LookUps(tokio::task::JoinHandle<LookUpResults>);

impl LookUps {
    fn start(cloud: Arc<Purchaser>, spec: PurchaseSpec) -> Self {
        let look_up =
            async move { tokio::join!(cloud.find_by_token(&spec, &[]), cloud.quote(&spec)) };
        Self(tokio::spawn(look_up.in_current_span()))
    }

    async fn results(mut self) -> LookUpResults {
        match (&mut self.0).await {
            Ok(results) => results,
            Err(error) => {
                // Only a panic ends the task early (it is aborted only when dropped).
                tracing::error!(%error, "the look-up task failed");
                let failure = || {
                    PurchaseError::LookupFailed(AwsFailure {
                        operation: "look-up",
                        kind: AwsErrorKind::Response,
                        code: None,
                        detail: "the look-up task failed".to_owned(),
                        http_status: None,
                    })
                };
                (Err(failure()), Err(failure()))
            }
        }
    }
}

impl Drop for LookUps {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What claiming the attempt gave.
enum Claimed {
    /// This run inserted the attempt: no run held the token before.
    Fresh(AttemptRow),
    /// This run owns the attempt (reclaimed from failed, or taken over in_flight).
    Owned(AttemptRow),
    /// Nothing to buy: the item ended (or the run must stop).
    Ended(ItemEnd),
}

struct ItemRun<'c, 'a> {
    ctx: &'c ChildContext<'a>,
    item: &'c ItemRow,
    spec: PurchaseSpec,
    cloud: Arc<Purchaser>,
    lock: Option<OfferingLock>,
    /// This item's purchase-call permit, taken before its purchase lock and given back
    /// with it once the outcome is recorded.
    call: Option<CallPermit>,
    sends: u32,
    /// Commitment ids recorded on the attempt by earlier runs (guard look-ups check them).
    recorded_ids: Vec<String>,
    /// The offering this item buys, once known (recorded on the attempt at its send).
    offering_id: Option<String>,
    /// Whether a send may skip [`ItemRun::check_unrecorded`]: it ran, the token was sent
    /// before (the check preceded that send), an operator resolved the attempt as not
    /// bought, or the commitment carries the token.
    unrecorded_checked: bool,
}

impl ItemRun<'_, '_> {
    fn token(&self) -> &str {
        &self.item.idempotency_token
    }

    fn service(&self) -> AwsService {
        self.spec.service
    }

    /// Claims the attempt and buys, one step at a time; `prefetch` holds the look-ups
    /// started before the claims, used only for a fresh attempt.
    async fn drive(&mut self, prefetch: Option<LookUps>) -> ExecutorResult<ItemEnd> {
        let (attempt, mut prefetched) = match self.claim_attempt().await? {
            Claimed::Fresh(attempt) => (attempt, prefetch),
            Claimed::Owned(attempt) => (attempt, None),
            Claimed::Ended(end) => return Ok(end),
        };
        self.recorded_ids = attempt.commitment_id.iter().cloned().collect();
        self.offering_id = attempt.offering_id.clone();
        self.unrecorded_checked = self.service().commitment_carries_token()
            || attempt.sent_at.is_some()
            || attempt.resolved_by.is_some();
        let mut step = match attempt.sent() {
            None => Step::Guard,
            Some(sent) => {
                tracing::info!("purchase attempt of an earlier run was sent: reconciling");
                Step::Reconcile { sent }
            }
        };
        loop {
            let next = match step {
                Step::Guard => self.guard(prefetched.take()).await?,
                Step::Send { offering_id } => self.send(offering_id).await?,
                Step::Reconcile { sent } => self.reconcile(sent).await?,
            };
            step = match next {
                ControlFlow::Continue(step) => step,
                ControlFlow::Break(end) => return Ok(end),
            };
        }
    }

    /// Nothing was sent: looks the token up (already bought?) and prices the offering
    /// again, both before anything is bought; a failed look-up refuses to buy, and so
    /// does a price that rose beyond the tolerance since the quote (or another offering
    /// matching the item now).
    async fn guard(&mut self, prefetched: Option<LookUps>) -> ExecutorResult<Next> {
        let cloud = self.cloud.clone();
        let (guard, offering_lookup) = match prefetched {
            Some(prefetched) if self.offering_id.is_none() => prefetched.results().await,
            _ => tokio::join!(
                cloud.find_by_token(&self.spec, &self.recorded_ids),
                cloud.quote(&self.spec)
            ),
        };
        match guard {
            Ok(Some(commitment)) => {
                tracing::info!(commitment_id = %commitment.commitment_id, "already bought: found by the guard look-up");
                let needs_tag = commitment.token_tag.is_none();
                return end(self.bought(&commitment.commitment_id, needs_tag).await);
            }
            Ok(None) => {}
            Err(error) => {
                let problem = format!("guard look-up failed, nothing was bought: {error}");
                return end(self.failed_definitely(&problem).await);
            }
        }
        let current = match offering_lookup {
            Ok(current) => current,
            Err(PurchaseError::Invalid(problem)) => {
                return end(self.failed_definitely(&problem).await);
            }
            Err(error) => {
                let problem = format!("offering look-up failed, nothing was bought: {error}");
                return end(self.failed_definitely(&problem).await);
            }
        };
        let offering = match self.item.quote.as_ref() {
            Some(quoted) => {
                if let Some(problem) = drift(&quoted.0, &current, self.ctx.price_tolerance) {
                    tracing::warn!(%problem, "not buying: the price moved since the quote");
                    return end(self.failed_definitely(&problem).await);
                }
                quoted.0.offering_id.clone()
            }
            // An item created before quotes buys the offering that matches now.
            None => current.offering_id,
        };
        if let Some(known) = &self.offering_id
            && *known != offering
        {
            let problem = format!(
                "the offering sent earlier ({}) is not the quoted one ({offering}); nothing was \
                 bought now",
                cudly_aws::error::scrub(known)
            );
            return end(self.failed_definitely(&problem).await);
        }
        self.offering_id = Some(offering.clone());
        Ok(ControlFlow::Continue(Step::Send {
            offering_id: offering,
        }))
    }

    /// Sends the purchase of `offering`: under the offering lock (EC2, Redshift), after
    /// sent_at is recorded. An unknown outcome goes to reconciliation, never straight to
    /// another send.
    async fn send(&mut self, offering: String) -> ExecutorResult<Next> {
        if self.sends >= MAX_SENDS {
            let problem = format!("the purchase outcome stayed unknown after {MAX_SENDS} calls");
            return end(self.outcome_unknown(&problem).await);
        }
        if !self.take_call_permit().await {
            return Ok(ControlFlow::Break(ItemEnd::Stopped));
        }
        match self.lock_shape().await? {
            LockWait::Held | LockWait::Unneeded => {}
            LockWait::Stopped => return Ok(ControlFlow::Break(ItemEnd::Stopped)),
            LockWait::TimedOut => {
                let problem = "another purchase of the same shape in this account held the \
                    purchase lock too long; nothing was sent, a retry buys it";
                return end(self.failed_definitely(problem).await);
            }
        }
        if !self.unrecorded_checked {
            if let Some(item_end) = self.check_unrecorded(&offering).await? {
                return Ok(ControlFlow::Break(item_end));
            }
            self.unrecorded_checked = true;
        }
        // Taken before sent_at is recorded: a reconciliation elsewhere waits the longest
        // purchase plus the settle margin after sent_at, so nothing may be dispatched
        // later than this (a sender frozen past it would buy behind its successor's back).
        let deadline = std::time::Instant::now() + self.dispatch_window();
        let mut conn = self.ctx.acquire().await?;
        let Some(sent) = attempts::mark_sent(
            &mut conn,
            self.ctx.lease,
            self.token(),
            &offering,
            self.ctx.inner.settings.process_now(),
        )
        .await?
        else {
            tracing::warn!("purchase attempt is no longer ours: not sending");
            return Ok(ControlFlow::Break(ItemEnd::Stopped));
        };
        if let Some(skew) = sent.worrying_skew() {
            tracing::warn!(
                skew_secs = skew.as_secs(),
                "the database and this process disagree on the time; reconciliations look back from the earlier clock"
            );
        }
        drop(conn);
        self.sends += 1;
        let stall = self.ctx.inner.settings.stall_before_first_send;
        if self.sends == 1 && !stall.is_zero() {
            tokio::time::sleep(stall).await;
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                "the send deadline passed before the purchase was dispatched: reconciling instead"
            );
            return Ok(ControlFlow::Continue(Step::Reconcile { sent }));
        }
        let started = std::time::Instant::now();
        let outcome = self
            .cloud
            .purchase_until(&self.spec, &offering, deadline)
            .await;
        metrics::purchase_call(
            self.service().name(),
            match &outcome {
                Ok(_) => "ok",
                Err(PurchaseError::Invalid(_)) => "invalid",
                Err(PurchaseError::Rejected(_)) => "rejected",
                Err(_) => "unknown",
            },
            started.elapsed(),
        );
        match outcome {
            Ok(outcome) => {
                let commitment_id = outcome.commitment().commitment_id.clone();
                end(self.bought(&commitment_id, true).await)
            }
            Err(PurchaseError::Invalid(problem)) => end(self.failed_definitely(&problem).await),
            Err(error @ PurchaseError::Rejected(_)) => {
                end(self.failed_definitely(&error.to_string()).await)
            }
            Err(error @ (PurchaseError::Ambiguous(_) | PurchaseError::LookupFailed(_))) => {
                tracing::warn!(%error, "purchase outcome unknown: reconciling");
                let mut conn = self.ctx.acquire().await?;
                if !attempts::note_error(
                    &mut conn,
                    self.ctx.lease,
                    self.token(),
                    &error.to_string(),
                )
                .await?
                {
                    return Ok(ControlFlow::Break(ItemEnd::Stopped));
                }
                Ok(ControlFlow::Continue(Step::Reconcile { sent }))
            }
        }
    }

    /// A purchase was sent (`sent`) with an unknown outcome: waits until it settled,
    /// looks the token up, and buys again only where that cannot buy twice.
    async fn reconcile(&mut self, sent: SentAt) -> ExecutorResult<Next> {
        let quoted = self.item.offering_id.clone();
        let offering = match self.offering_id.clone().or(quoted) {
            Some(offering) => offering,
            None => match self.cloud.resolve_offering(&self.spec).await {
                Ok(offering) => offering,
                Err(error) => {
                    let problem = format!(
                        "purchase outcome unknown and the offering look-up failed: {error}"
                    );
                    return end(self.outcome_unknown(&problem).await);
                }
            },
        };
        self.offering_id = Some(offering.clone());
        // EC2 and Redshift keep the offering lock from the send (or take it now for an
        // earlier run's send) through the wait, so no other purchase of the same offering
        // can mix into the candidates.
        match self.lock_shape().await? {
            LockWait::Held | LockWait::Unneeded => {}
            LockWait::Stopped => return Ok(ControlFlow::Break(ItemEnd::Stopped)),
            LockWait::TimedOut => {
                let problem = "purchase outcome unknown and another purchase of the same shape \
                    held the purchase lock too long";
                return end(self.outcome_unknown(problem).await);
            }
        }
        if self.lock.is_none() {
            // Nothing is in flight during the wait: its call permit serves another item.
            self.call = None;
        }
        if !self.wait_until_settled(sent.database).await? {
            return Ok(ControlFlow::Break(ItemEnd::Stopped));
        }
        match self
            .cloud
            .find_by_token(&self.spec, &self.recorded_ids)
            .await
        {
            Ok(Some(commitment)) => {
                tracing::info!(commitment_id = %commitment.commitment_id, "reconciled: the purchase happened");
                let needs_tag = commitment.token_tag.is_none();
                return end(self.bought(&commitment.commitment_id, needs_tag).await);
            }
            Ok(None) => {}
            Err(error) => {
                let problem = format!("purchase outcome unknown and the look-up failed: {error}");
                return end(self.outcome_unknown(&problem).await);
            }
        }
        if self.service().commitment_carries_token() {
            // The call carries the token as its id: sending it again cannot buy twice.
            tracing::info!("reconciled: not found, buying again with the same id");
            return Ok(ControlFlow::Continue(Step::Send {
                offering_id: offering,
            }));
        }
        Ok(match self.reconcile_untagged(&offering, sent).await? {
            Some(item_end) => ControlFlow::Break(item_end),
            None => ControlFlow::Continue(Step::Send {
                offering_id: offering,
            }),
        })
    }

    /// EC2 and Redshift: adopt the one untagged commitment of the offering created after
    /// the send (by the earlier of the database and the sender clocks); none → None (the
    /// purchase did not happen and may be made); several → in doubt. Runs under the
    /// purchase lock.
    async fn reconcile_untagged(
        &mut self,
        offering: &str,
        sent: SentAt,
    ) -> ExecutorResult<Option<ItemEnd>> {
        let mut conn = self.ctx.acquire().await?;
        let exclude = attempts::recorded_commitment_ids(
            &mut conn,
            self.ctx.account_id,
            self.service().name(),
        )
        .await?;
        drop(conn);
        match self
            .cloud
            .untagged_candidates(&self.spec, offering, sent.look_back_from(), &exclude)
            .await
        {
            Err(error) => Ok(Some(
                self.outcome_unknown(&format!(
                    "purchase outcome unknown and the candidate look-up failed: {error}"
                ))
                .await?,
            )),
            Ok(candidates) if candidates.len() == 1 => {
                let commitment: &Commitment = &candidates[0];
                tracing::info!(commitment_id = %commitment.commitment_id, "reconciled: adopting the one untagged commitment");
                Ok(Some(self.bought(&commitment.commitment_id, true).await?))
            }
            Ok(candidates) if candidates.is_empty() => {
                tracing::info!("reconciled: the purchase did not happen");
                Ok(None)
            }
            Ok(candidates) => {
                tracing::warn!(
                    candidates = candidates.len(),
                    "several commitments match: in doubt"
                );
                Ok(Some(
                    self.in_doubt(&format!(
                        "{} commitments match this purchase and none carries its token: \
                         verify in the cloud console, then resolve the attempt",
                        candidates.len()
                    ))
                    .await?,
                ))
            }
        }
    }

    /// EC2 and Redshift, before the first send of a token, under the purchase lock: an
    /// untagged commitment of this shape that no attempt recorded, bought since the
    /// lineage began, may be this token's from an attempt whose row a database failover
    /// lost. Buying then could buy twice: the attempt is in doubt instead (an operator
    /// who resolves it as not bought lets a retry buy). Commitments that other tokens'
    /// sent and unrecorded purchases of the same offering and count can account for (a
    /// concurrent execution whose run died after sending) are theirs to adopt, one
    /// each: only more than that is doubt. A failed look-up refuses to buy.
    async fn check_unrecorded(&mut self, offering: &str) -> ExecutorResult<Option<ItemEnd>> {
        let mut conn = self.ctx.acquire().await?;
        let (lineage_start, database_now) =
            executions::lineage_start(&mut conn, self.ctx.child_id).await?;
        let exclude = attempts::recorded_commitment_ids(
            &mut conn,
            self.ctx.account_id,
            self.service().name(),
        )
        .await?;
        let others_unrecorded = attempts::unrecorded_sends_of_offering(
            &mut conn,
            self.ctx.account_id,
            self.service().name(),
            offering,
            self.spec.count,
            self.token(),
        )
        .await?;
        drop(conn);
        let look_back_from = clocks::on_earlier_clock(
            lineage_start,
            database_now,
            self.ctx.inner.settings.process_now(),
        );
        match self
            .cloud
            .untagged_candidates(&self.spec, offering, look_back_from, &exclude)
            .await
        {
            Err(error) => {
                let problem = format!(
                    "the look-up of unrecorded commitments failed, nothing was bought: {error}"
                );
                Ok(Some(self.failed_definitely(&problem).await?))
            }
            Ok(candidates) if candidates.is_empty() => Ok(None),
            Ok(candidates) if candidates.len() <= others_unrecorded => {
                tracing::info!(
                    candidates = candidates.len(),
                    others_unrecorded,
                    "unrecorded commitments of this shape belong to other sent purchases: buying"
                );
                Ok(None)
            }
            Ok(candidates) => {
                let ids: Vec<&str> = candidates
                    .iter()
                    .map(|commitment| commitment.commitment_id.as_str())
                    .collect();
                tracing::warn!(
                    ?ids,
                    "unrecorded commitments of this shape: in doubt, nothing sent"
                );
                let problem = format!(
                    "nothing was sent: {} untagged commitment(s) of this shape that no purchase \
                     recorded were bought since this purchase was first asked for ({}); verify \
                     in the cloud console whether one is this purchase, then resolve the attempt",
                    candidates.len(),
                    ids.join(", ")
                );
                Ok(Some(self.in_doubt(&problem).await?))
            }
        }
    }

    /// Claims the purchase_attempts row of the item's token.
    async fn claim_attempt(&mut self) -> ExecutorResult<Claimed> {
        let token = self.item.idempotency_token.clone();
        let new_attempt = NewAttempt {
            token: &token,
            child_id: self.ctx.child_id,
            item_index: self.item.item_index,
            account_id: self.ctx.account_id,
            service: self.service().name(),
        };
        for _ in 0..MAX_ATTEMPT_CLAIMS {
            let mut conn = self.ctx.acquire().await?;
            if let Some(row) =
                attempts::insert_if_absent(&mut conn, self.ctx.lease, &new_attempt).await?
            {
                return Ok(Claimed::Fresh(row));
            }
            let Some(existing) = attempts::get(&mut conn, &token).await? else {
                // Nothing there and the insert refused: the lease is lost.
                return Ok(Claimed::Ended(ItemEnd::Stopped));
            };
            drop(conn);
            match existing.state()? {
                AttemptState::Bought => {
                    let Some(commitment_id) = existing.commitment_id.clone() else {
                        return Err(ExecutorError::Internal(
                            "a bought purchase attempt has no commitment id".to_owned(),
                        ));
                    };
                    tracing::info!(%commitment_id, "already bought by an earlier run");
                    self.repair_tag(&commitment_id).await;
                    return Ok(Claimed::Ended(self.finish_bought(&commitment_id).await?));
                }
                AttemptState::InDoubt => {
                    let end = self
                        .finish_failed(
                            "purchase outcome in doubt: verify in the cloud console, then resolve the attempt",
                            PurchaseOutcome::InDoubt,
                        )
                        .await?;
                    return Ok(Claimed::Ended(end));
                }
                AttemptState::Failed => {
                    let mut conn = self.ctx.acquire().await?;
                    if let Some(row) = attempts::reclaim_failed(
                        &mut conn,
                        self.ctx.lease,
                        &token,
                        self.ctx.child_id,
                    )
                    .await?
                    {
                        return Ok(Claimed::Owned(row));
                    }
                }
                AttemptState::InFlight => {
                    let mut conn = self.ctx.acquire().await?;
                    if let Some(row) = attempts::take_over(
                        &mut conn,
                        self.ctx.lease,
                        &token,
                        self.ctx.child_id,
                        existing.lease_owner.as_deref(),
                        existing.sent_at,
                    )
                    .await?
                    {
                        return Ok(Claimed::Owned(row));
                    }
                }
            }
        }
        Ok(Claimed::Ended(ItemEnd::Stopped))
    }

    /// EC2 and Redshift purchases that a reconciliation could take for one another (same
    /// account, region, shape and count) go one at a time. The wait is bounded (twice a
    /// send's settle window): past it the item is left to a later run.
    async fn lock_shape(&mut self) -> ExecutorResult<LockWait> {
        if self.lock.is_some() {
            return Ok(LockWait::Unneeded);
        }
        let Some(shape) = self.spec.candidate_shape() else {
            return Ok(LockWait::Unneeded);
        };
        // Call permit first, then the lock (and its slot): the same order everywhere.
        if !self.take_call_permit().await {
            return Ok(LockWait::Stopped);
        }
        let key = OfferingLock::key(&self.ctx.account_id.to_string(), &shape);
        let max_wait = (self.cloud.longest_purchase() + self.ctx.inner.settings.settle_margin) * 2;
        Ok(
            match OfferingLock::acquire(
                &self.ctx.inner.pool,
                &self.ctx.inner.lock_slots,
                key,
                self.ctx.stop,
                max_wait,
            )
            .await?
            {
                lock::LockWait::Held(lock) => {
                    self.lock = Some(lock);
                    LockWait::Held
                }
                lock::LockWait::Stopped => LockWait::Stopped,
                lock::LockWait::TimedOut => {
                    tracing::warn!(
                        ?max_wait,
                        "another purchase of the same shape held the purchase lock too long"
                    );
                    LockWait::TimedOut
                }
            },
        )
    }

    /// Takes this item's purchase-call permit (process-wide bound) unless held; false
    /// when the run stopped first.
    async fn take_call_permit(&mut self) -> bool {
        if self.call.is_none() {
            self.call = self.ctx.inner.purchase_calls.acquire(self.ctx.stop).await;
        }
        self.call.is_some()
    }

    /// Gives back the purchase slot: the call permit and the purchase lock (returned to
    /// be released).
    fn take_slot(&mut self) -> Option<OfferingLock> {
        self.call = None;
        self.lock.take()
    }

    async fn release_lock(&mut self) {
        if let Some(lock) = self.take_slot() {
            lock.release().await;
        }
    }

    /// Returns how long after recording sent_at an attempt may still be dispatched: one
    /// dispatched then ends (or times out) before a reconciliation elsewhere looks, since
    /// that one waits the longest purchase plus the settle margin.
    fn dispatch_window(&self) -> std::time::Duration {
        (self.cloud.longest_purchase() + self.ctx.inner.settings.settle_margin)
            .saturating_sub(self.cloud.call_timeout())
    }

    /// Waits until a purchase sent at `sent_at` can no longer be in flight (the longest
    /// purchase call plus the settle margin); false when shutdown came first.
    async fn wait_until_settled(&self, sent_at: DateTime<Utc>) -> ExecutorResult<bool> {
        let wait = self.cloud.longest_purchase() + self.ctx.inner.settings.settle_margin;
        let mut conn = self.ctx.acquire().await?;
        let now = repo::database_now(&mut conn).await?;
        drop(conn);
        let settled_at =
            sent_at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let Ok(remaining) = (settled_at - now).to_std() else {
            return Ok(true);
        };
        tracing::info!(
            wait_ms = remaining.as_millis() as u64,
            "waiting for an unknown purchase outcome to settle"
        );
        tokio::select! {
            _ = self.ctx.stop.cancelled() => Ok(false),
            _ = tokio::time::sleep(remaining) => Ok(true),
        }
    }

    /// The commitment exists for this token: record it on the attempt at once, tag it,
    /// then write the item and its purchase_history row.
    async fn bought(&mut self, commitment_id: &str, tag: bool) -> ExecutorResult<ItemEnd> {
        if !self.service().commitment_carries_token() {
            return self.bought_then_tagged(commitment_id, tag).await;
        }
        // Nothing to tag (the purchase call carried the token): the attempt, the item and
        // the history row are written in one statement.
        self.release_lock().await;
        let mut conn = self.ctx.acquire().await?;
        let written = history::finish_attempt_and_item_bought(
            &mut conn,
            self.ctx.lease,
            self.item.item_index,
            &self.purchase(commitment_id),
        )
        .await?;
        if !written {
            tracing::warn!(%commitment_id, "commitment bought but the purchase attempt is no longer ours: a later run reconciles it");
            return Ok(ItemEnd::Stopped);
        }
        Ok(self.settled_bought(commitment_id))
    }

    /// The item is written as bought: log and count it.
    fn settled_bought(&self, commitment_id: &str) -> ItemEnd {
        tracing::info!(%commitment_id, "item bought");
        metrics::purchase_settled(self.service().name(), PurchaseOutcome::Bought);
        if let Some(quote) = &self.item.quote {
            metrics::committed(
                &quote.0.currency,
                self.service().name(),
                quote.0.total_commitment(),
            );
        }
        ItemEnd::Settled
    }

    fn purchase<'p>(&'p self, commitment_id: &'p str) -> NewPurchase<'p> {
        NewPurchase {
            token: self.token(),
            child_id: self.ctx.child_id,
            root_id: self.ctx.lease.root_id,
            account_id: self.ctx.account_id,
            account_external_id: &self.ctx.external_id,
            plan_id: self.ctx.plan_id,
            recommendation: &self.item.recommendation.0,
            commitment_id,
            upfront_cost: self.item.upfront_cost(),
        }
    }

    /// EC2 and Redshift: the commitment id goes on the attempt at once, then the tag,
    /// then the item and its history row.
    async fn bought_then_tagged(
        &mut self,
        commitment_id: &str,
        tag: bool,
    ) -> ExecutorResult<ItemEnd> {
        let mut conn = self.ctx.acquire().await?;
        if !attempts::mark_bought(&mut conn, self.ctx.lease, self.token(), commitment_id).await? {
            tracing::warn!(%commitment_id, "commitment bought but the purchase attempt is no longer ours: a later run reconciles it");
            return Ok(ItemEnd::Stopped);
        }
        drop(conn);
        // The id is recorded: the offering lock has done its work, and its release need
        // not wait for the tag.
        let release = OptionFuture::from(self.take_slot().map(OfferingLock::release));
        let tagging = async {
            if tag {
                self.cloud.tag(&self.spec, commitment_id).await
            } else {
                Ok(())
            }
        };
        let (_, tagged) = tokio::join!(release, tagging);
        if let Err(error) = tagged {
            tracing::warn!(%commitment_id, %error, "tagging the commitment failed; its id is recorded on the attempt");
        }
        self.finish_bought(commitment_id).await
    }

    /// EC2 and Redshift: an earlier run recorded the commitment, then may have died
    /// before tagging it; tags it again (CreateTags overwrites the same value). Best
    /// effort, like the first tag: the recorded id is what the guard relies on.
    async fn repair_tag(&self, commitment_id: &str) {
        if self.service().commitment_carries_token() {
            return;
        }
        if let Err(error) = self.cloud.tag(&self.spec, commitment_id).await {
            tracing::warn!(%commitment_id, %error, "repairing the commitment's tag failed; its id is recorded on the attempt");
        }
    }

    /// Writes the item as bought and its purchase_history row, in one statement.
    async fn finish_bought(&mut self, commitment_id: &str) -> ExecutorResult<ItemEnd> {
        let mut conn = self.ctx.acquire().await?;
        let written = history::finish_item_bought(
            &mut conn,
            self.ctx.lease,
            self.item.item_index,
            &self.purchase(commitment_id),
        )
        .await?;
        if !written {
            return Ok(ItemEnd::Stopped);
        }
        Ok(self.settled_bought(commitment_id))
    }

    /// Nothing was bought: the attempt fails (a later run may claim it again) and so
    /// does the item.
    async fn failed_definitely(&mut self, problem: &str) -> ExecutorResult<ItemEnd> {
        let problem = crate::runner::stored_error(problem);
        let mut conn = self.ctx.acquire().await?;
        if !attempts::mark_failed(&mut conn, self.ctx.lease, self.token(), &problem).await? {
            return Ok(ItemEnd::Stopped);
        }
        drop(conn);
        tracing::warn!(error = %problem, "item failed, nothing bought");
        self.finish_failed(&problem, PurchaseOutcome::Failed).await
    }

    /// Possibly bought, not provably: the attempt is in doubt until an operator resolves
    /// it, and the item fails.
    async fn in_doubt(&mut self, problem: &str) -> ExecutorResult<ItemEnd> {
        let problem = crate::runner::stored_error(problem);
        let mut conn = self.ctx.acquire().await?;
        if !attempts::mark_in_doubt(&mut conn, self.ctx.lease, self.token(), &problem).await? {
            return Ok(ItemEnd::Stopped);
        }
        drop(conn);
        self.finish_failed(&problem, PurchaseOutcome::InDoubt).await
    }

    /// The outcome is unknown and could not be settled now: the attempt stays in_flight
    /// (a retry or re-drive reconciles it, never buying twice) and the item fails. After
    /// [`MAX_RECONCILE_FAILURES`] such reconciliations the attempt is in doubt instead,
    /// so an operator can resolve it rather than the lineage staying blocked forever.
    async fn outcome_unknown(&mut self, problem: &str) -> ExecutorResult<ItemEnd> {
        let unknown = crate::runner::stored_error(&format!(
            "{problem}; verify in the cloud console: a retry reconciles it and never buys twice"
        ));
        let mut conn = self.ctx.acquire().await?;
        let state = attempts::note_unsettled_outcome(
            &mut conn,
            self.ctx.lease,
            self.token(),
            &unknown,
            MAX_RECONCILE_FAILURES,
        )
        .await?;
        drop(conn);
        match state {
            None => Ok(ItemEnd::Stopped),
            Some(AttemptState::InDoubt) => {
                let in_doubt = crate::runner::stored_error(&format!(
                    "{problem}; the outcome stayed unknown after {MAX_RECONCILE_FAILURES} \
                     reconciliations: verify in the cloud console, then resolve the attempt"
                ));
                tracing::warn!(error = %in_doubt, "purchase outcome in doubt");
                self.finish_failed(&in_doubt, PurchaseOutcome::InDoubt)
                    .await
            }
            Some(_) => {
                tracing::warn!(error = %unknown, "purchase outcome unknown");
                self.finish_failed(&unknown, PurchaseOutcome::Unknown).await
            }
        }
    }

    /// Fails the item and counts its outcome.
    async fn finish_failed(
        &mut self,
        problem: &str,
        outcome: PurchaseOutcome,
    ) -> ExecutorResult<ItemEnd> {
        let end = self.finish_item(ItemStatus::Failed, None, problem).await?;
        if end == ItemEnd::Settled {
            metrics::purchase_settled(self.service().name(), outcome);
        }
        Ok(end)
    }

    async fn finish_item(
        &mut self,
        status: ItemStatus,
        commitment_id: Option<&str>,
        error: &str,
    ) -> ExecutorResult<ItemEnd> {
        let mut conn = self.ctx.acquire().await?;
        let finished = items::finish(
            &mut conn,
            self.ctx.lease,
            self.ctx.child_id,
            self.item.item_index,
            status,
            commitment_id,
            Some(error),
        )
        .await?;
        Ok(if finished {
            ItemEnd::Settled
        } else {
            ItemEnd::Stopped
        })
    }
}

/// Returns why the item must not be bought at today's price: another offering matches
/// it now, or a per-unit price rose beyond `tolerance` (a fraction) since `quoted`.
fn drift(quoted: &Quote, current: &Quote, tolerance: f64) -> Option<String> {
    if current.offering_id != quoted.offering_id {
        return Some(format!(
            "the offering changed since approval: quoted {}, now {}; nothing was bought",
            cudly_aws::error::scrub(&quoted.offering_id),
            cudly_aws::error::scrub(&current.offering_id)
        ));
    }
    quoted.price_rise(current, tolerance)
}
