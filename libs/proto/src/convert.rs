//! Conversions between the wire types and the shared types every gRPC edge uses: times,
//! ids and recommendations. Each exists once, here, so no two services can disagree on,
//! say, a timestamp with negative nanoseconds.
//!
//! Fallible conversions of request fields return a [`FieldError`] naming the field;
//! services turn it into their 400.

use chrono::{DateTime, Utc};
use cudly_vocabulary::{
    AwsService, FieldError, Provider, Recommendation, RecommendationDetails, RecommendationInput,
};
use prost_types::Timestamp;
use uuid::Uuid;

use crate::common::v1 as pb;

/// Returns the wire form of a time.
pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        // At most 1 999 999 999 (a leap second), always within i32.
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

/// Returns the time of a wire timestamp, or `None` when it is not one: negative
/// nanoseconds or a second's worth or more (the protobuf rule), or out of range.
pub fn time(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(timestamp.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos))
}

/// Returns the time of an optional wire timestamp; an invalid one reads as absent. For
/// replies of this system's own services, which only send valid times.
pub fn optional_time(timestamp: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    timestamp.and_then(time)
}

/// Returns the time of a request field, or an error naming `field`.
pub fn required_time(timestamp: &Timestamp, field: &str) -> Result<DateTime<Utc>, FieldError> {
    time(timestamp).ok_or_else(|| FieldError::new(field, "is not a valid timestamp"))
}

/// Returns the time of an optional request field (unset means none), or an error
/// naming `field`.
pub fn parse_optional_time(
    timestamp: Option<&Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    timestamp
        .map(|timestamp| required_time(timestamp, field))
        .transpose()
}

/// Returns the uuid of a request field, or an error naming `field`.
pub fn parse_id(text: &str, field: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(text.trim()).map_err(|_| FieldError::new(field, "must be a uuid"))
}

/// Returns the uuid of an optional request field; absent or empty means none.
pub fn parse_optional_id(text: Option<&str>, field: &str) -> Result<Option<Uuid>, FieldError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => parse_id(text, field).map(Some),
    }
}

/// Returns the uuids of a repeated request field, each error naming `field[i]`.
pub fn parse_ids(texts: &[String], field: &str) -> Result<Vec<Uuid>, FieldError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| parse_id(text, &format!("{field}[{index}]")))
        .collect()
}

pub fn details_to_wire(details: RecommendationDetails) -> pb::RecommendationDetails {
    pb::RecommendationDetails {
        tenancy: details.tenancy,
        offering_class: details.offering_class,
        availability_zone: details.availability_zone,
        multi_az: details.multi_az,
        plan_type: details.plan_type,
        hourly_commitment: details.hourly_commitment,
        offering_id: details.offering_id,
    }
}

pub fn details_from_wire(details: pb::RecommendationDetails) -> RecommendationDetails {
    RecommendationDetails {
        tenancy: details.tenancy,
        offering_class: details.offering_class,
        availability_zone: details.availability_zone,
        multi_az: details.multi_az,
        plan_type: details.plan_type,
        hourly_commitment: details.hourly_commitment,
        offering_id: details.offering_id,
    }
}

impl From<RecommendationInput> for pb::Recommendation {
    /// Returns the wire form of a line as a client sent it.
    fn from(input: RecommendationInput) -> Self {
        Self {
            provider: input.provider,
            service: input.service,
            region: input.region,
            resource_type: input.resource_type,
            engine: input.engine,
            platform: input.platform,
            count: input.count,
            term: input.term,
            payment: input.payment,
            cloud_account_id: input.cloud_account_id.map(|id| id.to_string()),
            all_accounts: input.all_accounts.unwrap_or(false),
            details: Some(details_to_wire(input.details.unwrap_or_default())),
            upfront_cost: input.upfront_cost,
            monthly_savings: input.monthly_savings,
        }
    }
}

impl From<Recommendation> for pb::Recommendation {
    /// Returns the wire form of a validated line.
    fn from(recommendation: Recommendation) -> Self {
        RecommendationInput::from(recommendation).into()
    }
}

/// Returns the lines of a request as received, for validation; a malformed
/// cloud_account_id is an error naming `recommendations[i].cloud_account_id`.
pub fn recommendation_inputs(
    lines: Vec<pb::Recommendation>,
) -> Result<Vec<RecommendationInput>, FieldError> {
    lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| {
            let cloud_account_id = parse_optional_id(
                line.cloud_account_id.as_deref(),
                &format!("recommendations[{index}].cloud_account_id"),
            )?;
            Ok(RecommendationInput {
                provider: line.provider,
                service: line.service,
                region: line.region,
                resource_type: line.resource_type,
                engine: line.engine,
                platform: line.platform,
                count: line.count,
                term: line.term,
                payment: line.payment,
                cloud_account_id,
                all_accounts: Some(line.all_accounts),
                details: line.details.map(details_from_wire),
                upfront_cost: line.upfront_cost,
                monthly_savings: line.monthly_savings,
            })
        })
        .collect()
}

impl TryFrom<pb::Recommendation> for Recommendation {
    type Error = FieldError;

    /// Reads a validated line back from a reply of this system's own services (no
    /// validation: the sender validated it), failing only on a name outside the
    /// vocabulary.
    fn try_from(line: pb::Recommendation) -> Result<Self, FieldError> {
        Ok(Self {
            provider: Provider::parse(&line.provider)
                .ok_or_else(|| FieldError::new("provider", "is not a known provider"))?,
            service: AwsService::from_name(&line.service)
                .ok_or_else(|| FieldError::new("service", "is not a known service"))?,
            cloud_account_id: parse_optional_id(
                line.cloud_account_id.as_deref(),
                "cloud_account_id",
            )?,
            region: line.region,
            resource_type: line.resource_type,
            engine: line.engine,
            platform: line.platform,
            count: line.count,
            term: line.term,
            payment: line.payment,
            all_accounts: line.all_accounts,
            details: line.details.map(details_from_wire).unwrap_or_default(),
            upfront_cost: line.upfront_cost,
            monthly_savings: line.monthly_savings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_nanosecond() {
        let at: DateTime<Utc> = "2026-11-24T10:00:00.123456789Z".parse().unwrap();
        assert_eq!(time(&timestamp(at)), Some(at));
    }

    #[test]
    fn negative_or_whole_second_nanos_are_not_a_time() {
        for nanos in [-1, 1_000_000_000, i32::MIN] {
            let wire = Timestamp { seconds: 0, nanos };
            assert_eq!(time(&wire), None, "{nanos}");
            assert_eq!(
                required_time(&wire, "start_date").unwrap_err().field,
                "start_date"
            );
        }
        assert_eq!(parse_optional_time(None, "at"), Ok(None));
    }

    #[test]
    fn ids_name_their_field() {
        assert_eq!(parse_id("nope", "plan_id").unwrap_err().field, "plan_id");
        assert_eq!(parse_optional_id(Some(" "), "x"), Ok(None));
        let id = Uuid::new_v4();
        let texts = [id.to_string(), "bad".to_owned()];
        assert_eq!(parse_ids(&texts, "ids").unwrap_err().field, "ids[1]");
    }

    #[test]
    fn recommendations_round_trip_through_the_wire() {
        let input = RecommendationInput {
            provider: "aws".into(),
            service: "ec2".into(),
            region: "us-east-1".into(),
            resource_type: "m5.large".into(),
            platform: Some("Linux/UNIX".into()),
            count: 2,
            term: 3,
            payment: "partial-upfront".into(),
            cloud_account_id: Some(Uuid::new_v4()),
            upfront_cost: Some(12.5),
            ..RecommendationInput::default()
        };
        let validated = cudly_vocabulary::validate_recommendations(vec![input]).unwrap();
        let wire = pb::Recommendation::from(validated[0].clone());
        assert_eq!(
            wire.details.as_ref().unwrap().tenancy.as_deref(),
            Some("default")
        );
        assert_eq!(
            Recommendation::try_from(wire.clone()).unwrap(),
            validated[0]
        );
        let received = recommendation_inputs(vec![wire]).unwrap();
        assert_eq!(
            cudly_vocabulary::validate_recommendations(received).unwrap(),
            validated
        );
    }

    #[test]
    fn a_malformed_account_id_names_its_line() {
        let line = pb::Recommendation {
            cloud_account_id: Some("acct-1".into()),
            ..pb::Recommendation::default()
        };
        let error = recommendation_inputs(vec![pb::Recommendation::default(), line]).unwrap_err();
        assert_eq!(error.field, "recommendations[1].cloud_account_id");
    }
}
