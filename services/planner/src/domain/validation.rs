//! Validation of plans as written (docs/design/DOMAIN.md "Plans", docs/design/API.md defaults). Every error names
//! the field at fault (`services.aws/ec2.term`) and never changes anything.

use std::collections::BTreeMap;

use cudly_common::ApiError;

use super::plan::{
    PlanInput, PlanSource, PlanSpec, RampInput, RampSpec, RampType, ServiceConfig, ServiceInput,
};

use super::ramp;
use cudly_vocabulary::Provider;

/// Longest plan name.
pub const MAX_NAME_CHARS: usize = 100;
/// Largest notification_days_before.
pub const MAX_NOTIFICATION_DAYS: u32 = 30;
/// Default notification_days_before.
pub const DEFAULT_NOTIFICATION_DAYS: u32 = 7;
/// Most services one plan may hold.
pub const MAX_SERVICES: usize = 64;
/// Most entries of one include/exclude list.
pub const MAX_FILTER_ENTRIES: usize = 500;
/// Longest region or type name in a filter list.
pub const MAX_FILTER_ENTRY_CHARS: usize = 64;
/// Longest service name of a provider without a fixed vocabulary.
pub const MAX_SERVICE_NAME_CHARS: usize = 50;
/// Most steps of a custom ramp.
pub const MAX_TOTAL_STEPS: u32 = 100;
/// Longest interval between two steps.
pub const MAX_STEP_INTERVAL_DAYS: u32 = 365;

/// Returns the validated plan, with the REST defaults applied, or a 400 naming the
/// first field at fault.
pub fn validate_plan(input: PlanInput) -> Result<PlanSpec, ApiError> {
    let name = validate_name(&input.name)?;
    let notification_days_before = input
        .notification_days_before
        .unwrap_or(DEFAULT_NOTIFICATION_DAYS);
    if notification_days_before > MAX_NOTIFICATION_DAYS {
        return Err(ApiError::invalid_field(
            "notification_days_before",
            format!("must be between 0 and {MAX_NOTIFICATION_DAYS}"),
        ));
    }
    let services = validate_services(input.services)?;
    let ramp = validate_ramp(input.ramp_schedule.unwrap_or_default())?;
    if let Some(limit) = input.max_commitment_per_run
        && !(limit.is_finite() && limit >= 0.0)
    {
        return Err(ApiError::invalid_field(
            "max_commitment_per_run",
            "must be a number of at least 0",
        ));
    }
    let source = match input.source.as_deref() {
        None => PlanSource::List,
        Some(text) => PlanSource::parse(text).ok_or_else(|| {
            ApiError::invalid_field(
                "source",
                format!("must be one of {}", PlanSource::NAMES.join(", ")),
            )
        })?,
    };
    Ok(PlanSpec {
        name,
        enabled: input.enabled.unwrap_or(true),
        auto_purchase: input.auto_purchase.unwrap_or(false),
        notification_days_before,
        services,
        ramp,
        max_commitment_per_run: input.max_commitment_per_run,
        source,
    })
}

/// Returns the trimmed name: required, at most 100 characters, no control characters.
pub fn validate_name(name: &str) -> Result<String, ApiError> {
    cudly_common::names::display_name("name", name, MAX_NAME_CHARS)
}

fn validate_services(
    services: BTreeMap<String, ServiceInput>,
) -> Result<BTreeMap<String, ServiceConfig>, ApiError> {
    if services.is_empty() {
        return Err(ApiError::invalid_field(
            "services",
            "at least one service is required",
        ));
    }
    if services.len() > MAX_SERVICES {
        return Err(ApiError::invalid_field(
            "services",
            format!("at most {MAX_SERVICES} services are allowed"),
        ));
    }
    services
        .into_iter()
        .map(|(key, service)| validate_service(&key, service).map(|config| (key, config)))
        .collect()
}

/// Returns the field name of `key`'s `field`, with the key cut to a sane length so that
/// an error never quotes a huge input back.
fn service_field(key: &str, field: &str) -> String {
    let shown: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
    if field.is_empty() {
        format!("services.{shown}")
    } else {
        format!("services.{shown}.{field}")
    }
}

fn validate_service(key: &str, input: ServiceInput) -> Result<ServiceConfig, ApiError> {
    let Some((key_provider, key_service)) = key.split_once('/') else {
        return Err(ApiError::invalid_field(
            &service_field(key, ""),
            "key must be \"<provider>/<service>\", e.g. \"aws/ec2\"",
        ));
    };
    let provider = Provider::parse(key_provider).ok_or_else(|| {
        ApiError::invalid_field(
            &service_field(key, ""),
            "unknown provider in key, expected aws, azure or gcp",
        )
    })?;
    validate_service_name(provider, key_service)
        .map_err(|problem| ApiError::invalid_field(&service_field(key, ""), problem))?;
    if input.provider != provider.as_str() {
        return Err(ApiError::invalid_field(
            &service_field(key, "provider"),
            format!("must be {provider}, as in the key"),
        ));
    }
    if input.service != key_service {
        return Err(ApiError::invalid_field(
            &service_field(key, "service"),
            format!("must be {key_service}, as in the key"),
        ));
    }
    if !cudly_vocabulary::TERMS_YEARS.contains(&input.term) {
        return Err(ApiError::invalid_field(
            &service_field(key, "term"),
            "must be 1 or 3",
        ));
    }
    let payments = provider.payment_options();
    if !payments.contains(&input.payment.as_str()) {
        return Err(ApiError::invalid_field(
            &service_field(key, "payment"),
            format!("must be one of {} for {provider}", payments.join(", ")),
        ));
    }
    if !input.coverage.is_finite() || !(0.0..=100.0).contains(&input.coverage) {
        return Err(ApiError::invalid_field(
            &service_field(key, "coverage"),
            "must be between 0 and 100",
        ));
    }
    Ok(ServiceConfig {
        provider,
        service: key_service.to_owned(),
        enabled: input.enabled.unwrap_or(true),
        term: input.term,
        payment: input.payment,
        coverage: input.coverage,
        include_regions: validate_filter(key, "include_regions", input.include_regions)?,
        exclude_regions: validate_filter(key, "exclude_regions", input.exclude_regions)?,
        include_types: validate_filter(key, "include_types", input.include_types)?,
        exclude_types: validate_filter(key, "exclude_types", input.exclude_types)?,
    })
}

/// Checks a service name against the provider's vocabulary (AWS), or as a lowercase
/// name (`[a-z][a-z0-9-]*`) for providers without a fixed one.
fn validate_service_name(provider: Provider, service: &str) -> Result<(), String> {
    match provider.services() {
        Some(vocabulary) if vocabulary.contains(&service) => Ok(()),
        Some(vocabulary) => Err(format!(
            "unknown {provider} service in key, expected one of {}",
            vocabulary.join(", ")
        )),
        None => {
            let well_formed = service.len() <= MAX_SERVICE_NAME_CHARS
                && service.starts_with(|c: char| c.is_ascii_lowercase())
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if well_formed {
                Ok(())
            } else {
                Err(format!(
                    "{provider} service in key must be a lowercase name"
                ))
            }
        }
    }
}

/// Returns an include/exclude list trimmed and de-duplicated (first occurrence kept).
fn validate_filter(key: &str, field: &str, entries: Vec<String>) -> Result<Vec<String>, ApiError> {
    if entries.len() > MAX_FILTER_ENTRIES {
        return Err(ApiError::invalid_field(
            &service_field(key, field),
            format!("at most {MAX_FILTER_ENTRIES} entries are allowed"),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let trimmed = entry.trim();
        let bad = trimmed.is_empty()
            || trimmed.chars().count() > MAX_FILTER_ENTRY_CHARS
            || trimmed.chars().any(|c| c.is_control() || c.is_whitespace());
        if bad {
            return Err(ApiError::invalid_field(
                &format!("{}[{index}]", service_field(key, field)),
                format!(
                    "must be a name of 1 to {MAX_FILTER_ENTRY_CHARS} characters without spaces"
                ),
            ));
        }
        if !kept.iter().any(|known| known == trimmed) {
            kept.push(trimmed.to_owned());
        }
    }
    Ok(kept)
}

/// Returns the validated ramp: a preset fills the fields not given and refuses given
/// values that differ from it; `custom` needs every field.
pub fn validate_ramp(input: RampInput) -> Result<RampSpec, ApiError> {
    let ramp_type = match input.ramp_type.as_deref() {
        None => RampType::Immediate,
        Some(name) => RampType::parse(name).ok_or_else(|| {
            ApiError::invalid_field(
                "ramp_schedule.type",
                "must be one of immediate, weekly-25pct, monthly-10pct, custom",
            )
        })?,
    };
    let (percent_per_step, step_interval_days, total_steps) = match ramp::preset(ramp_type) {
        Some(preset) => {
            check_preset_field(
                ramp_type,
                "percent_per_step",
                input.percent_per_step,
                preset.percent_per_step,
            )?;
            check_preset_field(
                ramp_type,
                "step_interval_days",
                input.step_interval_days.map(f64::from),
                f64::from(preset.step_interval_days),
            )?;
            check_preset_field(
                ramp_type,
                "total_steps",
                input.total_steps.map(f64::from),
                f64::from(preset.total_steps),
            )?;
            (
                preset.percent_per_step,
                preset.step_interval_days,
                preset.total_steps,
            )
        }
        None => {
            let percent_per_step = input.percent_per_step.ok_or_else(|| {
                ApiError::invalid_field(
                    "ramp_schedule.percent_per_step",
                    "is required for a custom ramp",
                )
            })?;
            let step_interval_days = input.step_interval_days.ok_or_else(|| {
                ApiError::invalid_field(
                    "ramp_schedule.step_interval_days",
                    "is required for a custom ramp",
                )
            })?;
            let total_steps = input.total_steps.ok_or_else(|| {
                ApiError::invalid_field(
                    "ramp_schedule.total_steps",
                    "is required for a custom ramp",
                )
            })?;
            (percent_per_step, step_interval_days, total_steps)
        }
    };
    if !percent_per_step.is_finite() || percent_per_step <= 0.0 || percent_per_step > 100.0 {
        return Err(ApiError::invalid_field(
            "ramp_schedule.percent_per_step",
            "must be more than 0 and at most 100",
        ));
    }
    if total_steps == 0 || total_steps > MAX_TOTAL_STEPS {
        return Err(ApiError::invalid_field(
            "ramp_schedule.total_steps",
            format!("must be between 1 and {MAX_TOTAL_STEPS}"),
        ));
    }
    if step_interval_days > MAX_STEP_INTERVAL_DAYS {
        return Err(ApiError::invalid_field(
            "ramp_schedule.step_interval_days",
            format!("must be at most {MAX_STEP_INTERVAL_DAYS}"),
        ));
    }
    if step_interval_days == 0 && total_steps > 1 {
        return Err(ApiError::invalid_field(
            "ramp_schedule.step_interval_days",
            "must be at least 1 when the ramp has several steps",
        ));
    }
    Ok(RampSpec {
        ramp_type,
        percent_per_step,
        step_interval_days,
        total_steps,
        start_date: input.start_date,
    })
}

fn check_preset_field(
    ramp_type: RampType,
    field: &str,
    given: Option<f64>,
    preset: f64,
) -> Result<(), ApiError> {
    match given {
        Some(value) if value != preset => Err(ApiError::invalid_field(
            &format!("ramp_schedule.{field}"),
            format!(
                "must be {preset} for {} (use custom for other values)",
                ramp_type.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(provider: &str, name: &str, payment: &str) -> ServiceInput {
        ServiceInput {
            provider: provider.to_owned(),
            service: name.to_owned(),
            enabled: None,
            term: 1,
            payment: payment.to_owned(),
            coverage: 80.0,
            ..ServiceInput::default()
        }
    }

    fn valid() -> PlanInput {
        PlanInput {
            name: "EC2 ladder".to_owned(),
            services: BTreeMap::from([("aws/ec2".to_owned(), service("aws", "ec2", "no-upfront"))]),
            ..PlanInput::default()
        }
    }

    fn with(change: impl FnOnce(&mut PlanInput)) -> PlanInput {
        let mut input = valid();
        change(&mut input);
        input
    }

    fn with_service(change: impl FnOnce(&mut ServiceInput)) -> PlanInput {
        with(|input| change(input.services.get_mut("aws/ec2").unwrap()))
    }

    fn with_ramp(ramp: RampInput) -> PlanInput {
        with(|input| input.ramp_schedule = Some(ramp))
    }

    fn custom(percent: Option<f64>, interval: Option<u32>, steps: Option<u32>) -> RampInput {
        RampInput {
            ramp_type: Some("custom".to_owned()),
            percent_per_step: percent,
            step_interval_days: interval,
            total_steps: steps,
            start_date: None,
        }
    }

    #[test]
    fn a_minimal_plan_takes_the_rest_defaults() {
        let spec = validate_plan(valid()).unwrap();
        assert!(spec.enabled);
        assert!(!spec.auto_purchase);
        assert_eq!(spec.notification_days_before, 7);
        assert_eq!(spec.ramp.ramp_type, RampType::Immediate);
        assert_eq!(spec.ramp.percent_per_step, 100.0);
        assert_eq!(spec.ramp.total_steps, 1);
        assert_eq!(spec.ramp.start_date, None);
        let ec2 = &spec.services["aws/ec2"];
        assert!(ec2.enabled);
        assert_eq!(ec2.provider, Provider::Aws);
    }

    #[test]
    fn every_rule_refuses_its_bad_value_naming_the_field() {
        let long_name = "x".repeat(101);
        // (case, input, field named by the error)
        let cases: Vec<(&str, PlanInput, &str)> = vec![
            ("empty name", with(|p| p.name = "  ".into()), "name"),
            ("long name", with(|p| p.name = long_name.clone()), "name"),
            (
                "control char in name",
                with(|p| p.name = "a\u{7}b".into()),
                "name",
            ),
            (
                "31 notification days",
                with(|p| p.notification_days_before = Some(31)),
                "notification_days_before",
            ),
            ("no services", with(|p| p.services.clear()), "services"),
            (
                "key without slash",
                with(|p| {
                    p.services =
                        BTreeMap::from([("ec2".into(), service("aws", "ec2", "no-upfront"))]);
                }),
                "services.ec2",
            ),
            (
                "unknown provider in key",
                with(|p| {
                    p.services = BTreeMap::from([(
                        "oracle/ec2".into(),
                        service("oracle", "ec2", "no-upfront"),
                    )]);
                }),
                "services.oracle/ec2",
            ),
            (
                "unknown aws service in key",
                with(|p| {
                    p.services = BTreeMap::from([(
                        "aws/lambda".into(),
                        service("aws", "lambda", "no-upfront"),
                    )]);
                }),
                "services.aws/lambda",
            ),
            (
                "malformed azure service in key",
                with(|p| {
                    p.services = BTreeMap::from([(
                        "azure/Virtual Machines".into(),
                        service("azure", "Virtual Machines", "monthly"),
                    )]);
                }),
                "services.azure/Virtual Machines",
            ),
            (
                "provider disagrees with key",
                with_service(|s| s.provider = "azure".into()),
                "services.aws/ec2.provider",
            ),
            (
                "service disagrees with key",
                with_service(|s| s.service = "rds".into()),
                "services.aws/ec2.service",
            ),
            (
                "term 2",
                with_service(|s| s.term = 2),
                "services.aws/ec2.term",
            ),
            (
                "term 0",
                with_service(|s| s.term = 0),
                "services.aws/ec2.term",
            ),
            (
                "azure payment on aws",
                with_service(|s| s.payment = "monthly".into()),
                "services.aws/ec2.payment",
            ),
            (
                "unknown payment",
                with_service(|s| s.payment = "later".into()),
                "services.aws/ec2.payment",
            ),
            (
                "aws payment on gcp",
                with(|p| {
                    p.services = BTreeMap::from([(
                        "gcp/compute".into(),
                        service("gcp", "compute", "all-upfront"),
                    )]);
                }),
                "services.gcp/compute.payment",
            ),
            (
                "upfront on gcp",
                with(|p| {
                    p.services = BTreeMap::from([(
                        "gcp/compute".into(),
                        service("gcp", "compute", "upfront"),
                    )]);
                }),
                "services.gcp/compute.payment",
            ),
            (
                "aws payment on azure",
                with(|p| {
                    p.services =
                        BTreeMap::from([("azure/vm".into(), service("azure", "vm", "no-upfront"))]);
                }),
                "services.azure/vm.payment",
            ),
            (
                "coverage above 100",
                with_service(|s| s.coverage = 100.5),
                "services.aws/ec2.coverage",
            ),
            (
                "negative coverage",
                with_service(|s| s.coverage = -1.0),
                "services.aws/ec2.coverage",
            ),
            (
                "coverage not a number",
                with_service(|s| s.coverage = f64::NAN),
                "services.aws/ec2.coverage",
            ),
            (
                "empty region entry",
                with_service(|s| s.include_regions = vec!["us-east-1".into(), " ".into()]),
                "services.aws/ec2.include_regions[1]",
            ),
            (
                "region with a space",
                with_service(|s| s.exclude_regions = vec!["us east".into()]),
                "services.aws/ec2.exclude_regions[0]",
            ),
            (
                "overlong type entry",
                with_service(|s| s.exclude_types = vec!["m".repeat(65)]),
                "services.aws/ec2.exclude_types[0]",
            ),
            (
                "unknown ramp type",
                with_ramp(RampInput {
                    ramp_type: Some("daily".into()),
                    ..RampInput::default()
                }),
                "ramp_schedule.type",
            ),
            (
                "preset with another percent",
                with_ramp(RampInput {
                    ramp_type: Some("weekly-25pct".into()),
                    percent_per_step: Some(50.0),
                    ..RampInput::default()
                }),
                "ramp_schedule.percent_per_step",
            ),
            (
                "preset with another interval",
                with_ramp(RampInput {
                    ramp_type: Some("monthly-10pct".into()),
                    step_interval_days: Some(7),
                    ..RampInput::default()
                }),
                "ramp_schedule.step_interval_days",
            ),
            (
                "immediate with several steps",
                with_ramp(RampInput {
                    total_steps: Some(2),
                    ..RampInput::default()
                }),
                "ramp_schedule.total_steps",
            ),
            (
                "custom without percent",
                with_ramp(custom(None, Some(7), Some(4))),
                "ramp_schedule.percent_per_step",
            ),
            (
                "custom without interval",
                with_ramp(custom(Some(25.0), None, Some(4))),
                "ramp_schedule.step_interval_days",
            ),
            (
                "custom without steps",
                with_ramp(custom(Some(25.0), Some(7), None)),
                "ramp_schedule.total_steps",
            ),
            (
                "custom with 0 percent",
                with_ramp(custom(Some(0.0), Some(7), Some(4))),
                "ramp_schedule.percent_per_step",
            ),
            (
                "custom with 101 percent",
                with_ramp(custom(Some(101.0), Some(7), Some(4))),
                "ramp_schedule.percent_per_step",
            ),
            (
                "custom with 0 steps",
                with_ramp(custom(Some(25.0), Some(7), Some(0))),
                "ramp_schedule.total_steps",
            ),
            (
                "custom with 101 steps",
                with_ramp(custom(Some(1.0), Some(7), Some(101))),
                "ramp_schedule.total_steps",
            ),
            (
                "custom with a 366-day interval",
                with_ramp(custom(Some(25.0), Some(366), Some(4))),
                "ramp_schedule.step_interval_days",
            ),
            (
                "custom with several steps and no interval",
                with_ramp(custom(Some(25.0), Some(0), Some(4))),
                "ramp_schedule.step_interval_days",
            ),
        ];
        for (case, input, field) in cases {
            let error = validate_plan(input).expect_err(case);
            assert_eq!(error.http_status(), 400, "{case}");
            assert_eq!(
                error.field.as_deref(),
                Some(field),
                "{case}: {}",
                error.message
            );
            assert!(
                error.message.starts_with(field),
                "{case}: {}",
                error.message
            );
        }
    }

    #[test]
    fn values_at_the_edges_of_their_ranges_are_accepted() {
        let cases: Vec<(&str, PlanInput)> = vec![
            ("100-char name", with(|p| p.name = "n".repeat(100))),
            (
                "0 notification days",
                with(|p| p.notification_days_before = Some(0)),
            ),
            (
                "30 notification days",
                with(|p| p.notification_days_before = Some(30)),
            ),
            ("coverage 0", with_service(|s| s.coverage = 0.0)),
            ("coverage 100", with_service(|s| s.coverage = 100.0)),
            ("term 3", with_service(|s| s.term = 3)),
            (
                "partial-upfront",
                with_service(|s| s.payment = "partial-upfront".into()),
            ),
            (
                "all-upfront",
                with_service(|s| s.payment = "all-upfront".into()),
            ),
            (
                "azure upfront and monthly",
                with(|p| {
                    p.services = BTreeMap::from([
                        ("azure/vm".into(), service("azure", "vm", "upfront")),
                        ("azure/sql".into(), service("azure", "sql", "monthly")),
                    ]);
                }),
            ),
            (
                "gcp monthly",
                with(|p| {
                    p.services = BTreeMap::from([(
                        "gcp/compute".into(),
                        service("gcp", "compute", "monthly"),
                    )]);
                }),
            ),
            (
                "every aws service",
                with(|p| {
                    p.services = cudly_vocabulary::AWS_SERVICE_NAMES
                        .iter()
                        .map(|name| (format!("aws/{name}"), service("aws", name, "all-upfront")))
                        .collect();
                }),
            ),
            (
                "preset restating its own values",
                with_ramp(RampInput {
                    ramp_type: Some("weekly-25pct".into()),
                    percent_per_step: Some(25.0),
                    step_interval_days: Some(7),
                    total_steps: Some(4),
                    start_date: None,
                }),
            ),
            (
                "custom 100% in one step without interval",
                with_ramp(custom(Some(100.0), Some(0), Some(1))),
            ),
            (
                "custom 100 steps of 1%",
                with_ramp(custom(Some(1.0), Some(365), Some(100))),
            ),
        ];
        for (case, input) in cases {
            if let Err(error) = validate_plan(input) {
                panic!("{case}: {}", error.message);
            }
        }
    }

    #[test]
    fn presets_fill_the_fields_not_given() {
        for (name, percent, interval, steps) in [
            ("immediate", 100.0, 0, 1),
            ("weekly-25pct", 25.0, 7, 4),
            ("monthly-10pct", 10.0, 30, 10),
        ] {
            let spec = validate_ramp(RampInput {
                ramp_type: Some(name.to_owned()),
                ..RampInput::default()
            })
            .unwrap();
            assert_eq!(
                (
                    spec.percent_per_step,
                    spec.step_interval_days,
                    spec.total_steps
                ),
                (percent, interval, steps),
                "{name}"
            );
        }
        let spec = validate_ramp(custom(Some(12.5), Some(14), Some(8))).unwrap();
        assert_eq!(spec.ramp_type, RampType::Custom);
        assert_eq!(
            (
                spec.percent_per_step,
                spec.step_interval_days,
                spec.total_steps
            ),
            (12.5, 14, 8)
        );
    }

    #[test]
    fn filter_lists_are_trimmed_and_deduplicated() {
        let spec = validate_plan(with_service(|s| {
            s.include_regions = vec![" us-east-1".into(), "eu-west-1".into(), "us-east-1 ".into()];
        }))
        .unwrap();
        assert_eq!(
            spec.services["aws/ec2"].include_regions,
            vec!["us-east-1", "eu-west-1"]
        );
    }

    #[test]
    fn the_name_is_trimmed() {
        let spec = validate_plan(with(|p| p.name = "  Prod ladder ".into())).unwrap();
        assert_eq!(spec.name, "Prod ladder");
    }
}
