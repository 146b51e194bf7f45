//! What only some services do: the caller check, session credentials, Savings Plans
//! commitments and explicit offerings, EC2 and Redshift tagging and reconciliation,
//! and what the logs show.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use cudly_aws::purchase::{
    AwsService, LimitPrice, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser,
};
use cudly_aws::sdk::{AwsSettings, SessionCredentials};
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_aws_sandbox::{FaultError, FaultSpec, Service};
use secrecy::SecretString;

use crate::common::*;

#[tokio::test]
async fn the_caller_account_is_the_account_of_the_credentials() {
    let fixture = start().await;
    assert_eq!(
        fixture.purchaser.caller_account_id().await.unwrap(),
        ACCOUNT
    );
}

#[tokio::test]
async fn a_failed_caller_check_is_a_look_up_failure() {
    let fixture = start().await;
    fixture
        .handle
        .add_fault(FaultSpec::on(Service::Sts, "GetCallerIdentity").error(FaultError::AccessDenied))
        .await;
    let checked = fixture.purchaser.caller_account_id().await;
    assert!(
        matches!(checked, Err(PurchaseError::LookupFailed(_))),
        "{checked:?}"
    );
}

#[tokio::test]
async fn session_credentials_from_get_session_token_buy_and_find() {
    let fixture = start().await;
    let settings = AwsSettings::default().with_endpoint(fixture.handle.endpoint());
    let long_lived = SessionCredentials {
        access_key_id: KEY.to_owned(),
        secret_access_key: SecretString::from(SECRET),
        session_token: None,
        expiration: None,
    };
    let session = cudly_aws::sts::Sts::with_credentials(&settings, &long_lived)
        .get_session_token(Duration::from_secs(900))
        .await
        .expect("the sandbox hands out a session");
    assert!(session.access_key_id.starts_with("ASIA"));
    let purchaser = Purchaser::new(&settings, &session, REGION);
    assert_eq!(purchaser.caller_account_id().await.unwrap(), ACCOUNT);
    let spec = spec(AwsService::Rds, "session");
    let offering = purchaser.resolve_offering(&spec).await.unwrap();
    let bought = purchaser.purchase(&spec, &offering).await.unwrap();
    let found = purchaser.find_by_token(&spec, &[]).await.unwrap().unwrap();
    assert_eq!(found.commitment_id, bought.commitment().commitment_id);
}

#[tokio::test]
async fn savings_plans_accept_an_explicit_offering_id_and_refuse_an_unknown_one() {
    let fixture = start().await;
    let spec = spec(AwsService::SavingsPlans, "explicit-offering");
    let resolved = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    let explicit = PurchaseSpec {
        details: RecommendationDetails {
            offering_id: Some(resolved.clone()),
            ..spec.details.clone()
        },
        ..spec.clone()
    };
    assert_eq!(
        fixture.purchaser.resolve_offering(&explicit).await.unwrap(),
        resolved
    );
    let unknown = PurchaseSpec {
        details: RecommendationDetails {
            offering_id: Some("00000000-0000-4000-8000-000000000000".to_owned()),
            ..spec.details.clone()
        },
        ..spec.clone()
    };
    let refused = fixture.purchaser.resolve_offering(&unknown).await;
    assert!(
        matches!(refused, Err(PurchaseError::Invalid(_))),
        "{refused:?}"
    );
    let three_years = PurchaseSpec {
        term_years: 3,
        ..explicit
    };
    let mismatched = fixture.purchaser.resolve_offering(&three_years).await;
    assert!(
        matches!(mismatched, Err(PurchaseError::Invalid(_))),
        "{mismatched:?}"
    );
}

#[tokio::test]
async fn a_malformed_hourly_commitment_is_invalid_and_nothing_is_sent() {
    let fixture = start().await;
    let spec = spec(AwsService::SavingsPlans, "bad-commitment");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    for hourly in ["", "1,5", "-1", "0", "abc", "0.0000001"] {
        let bad = PurchaseSpec {
            details: RecommendationDetails {
                hourly_commitment: Some(hourly.to_owned()),
                ..spec.details.clone()
            },
            ..spec.clone()
        };
        let bought = fixture.purchaser.purchase(&bad, &offering).await;
        assert!(
            matches!(bought, Err(PurchaseError::Invalid(_))),
            "{hourly:?} gave {bought:?}"
        );
        let resolved = fixture.purchaser.resolve_offering(&bad).await;
        assert!(
            matches!(resolved, Err(PurchaseError::Invalid(_))),
            "{hourly:?} gave {resolved:?}"
        );
    }
    let missing = PurchaseSpec {
        details: RecommendationDetails {
            hourly_commitment: None,
            ..spec.details.clone()
        },
        ..spec.clone()
    };
    assert!(matches!(
        fixture.purchaser.purchase(&missing, &offering).await,
        Err(PurchaseError::Invalid(_))
    ));
    let ledger = fixture.ledger(AwsService::SavingsPlans).await;
    assert_eq!(ledger.calls_of("CreateSavingsPlan").count(), 0);
}

#[tokio::test]
async fn a_purchase_of_an_unknown_offering_is_rejected() {
    let fixture = start().await;
    for service in [
        AwsService::Ec2,
        AwsService::Rds,
        AwsService::Redshift,
        AwsService::OpenSearch,
    ] {
        let spec = spec(service, "unknown-offering");
        let bought = fixture
            .purchaser
            .purchase(&spec, "00000000-0000-4000-8000-000000000000")
            .await;
        assert!(
            matches!(bought, Err(PurchaseError::Rejected(_))),
            "{service:?} gave {bought:?}"
        );
    }
    assert!(fixture.handle.ledger().await.commitments.is_empty());
}

#[tokio::test]
async fn an_ec2_tag_whose_reply_is_lost_is_resent_and_written() {
    let fixture = start().await;
    let spec = spec(AwsService::Ec2, "tag-retry");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    let bought = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
    fixture
        .handle
        .add_fault(
            FaultSpec::on(Service::Ec2, "CreateTags")
                .error(FaultError::Internal)
                .times(1),
        )
        .await;
    fixture
        .handle
        .add_fault(
            FaultSpec::on(Service::Ec2, "CreateTags")
                .drop_after_commit()
                .times(1),
        )
        .await;
    fixture
        .purchaser
        .tag(&spec, &bought.commitment().commitment_id)
        .await
        .unwrap();
    let found = fixture
        .purchaser
        .find_by_token(&spec, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.token_tag.as_deref(), Some(spec.token.as_str()));
    assert_eq!(
        fixture
            .ledger(AwsService::Ec2)
            .await
            .commitments_for_token(&spec.token),
        1
    );
}

#[tokio::test]
async fn a_refused_ec2_tag_is_an_error() {
    let fixture = start().await;
    let spec = spec(AwsService::Ec2, "tag-refused");
    let tagged = fixture
        .purchaser
        .tag(&spec, "00000000-0000-4000-8000-000000000000")
        .await;
    assert!(
        matches!(tagged, Err(PurchaseError::Rejected(_))),
        "{tagged:?}"
    );
}

#[tokio::test]
async fn a_failed_redshift_tag_is_logged_not_returned_and_the_recorded_id_still_finds_the_node() {
    let fixture = start().await;
    let spec = spec(AwsService::Redshift, "redshift-untaggable");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    let bought = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
    let node_id = bought.commitment().commitment_id.clone();
    fixture
        .handle
        .add_fault(FaultSpec::on(Service::Redshift, "CreateTags").error(FaultError::AccessDenied))
        .await;
    fixture.purchaser.tag(&spec, &node_id).await.unwrap();
    assert_eq!(
        fixture.purchaser.find_by_token(&spec, &[]).await.unwrap(),
        None
    );
    let found = fixture
        .purchaser
        .find_by_token(&spec, std::slice::from_ref(&node_id))
        .await
        .unwrap();
    assert_eq!(found.map(|found| found.commitment_id), Some(node_id));
}

#[tokio::test]
async fn a_failed_redshift_tag_look_up_fails_the_guard_and_the_candidates() {
    let fixture = start().await;
    let spec = spec(AwsService::Redshift, "redshift-describe-tags");
    let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
    let sent_at = Utc::now();
    fixture.purchaser.purchase(&spec, &offering).await.unwrap();
    fixture
        .handle
        .add_fault(
            FaultSpec::on(Service::Redshift, "DescribeTags")
                .error(FaultError::Internal)
                .times(20),
        )
        .await;
    let guarded = fixture.purchaser.find_by_token(&spec, &[]).await;
    assert!(
        matches!(guarded, Err(PurchaseError::LookupFailed(_))),
        "{guarded:?}"
    );
    let candidates = fixture
        .purchaser
        .untagged_candidates(&spec, &offering, sent_at, &[])
        .await;
    assert!(
        matches!(candidates, Err(PurchaseError::LookupFailed(_))),
        "{candidates:?}"
    );
}

#[tokio::test]
async fn several_untagged_purchases_are_all_candidates_so_none_is_adopted_blindly() {
    for service in [AwsService::Ec2, AwsService::Redshift] {
        let fixture = start().await;
        let spec = spec(service, "several");
        let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
        let sent_at = Utc::now();
        for _ in 0..2 {
            let bought = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
            assert!(matches!(bought, PurchaseOutcome::Bought(_)));
        }
        let other_count = PurchaseSpec {
            count: spec.count + 1,
            ..spec.clone()
        };
        fixture
            .purchaser
            .purchase(&other_count, &offering)
            .await
            .unwrap();
        let candidates = fixture
            .purchaser
            .untagged_candidates(&spec, &offering, sent_at, &[])
            .await
            .unwrap();
        assert_eq!(candidates.len(), 2, "{service:?}: {candidates:?}");
    }
}

#[tokio::test]
async fn services_with_a_client_id_have_no_candidates_and_need_no_tag() {
    let fixture = start().await;
    for service in [
        AwsService::SavingsPlans,
        AwsService::Rds,
        AwsService::ElastiCache,
        AwsService::MemoryDb,
        AwsService::OpenSearch,
    ] {
        let spec = spec(service, "no-candidates");
        let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
        let sent_at = Utc::now();
        let bought = fixture.purchaser.purchase(&spec, &offering).await.unwrap();
        fixture
            .purchaser
            .tag(&spec, &bought.commitment().commitment_id)
            .await
            .unwrap();
        let candidates = fixture
            .purchaser
            .untagged_candidates(&spec, &offering, sent_at, &[])
            .await
            .unwrap();
        assert!(candidates.is_empty());
    }
}

/// A writer the test's subscriber logs into.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_show_the_masked_token_and_never_the_token_or_the_credentials() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("cudly_aws=trace,cudly_aws_sandbox=off")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = start().await;
    for service in AwsService::ALL {
        let spec = spec(service, "logging");
        let offering = fixture.purchaser.resolve_offering(&spec).await.unwrap();
        fixture
            .handle
            .add_fault(
                FaultSpec::on(
                    sandbox_service(service.name()),
                    purchase_operation(service.name()),
                )
                .error(FaultError::Internal)
                .times(1),
            )
            .await;
        let _ = fixture.purchaser.purchase(&spec, &offering).await;
        let _ = fixture.purchaser.find_by_token(&spec, &[]).await;
    }

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let token = spec(AwsService::Ec2, "logging").token;
    assert!(
        text.contains(&cudly_common::idempotency::mask_token(&token)),
        "{text}"
    );
    assert!(text.contains("PurchaseReservedInstancesOffering"), "{text}");
    assert!(!text.contains(&token), "the full token was logged");
    assert!(!text.contains(KEY), "the access key id was logged");
    assert!(!text.contains(SECRET), "the secret was logged");
}

#[tokio::test]
async fn an_ec2_purchase_that_times_out_is_ambiguous_and_never_resent() {
    let fixture = start().await;
    let purchaser = purchaser_with_timeout(&fixture.handle, Duration::from_millis(300));
    let spec = spec(AwsService::Ec2, "timeout");
    let offering = purchaser.resolve_offering(&spec).await.unwrap();
    fixture
        .handle
        .add_fault(
            FaultSpec::on(Service::Ec2, "PurchaseReservedInstancesOffering")
                .latency(900, 0)
                .times(1),
        )
        .await;
    let sent_at = Utc::now();
    let bought = purchaser.purchase(&spec, &offering).await;
    assert!(
        matches!(bought, Err(PurchaseError::Ambiguous(_))),
        "{bought:?}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The sandbox abandons a delayed call whose client hung up (AWS might still
    // process it): either way there is at most one call, and reconciliation sees
    // exactly what was committed.
    let ledger = fixture.ledger(AwsService::Ec2).await;
    assert!(ledger.calls_of("PurchaseReservedInstancesOffering").count() <= 1);
    let candidates = purchaser
        .untagged_candidates(&spec, &offering, sent_at, &[])
        .await
        .unwrap();
    assert_eq!(candidates.len(), ledger.commitments.len(), "{candidates:?}");
    assert!(candidates.len() <= 1);
}

#[tokio::test]
async fn an_rds_purchase_that_times_out_is_resent_with_the_same_id_and_buys_once() {
    let fixture = start().await;
    let purchaser = purchaser_with_timeout(&fixture.handle, Duration::from_millis(300));
    let spec = spec(AwsService::Rds, "timeout");
    let offering = purchaser.resolve_offering(&spec).await.unwrap();
    fixture
        .handle
        .add_fault(
            FaultSpec::on(Service::Rds, "PurchaseReservedDBInstancesOffering")
                .latency(900, 0)
                .times(1),
        )
        .await;
    let bought = purchaser.purchase(&spec, &offering).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = purchaser.purchase(&spec, &offering).await.unwrap();
    assert!(
        matches!(again, PurchaseOutcome::AlreadyExisted(_)),
        "{again:?}"
    );
    assert_eq!(
        again.commitment().commitment_id,
        bought.commitment().commitment_id
    );
    let ledger = fixture.ledger(AwsService::Rds).await;
    assert!(
        ledger
            .calls_of("PurchaseReservedDBInstancesOffering")
            .count()
            >= 2
    );
    assert_eq!(ledger.commitments_for_token(&spec.token), 1);
    assert_eq!(ledger.commitments.len(), 1);
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn the_purchaser_and_its_futures_can_cross_tasks() {
    let fixture = start().await;
    let purchaser = std::sync::Arc::new(purchaser_for(&fixture.handle));
    let spec = spec(AwsService::Redshift, "send");
    assert_send(&purchaser);
    assert_send(&purchaser.caller_account_id());
    assert_send(&purchaser.find_by_token(&spec, &[]));
    assert_send(&purchaser.resolve_offering(&spec));
    assert_send(&purchaser.purchase(&spec, "offering"));
    assert_send(&purchaser.tag(&spec, "node"));
    assert_send(&purchaser.untagged_candidates(&spec, "offering", Utc::now(), &[]));
    let shared = purchaser.clone();
    let account = tokio::spawn(async move { shared.caller_account_id().await })
        .await
        .unwrap();
    assert_eq!(account.unwrap(), ACCOUNT);
}

#[tokio::test]
async fn an_ec2_purchase_over_its_limit_price_is_refused_and_buys_nothing() {
    let fixture = start().await;
    let spec = spec(AwsService::Ec2, "limit-price");
    let quote = fixture.purchaser.quote(&spec).await.unwrap();
    assert!(quote.upfront() > 1.0, "an all-upfront offering: {quote:?}");
    let limited = |amount: f64| PurchaseSpec {
        limit_price: Some(LimitPrice {
            amount,
            currency: "USD".to_owned(),
        }),
        ..spec.clone()
    };
    let refused = fixture
        .purchaser
        .purchase(&limited(quote.upfront() - 1.0), &quote.offering_id)
        .await;
    assert!(
        matches!(&refused, Err(PurchaseError::Rejected(failure)) if failure.has_code("LimitPriceExceeded")),
        "{refused:?}"
    );
    assert!(fixture.ledger(AwsService::Ec2).await.commitments.is_empty());
    fixture
        .purchaser
        .purchase(&limited(quote.upfront()), &quote.offering_id)
        .await
        .expect("a limit of the quoted upfront buys");
    assert_eq!(fixture.ledger(AwsService::Ec2).await.commitments.len(), 1);
}

#[tokio::test]
async fn an_ec2_dry_run_says_whether_the_purchase_would_be_accepted_and_buys_nothing() {
    let fixture = start().await;
    let ec2 = spec(AwsService::Ec2, "dry-run");
    let offering = fixture.purchaser.resolve_offering(&ec2).await.unwrap();
    fixture
        .purchaser
        .check_purchase(&ec2, &offering)
        .await
        .expect("permitted");
    fixture
        .handle
        .add_fault(
            FaultSpec::on(Service::Ec2, "PurchaseReservedInstancesOffering")
                .error(FaultError::AccessDenied),
        )
        .await;
    let refused = fixture.purchaser.check_purchase(&ec2, &offering).await;
    assert!(
        matches!(&refused, Err(PurchaseError::Rejected(failure)) if failure.has_code("UnauthorizedOperation")),
        "{refused:?}"
    );
    assert!(fixture.ledger(AwsService::Ec2).await.commitments.is_empty());
    // Other services have no dry run: nothing to ask, nothing sent.
    let rds = spec(AwsService::Rds, "dry-run-other");
    fixture
        .purchaser
        .check_purchase(&rds, "any-offering")
        .await
        .unwrap();
}
