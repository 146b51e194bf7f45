//! The purchase adapters through the real SDK clients, over HTTP, against the AWS
//! sandbox: the guard, offering look-up and its quote, purchase, tagging and
//! reconciliation of every service, with the faults the idempotency rules exist for.

mod common;
mod edges;
mod quotes;
mod scenarios;
mod specific;

macro_rules! every_service {
    ($($module:ident => $service:expr),* $(,)?) => {$(
        mod $module {
            use cudly_aws::purchase::AwsService;

            use crate::scenarios;

            #[tokio::test]
            async fn guard_misses_then_finds_the_one_commitment_bought() {
                scenarios::guard_misses_then_finds_the_one_commitment_bought($service).await;
            }

            #[tokio::test]
            async fn a_second_purchase_with_the_same_token_buys_nothing_more() {
                scenarios::a_second_purchase_with_the_same_token_buys_nothing_more($service).await;
            }

            #[tokio::test]
            async fn a_purchase_whose_reply_is_lost_yields_exactly_one_commitment() {
                scenarios::a_purchase_whose_reply_is_lost_yields_exactly_one_commitment($service).await;
            }

            #[tokio::test]
            async fn a_failed_guard_look_up_is_an_error_never_a_miss() {
                scenarios::a_failed_guard_look_up_is_an_error_never_a_miss($service).await;
            }

            #[tokio::test]
            async fn a_throttled_purchase_is_resent_and_buys_once() {
                scenarios::a_throttled_purchase_is_resent_and_buys_once($service).await;
            }

            #[tokio::test]
            async fn a_purchase_refused_by_aws_is_rejected_and_never_resent() {
                scenarios::a_purchase_refused_by_aws_is_rejected_and_never_resent($service).await;
            }

            #[tokio::test]
            async fn offering_resolution_is_stable_and_malformed_recommendations_are_invalid() {
                scenarios::offering_resolution_is_stable_and_malformed_recommendations_are_invalid($service).await;
            }

            #[tokio::test]
            async fn a_quote_is_the_listed_price_of_the_matched_offering() {
                crate::quotes::a_quote_is_the_listed_price_of_the_matched_offering($service).await;
            }

            #[tokio::test]
            async fn a_raised_list_price_shows_in_a_new_quote_and_is_a_price_rise() {
                crate::quotes::a_raised_list_price_shows_in_a_new_quote_and_is_a_price_rise($service).await;
            }

            #[tokio::test]
            async fn a_server_error_on_the_purchase_is_handled_as_the_service_allows() {
                if $service.resend_is_idempotent() {
                    scenarios::a_server_error_on_a_purchase_with_a_client_id_is_resent_and_buys_once($service).await;
                } else {
                    scenarios::a_purchase_answered_with_a_server_error_is_ambiguous_and_never_resent($service).await;
                }
            }
        }
    )*};
}

every_service! {
    ec2 => AwsService::Ec2,
    savingsplans => AwsService::SavingsPlans,
    rds => AwsService::Rds,
    elasticache => AwsService::ElastiCache,
    memorydb => AwsService::MemoryDb,
    opensearch => AwsService::OpenSearch,
    redshift => AwsService::Redshift,
}
