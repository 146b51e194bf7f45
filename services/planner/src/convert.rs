//! Proto ⇄ domain conversions shared by the gRPC edges (the server in `grpc.rs`, the
//! clients in `clients.rs`). Nothing past the edges sees a prost type.

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_proto::common::v1 as common_pb;
use uuid::Uuid;

use crate::domain::recommendation::{Recommendation, RecommendationDetails, RecommendationInput};

/// Returns the protobuf form of a time.
pub fn to_timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

/// Returns the time of a protobuf timestamp, or a 400 naming `field`.
pub fn from_timestamp(
    timestamp: &prost_types::Timestamp,
    field: &str,
) -> Result<DateTime<Utc>, ApiError> {
    u32::try_from(timestamp.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos))
        .ok_or_else(|| ApiError::invalid_field(field, "is not a valid timestamp"))
}

/// Returns the time of an optional protobuf timestamp (unset means null).
pub fn from_optional_timestamp(
    timestamp: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    timestamp
        .map(|time| from_timestamp(time, field))
        .transpose()
}

/// Returns a uuid, or a 400 naming `field`.
pub fn parse_id(text: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text.trim()).map_err(|_| ApiError::invalid_field(field, "must be a uuid"))
}

/// Returns a recommendation as received, for validation.
pub fn recommendation_input(proto: common_pb::Recommendation) -> RecommendationInput {
    let details = proto.details.unwrap_or_default();
    RecommendationInput {
        provider: proto.provider,
        service: proto.service,
        region: proto.region,
        resource_type: proto.resource_type,
        engine: proto.engine,
        platform: proto.platform,
        count: proto.count,
        term: proto.term,
        payment: proto.payment,
        cloud_account_id: proto.cloud_account_id,
        all_accounts: proto.all_accounts,
        details: RecommendationDetails {
            tenancy: details.tenancy,
            offering_class: details.offering_class,
            availability_zone: details.availability_zone,
            multi_az: details.multi_az,
            plan_type: details.plan_type,
            hourly_commitment: details.hourly_commitment,
            offering_id: details.offering_id,
        },
        upfront_cost: proto.upfront_cost,
        monthly_savings: proto.monthly_savings,
    }
}

/// Returns the protobuf form of a validated recommendation.
pub fn recommendation_proto(recommendation: &Recommendation) -> common_pb::Recommendation {
    let details = &recommendation.details;
    common_pb::Recommendation {
        provider: recommendation.provider.as_str().to_owned(),
        service: recommendation.service.clone(),
        region: recommendation.region.clone(),
        resource_type: recommendation.resource_type.clone(),
        engine: recommendation.engine.clone(),
        platform: recommendation.platform.clone(),
        count: recommendation.count,
        term: recommendation.term,
        payment: recommendation.payment.clone(),
        cloud_account_id: recommendation.cloud_account_id.map(|id| id.to_string()),
        all_accounts: recommendation.all_accounts,
        details: Some(common_pb::RecommendationDetails {
            tenancy: details.tenancy.clone(),
            offering_class: details.offering_class.clone(),
            availability_zone: details.availability_zone.clone(),
            multi_az: details.multi_az,
            plan_type: details.plan_type.clone(),
            hourly_commitment: details.hourly_commitment.clone(),
            offering_id: details.offering_id.clone(),
        }),
        upfront_cost: recommendation.upfront_cost,
        monthly_savings: recommendation.monthly_savings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::recommendation::validate_recommendations;

    #[test]
    fn timestamps_round_trip_to_the_nanosecond() {
        let time: DateTime<Utc> = "2026-11-24T10:00:00.123456789Z".parse().unwrap();
        assert_eq!(from_timestamp(&to_timestamp(time), "at").unwrap(), time);
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(
            from_timestamp(&bad, "start_date")
                .unwrap_err()
                .field
                .as_deref(),
            Some("start_date")
        );
    }

    #[test]
    fn recommendations_round_trip_through_the_proto() {
        let proto = common_pb::Recommendation {
            provider: "aws".into(),
            service: "ec2".into(),
            region: "us-east-1".into(),
            resource_type: "m5.large".into(),
            platform: Some("Linux/UNIX".into()),
            count: 2,
            term: 3,
            payment: "partial-upfront".into(),
            cloud_account_id: Some(Uuid::new_v4().to_string()),
            upfront_cost: Some(12.5),
            ..common_pb::Recommendation::default()
        };
        let validated =
            validate_recommendations(vec![recommendation_input(proto.clone())]).unwrap();
        let back = recommendation_proto(&validated[0]);
        assert_eq!(back.cloud_account_id, proto.cloud_account_id);
        assert_eq!(back.platform, proto.platform);
        assert_eq!(back.count, 2);
        assert_eq!(back.details.unwrap().tenancy.as_deref(), Some("default"));
    }
}
