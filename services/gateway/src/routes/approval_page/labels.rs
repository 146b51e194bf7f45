//! How the approval page words the vocabulary: services, payment options, statuses and
//! actors.

use cudly_vocabulary::AwsService;

use super::ACTOR_TOKEN;

pub(super) fn service_label(service: AwsService) -> &'static str {
    match service {
        AwsService::Ec2 => "EC2 Reserved Instance",
        AwsService::SavingsPlans => "Savings Plan",
        AwsService::Rds => "RDS reserved DB instance",
        AwsService::ElastiCache => "ElastiCache reserved node",
        AwsService::MemoryDb => "MemoryDB reserved node",
        AwsService::OpenSearch => "OpenSearch reserved instance",
        AwsService::Redshift => "Redshift reserved node",
    }
}

pub(super) fn payment_label(payment: &str) -> &str {
    match payment {
        "all-upfront" => "All upfront",
        "partial-upfront" => "Partial upfront",
        "no-upfront" => "No upfront",
        other => other,
    }
}

pub(super) fn page_title(status: &str) -> &'static str {
    match status {
        "pending" => "Approve this purchase?",
        "approved" | "running" => "Purchase approved",
        "completed" => "Purchase complete",
        "partially_completed" => "Purchase partly complete",
        "failed" => "Purchase failed",
        "canceled" => "Purchase canceled",
        "expired" => "Approval expired",
        _ => "Purchase",
    }
}

pub(super) fn status_label(status: &str) -> &'static str {
    match status {
        "pending" => "Waiting for approval",
        "approved" => "Approved, buying soon",
        "running" => "Approved, buying now",
        "completed" => "Bought",
        "partially_completed" => "Partly bought",
        "failed" => "Failed",
        "canceled" => "Canceled",
        "expired" => "Expired",
        _ => "Unknown status",
    }
}

pub(super) fn status_tone(status: &str) -> &'static str {
    match status {
        "pending" => "pending",
        "approved" | "running" | "completed" => "good",
        "partially_completed" | "failed" => "bad",
        _ => "neutral",
    }
}

pub(super) fn item_status_label(status: &str) -> &'static str {
    match status {
        "pending" => "Not bought yet",
        "in_flight" => "Buying",
        "bought" => "Bought",
        "failed" => "Failed",
        "skipped" => "Skipped",
        _ => "Unknown",
    }
}

pub(super) fn item_status_tone(status: &str) -> &'static str {
    match status {
        "bought" | "in_flight" => "good",
        "failed" => "bad",
        _ => "neutral",
    }
}

/// Returns how a person reads an actor: `key:ops` is the key "ops".
pub(super) fn actor_label(actor: &str) -> String {
    match actor {
        ACTOR_TOKEN => "the approval link".to_owned(),
        "planner" => "automatic purchase".to_owned(),
        _ => match actor.strip_prefix("key:") {
            Some(name) => format!("{name} (API key)"),
            None => actor.to_owned(),
        },
    }
}
