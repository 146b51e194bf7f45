//! The reflection descriptor set decodes and describes every CUDly service.

use prost::Message;
use prost_types::FileDescriptorSet;

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(cudly_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

fn methods_of(set: &FileDescriptorSet, package: &str, service: &str) -> Vec<String> {
    set.file
        .iter()
        .filter(|file| file.package() == package)
        .flat_map(|file| file.service.iter())
        .find(|candidate| candidate.name() == service)
        .unwrap_or_else(|| panic!("service {package}.{service} is missing"))
        .method
        .iter()
        .map(|method| method.name().to_owned())
        .collect()
}

#[test]
fn descriptor_set_holds_every_package_and_its_imports() {
    let set = descriptor_set();
    let packages: Vec<&str> = set.file.iter().map(|file| file.package()).collect();
    for package in [
        "cudly.common.v1",
        "cudly.audit.v1",
        "cudly.accounts.v1",
        "cudly.planner.v1",
        "cudly.executor.v1",
        "cudly.sweeper.v1",
        "google.protobuf",
    ] {
        assert!(
            packages.contains(&package),
            "{package} missing from {packages:?}"
        );
    }
}

#[test]
fn descriptor_set_describes_every_service_and_rpc() {
    let set = descriptor_set();
    let expected: [(&str, &str, &[&str]); 4] = [
        (
            "cudly.accounts.v1",
            "AccountsService",
            &[
                "CreateAccount",
                "GetAccount",
                "ListAccounts",
                "UpdateAccount",
                "DeleteAccount",
                "SetCredentials",
                "TestCredentials",
                "DiscoverOrganization",
                "GetAccountsByIds",
                "ListEnabledAccounts",
                "ResolveCredentials",
                "CollectRecommendations",
                "ListAuditEvents",
            ],
        ),
        (
            "cudly.planner.v1",
            "PlannerService",
            &[
                "CreatePlan",
                "GetPlan",
                "ListPlans",
                "UpdatePlan",
                "DeletePlan",
                "SetPlanAccounts",
                "GetPlanAccounts",
                "SetPlanRecommendations",
                "GetPlanRecommendations",
                "StartExecution",
                "FireDuePlans",
                "CompletePlanStep",
                "RefreshRecommendations",
                "ListRecommendations",
                "ListAuditEvents",
            ],
        ),
        (
            "cudly.executor.v1",
            "ExecutorService",
            &[
                "CreateExecution",
                "GetExecution",
                "ListExecutions",
                "ApproveExecution",
                "CancelExecution",
                "PreviewApproval",
                "RetryExecution",
                "ListPurchaseHistory",
                "ResolvePurchaseAttempt",
                "HasLiveExecution",
                "ExpirePending",
                "ListStaleExecutions",
                "Redrive",
                "SafeFail",
                "GetGuardrails",
                "PutGuardrails",
                "ListAuditEvents",
                "CreateNotificationChannel",
                "ListNotificationChannels",
                "DeleteNotificationChannel",
                "ListNotifications",
                "RaiseNotification",
            ],
        ),
        (
            "cudly.sweeper.v1",
            "SweeperService",
            &["RunTask", "ListRuns"],
        ),
    ];
    for (package, service, rpcs) in expected {
        let methods = methods_of(&set, package, service);
        assert_eq!(methods, rpcs, "{package}.{service}");
    }
}

#[test]
fn generated_service_names_match_the_descriptors() {
    let set = descriptor_set();
    let full_names: Vec<String> = set
        .file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| format!("{}.{}", file.package(), service.name()))
        })
        .collect();
    for name in [
        cudly_proto::accounts::v1::accounts_service_server::SERVICE_NAME,
        cudly_proto::planner::v1::planner_service_server::SERVICE_NAME,
        cudly_proto::executor::v1::executor_service_server::SERVICE_NAME,
        cudly_proto::sweeper::v1::sweeper_service_server::SERVICE_NAME,
    ] {
        assert!(full_names.iter().any(|full| full == name), "{name}");
    }
}
