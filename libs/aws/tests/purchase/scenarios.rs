//! The scenarios every service goes through, each against a fresh sandbox.

use chrono::Utc;
use cudly_aws::purchase::{AwsService, Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec};
use cudly_aws_sandbox::operations::{guard_operation, purchase_operation, sandbox_service};
use cudly_aws_sandbox::{CallOutcome, FaultError, FaultSpec};

use crate::common::*;

/// Buys `spec` the way the executor does (resolve, purchase, tag) and returns the
/// offering and the new commitment.
async fn buy(fixture: &Fixture, spec: &PurchaseSpec) -> (String, Commitment) {
    let offering = fixture
        .purchaser
        .resolve_offering(spec)
        .await
        .expect("the offering resolves");
    let outcome = fixture
        .purchaser
        .purchase(spec, &offering)
        .await
        .expect("the purchase succeeds");
    let PurchaseOutcome::Bought(commitment) = outcome else {
        panic!("expected a new commitment, got {outcome:?}");
    };
    fixture
        .purchaser
        .tag(spec, &commitment.commitment_id)
        .await
        .expect("tagging succeeds");
    (offering, commitment)
}

fn fault(service: AwsService, operation: &str) -> FaultSpec {
    FaultSpec::on(sandbox_service(service.name()), operation)
}

pub async fn guard_misses_then_finds_the_one_commitment_bought(service: AwsService) {
    let fixture = start().await;
    let spec = spec(service, "buy-then-find");
    assert_eq!(
        fixture.purchaser.find_by_token(&spec, &[]).await.unwrap(),
        None
    );

    let (offering, bought) = buy(&fixture, &spec).await;

    let found = fixture
        .purchaser
        .find_by_token(&spec, &[])
        .await
        .unwrap()
        .expect("the guard finds the commitment by its token");
    assert_eq!(found.commitment_id, bought.commitment_id);
    let by_recorded_id = fixture
        .purchaser
        .find_by_token(&spec, std::slice::from_ref(&bought.commitment_id))
        .await
        .unwrap()
        .expect("the guard finds the commitment by its recorded id");
    assert_eq!(by_recorded_id.commitment_id, bought.commitment_id);
    let other_item = self::spec(service, "another-lineage");
    assert_eq!(
        fixture
            .purchaser
            .find_by_token(&other_item, &[])
            .await
            .unwrap(),
        None
    );

    let ledger = fixture.ledger(service).await;
    assert_eq!(ledger.commitments_for_token(&ledger_key(&spec)), 1);
    assert_eq!(ledger.commitments.len(), 1);
    let commitment = &ledger.commitments[0];
    assert_eq!(commitment.commitment_id, bought.commitment_id);
    assert_eq!(commitment.offering_id, offering);
    if service == AwsService::SavingsPlans {
        assert_eq!(commitment.count, 1);
        assert_eq!(commitment.hourly_commitment.as_deref(), Some("2.50"));
        assert_eq!(
            commitment.client_token.as_deref(),
            Some(spec.token.as_str())
        );
    } else {
        assert_eq!(commitment.count, i64::from(spec.count));
    }
    if let Some(prefix) = service.reservation_prefix() {
        let reservation = cudly_common::idempotency::reservation_id(prefix, &spec.token);
        assert_eq!(
            commitment.reservation_id.as_deref(),
            Some(reservation.as_str())
        );
    }
}

pub async fn a_second_purchase_with_the_same_token_buys_nothing_more(service: AwsService) {
    let fixture = start().await;
    let spec = spec(service, "second-purchase");
    let (offering, bought) = buy(&fixture, &spec).await;

    if service.commitment_carries_token() {
        let again = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
        let PurchaseOutcome::AlreadyExisted(existing) = again else {
            panic!("expected the existing commitment, got {again:?}");
        };
        assert_eq!(existing.commitment_id, bought.commitment_id);
    } else {
        let found = fixture.purchaser.find_by_token(&spec, &[]).await.unwrap();
        assert_eq!(
            found.map(|found| found.commitment_id),
            Some(bought.commitment_id.clone()),
            "the guard stops the executor before a second purchase"
        );
    }

    let ledger = fixture.ledger(service).await;
    assert_eq!(ledger.commitments_for_token(&ledger_key(&spec)), 1);
    assert_eq!(ledger.commitments.len(), 1);
}

pub async fn a_purchase_whose_reply_is_lost_yields_exactly_one_commitment(service: AwsService) {
    let fixture = start().await;
    let spec = spec(service, "lost-reply");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    fixture
        .handle
        .add_fault(
            fault(service, purchase_operation(service.name()))
                .drop_after_commit()
                .times(1),
        )
        .await;
    let sent_at = Utc::now();

    let first = fixture.purchaser.purchase(&spec, &offering).await;

    let adopted_id = if service.commitment_carries_token() {
        let first_id = match &first {
            Ok(outcome) => Some(outcome.commitment().commitment_id.clone()),
            Err(PurchaseError::Ambiguous(_)) => None,
            Err(other) => panic!("expected success or an unknown outcome, got {other}"),
        };
        let again = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
        let PurchaseOutcome::AlreadyExisted(existing) = again else {
            panic!("expected the existing commitment, got {again:?}");
        };
        if let Some(first_id) = first_id {
            assert_eq!(existing.commitment_id, first_id);
        }
        let candidates = fixture
            .purchaser
            .untagged_candidates(&spec, &offering, sent_at, &[])
            .await
            .unwrap();
        assert!(candidates.is_empty(), "{candidates:?}");
        existing.commitment_id
    } else {
        assert!(
            matches!(first, Err(PurchaseError::Ambiguous(_))),
            "{first:?}"
        );
        let ledger = fixture.ledger(service).await;
        assert_eq!(
            ledger.calls_of(purchase_operation(service.name())).count(),
            1
        );
        assert_eq!(
            fixture.purchaser.find_by_token(&spec, &[]).await.unwrap(),
            None
        );

        let candidates = fixture
            .purchaser
            .untagged_candidates(&spec, &offering, sent_at, &[])
            .await
            .unwrap();
        assert_eq!(candidates.len(), 1, "{candidates:?}");
        let candidate = candidates[0].clone();
        assert_eq!(candidate.count, spec.count);
        assert_eq!(candidate.token_tag, None);
        let excluded = fixture
            .purchaser
            .untagged_candidates(
                &spec,
                &offering,
                sent_at,
                std::slice::from_ref(&candidate.commitment_id),
            )
            .await
            .unwrap();
        assert!(
            excluded.is_empty(),
            "a recorded id is no candidate: {excluded:?}"
        );
        let later = fixture
            .purchaser
            .untagged_candidates(
                &spec,
                &offering,
                Utc::now() + chrono::Duration::hours(1),
                &[],
            )
            .await
            .unwrap();
        assert!(
            later.is_empty(),
            "a commitment older than the call is no candidate: {later:?}"
        );
        let by_recorded_id = fixture
            .purchaser
            .find_by_token(&spec, std::slice::from_ref(&candidate.commitment_id))
            .await
            .unwrap();
        assert_eq!(
            by_recorded_id.map(|found| found.commitment_id),
            Some(candidate.commitment_id.clone())
        );

        fixture
            .purchaser
            .tag(&spec, &candidate.commitment_id)
            .await
            .unwrap();
        let tagged = fixture
            .purchaser
            .untagged_candidates(&spec, &offering, sent_at, &[])
            .await
            .unwrap();
        assert!(
            tagged.is_empty(),
            "a tagged commitment is no candidate: {tagged:?}"
        );
        candidate.commitment_id
    };

    let found = fixture
        .purchaser
        .find_by_token(&spec, &[])
        .await
        .unwrap()
        .expect("the guard finds the commitment by its token");
    assert_eq!(found.commitment_id, adopted_id);
    let ledger = fixture.ledger(service).await;
    assert_eq!(ledger.commitments_for_token(&ledger_key(&spec)), 1);
    assert_eq!(ledger.commitments.len(), 1);
    assert!(
        ledger
            .calls_of(purchase_operation(service.name()))
            .any(|call| call.outcome == CallOutcome::Dropped)
    );
}

pub async fn a_failed_guard_look_up_is_an_error_never_a_miss(service: AwsService) {
    let fixture = start().await;
    let spec = spec(service, "guard-failure");
    fixture
        .handle
        .add_fault(
            fault(service, guard_operation(service.name()))
                .error(FaultError::Internal)
                .times(20),
        )
        .await;
    let without_ids = fixture.purchaser.find_by_token(&spec, &[]).await;
    assert!(
        matches!(without_ids, Err(PurchaseError::LookupFailed(_))),
        "{without_ids:?}"
    );
    let with_ids = fixture
        .purchaser
        .find_by_token(&spec, &["recorded-1".to_owned()])
        .await;
    assert!(
        matches!(with_ids, Err(PurchaseError::LookupFailed(_))),
        "{with_ids:?}"
    );

    fixture.handle.clear_faults().await;
    fixture
        .handle
        .add_fault(fault(service, guard_operation(service.name())).error(FaultError::AccessDenied))
        .await;
    let denied = fixture.purchaser.find_by_token(&spec, &[]).await;
    assert!(
        matches!(denied, Err(PurchaseError::LookupFailed(_))),
        "{denied:?}"
    );
}

pub async fn a_throttled_purchase_is_resent_and_buys_once(service: AwsService) {
    let fixture = start().await;
    let spec = spec(service, "throttled");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    fixture
        .handle
        .add_fault(
            fault(service, purchase_operation(service.name()))
                .error(FaultError::Throttle)
                .times(1),
        )
        .await;
    let outcome = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
    assert!(matches!(outcome, PurchaseOutcome::Bought(_)), "{outcome:?}");
    let ledger = fixture.ledger(service).await;
    let calls: Vec<_> = ledger
        .calls_of(purchase_operation(service.name()))
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].outcome, CallOutcome::Error);
    assert_eq!(calls[1].outcome, CallOutcome::Ok);
    assert_eq!(ledger.commitments.len(), 1);
}

pub async fn a_purchase_answered_with_a_server_error_is_ambiguous_and_never_resent(
    service: AwsService,
) {
    let fixture = start().await;
    let spec = spec(service, "server-error");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    fixture
        .handle
        .add_fault(
            fault(service, purchase_operation(service.name()))
                .error(FaultError::Internal)
                .times(5),
        )
        .await;
    let outcome = fixture.purchaser.purchase(&spec, &offering).await;
    assert!(
        matches!(outcome, Err(PurchaseError::Ambiguous(_))),
        "{outcome:?}"
    );
    let ledger = fixture.ledger(service).await;
    assert_eq!(
        ledger.calls_of(purchase_operation(service.name())).count(),
        1
    );
    assert!(ledger.commitments.is_empty());
}

pub async fn a_purchase_refused_by_aws_is_rejected_and_never_resent(service: AwsService) {
    let fixture = start().await;
    let spec = spec(service, "refused");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    fixture
        .handle
        .add_fault(
            fault(service, purchase_operation(service.name()))
                .error(FaultError::AccessDenied)
                .times(5),
        )
        .await;
    let outcome = fixture.purchaser.purchase(&spec, &offering).await;
    assert!(
        matches!(outcome, Err(PurchaseError::Rejected(_))),
        "{outcome:?}"
    );
    let ledger = fixture.ledger(service).await;
    assert_eq!(
        ledger.calls_of(purchase_operation(service.name())).count(),
        1
    );
    assert!(ledger.commitments.is_empty());
}

pub async fn a_server_error_on_a_purchase_with_a_client_id_is_resent_and_buys_once(
    service: AwsService,
) {
    let fixture = start().await;
    let spec = spec(service, "idempotent-server-error");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    fixture
        .handle
        .add_fault(
            fault(service, purchase_operation(service.name()))
                .error(FaultError::Internal)
                .times(1),
        )
        .await;
    let outcome = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
    assert!(matches!(outcome, PurchaseOutcome::Bought(_)), "{outcome:?}");
    let ledger = fixture.ledger(service).await;
    assert_eq!(
        ledger.calls_of(purchase_operation(service.name())).count(),
        2
    );
    assert_eq!(ledger.commitments_for_token(&ledger_key(&spec)), 1);
    assert_eq!(ledger.commitments.len(), 1);
}

pub async fn offering_resolution_is_stable_and_malformed_recommendations_are_invalid(
    service: AwsService,
) {
    let fixture = start().await;
    let spec = spec(service, "offerings");
    let first = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    let second = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    assert_eq!(first, second);
    let other_token = self::spec(service, "other-offerings");
    assert_eq!(
        fixture
            .purchaser
            .resolve_offering(&other_token)
            .await
            .unwrap(),
        first
    );
    let other_term = PurchaseSpec {
        term_years: 4 - spec.term_years,
        ..spec.clone()
    };
    assert_ne!(
        fixture
            .purchaser
            .resolve_offering(&other_term)
            .await
            .unwrap(),
        first
    );

    let malformed = [
        PurchaseSpec {
            term_years: 2,
            ..spec.clone()
        },
        PurchaseSpec {
            payment: "sometimes".to_owned(),
            ..spec.clone()
        },
        PurchaseSpec {
            resource_type: "bogus".to_owned(),
            ..spec.clone()
        },
        PurchaseSpec {
            resource_type: "not a type".to_owned(),
            ..spec.clone()
        },
        PurchaseSpec {
            resource_type: String::new(),
            details: Default::default(),
            ..spec.clone()
        },
        PurchaseSpec {
            token: "short".to_owned(),
            ..spec.clone()
        },
    ];
    for bad in malformed {
        let resolved = fixture.purchaser.resolve_offering(&bad).await;
        assert!(
            matches!(resolved, Err(PurchaseError::Invalid(_))),
            "{bad:?} gave {resolved:?}"
        );
    }
    let wrong_region = PurchaseSpec {
        region: "eu-west-1".to_owned(),
        ..spec.clone()
    };
    let resolved = fixture.purchaser.resolve_offering(&wrong_region).await;
    if service == AwsService::SavingsPlans {
        assert_eq!(resolved.unwrap(), first, "savings plans are global");
    } else {
        assert!(
            matches!(resolved, Err(PurchaseError::Invalid(_))),
            "{resolved:?}"
        );
    }

    fixture
        .handle
        .add_fault(
            FaultSpec::on_service(sandbox_service(service.name()))
                .error(FaultError::Internal)
                .times(20),
        )
        .await;
    let failed = fixture.purchaser.resolve_offering(&spec).await;
    assert!(
        matches!(failed, Err(PurchaseError::LookupFailed(_))),
        "{failed:?}"
    );
}
