//! The operations CUDly's purchase of a commitment calls on each AWS service that sells
//! them: the guard's first look-up and the purchase (docs/design/DOMAIN.md "Per AWS service"), so the
//! tests that fault or count these calls in the ledger name them from one table, and the
//! sandbox counts the purchases it has open by the same table. A
//! service is named by its wire name (`ec2`, `savingsplans`, `rds`, `elasticache`,
//! `memorydb`, `opensearch`, `redshift`: what `cudly_vocabulary::AwsService::name`
//! returns), because the sandbox does not depend on CUDly's vocabulary.

use crate::service::Service;

/// The sandbox service and the two operations of one AWS service that sells commitments.
struct Operations {
    service: Service,
    purchase: &'static str,
    guard: &'static str,
}

/// Returns the operations of the service named `name`; panics for any other name, since
/// a test takes the name from the vocabulary and another one is a mistake in the test.
fn operations(name: &str) -> Operations {
    match lookup(name) {
        Some(operations) => operations,
        None => panic!("{name:?} is not an AWS service that sells commitments"),
    }
}

/// Returns the operations of the service named `name`, or `None` for a service that
/// sells no commitments (STS, Organizations).
fn lookup(name: &str) -> Option<Operations> {
    let (service, purchase, guard) = match name {
        "ec2" => (
            Service::Ec2,
            "PurchaseReservedInstancesOffering",
            "DescribeReservedInstances",
        ),
        "savingsplans" => (
            Service::Savingsplans,
            "CreateSavingsPlan",
            "DescribeSavingsPlans",
        ),
        "rds" => (
            Service::Rds,
            "PurchaseReservedDBInstancesOffering",
            "DescribeReservedDBInstances",
        ),
        "elasticache" => (
            Service::Elasticache,
            "PurchaseReservedCacheNodesOffering",
            "DescribeReservedCacheNodes",
        ),
        "memorydb" => (
            Service::Memorydb,
            "PurchaseReservedNodesOffering",
            "DescribeReservedNodes",
        ),
        "opensearch" => (
            Service::Opensearch,
            "PurchaseReservedInstanceOffering",
            "DescribeReservedInstances",
        ),
        "redshift" => (
            Service::Redshift,
            "PurchaseReservedNodeOffering",
            "DescribeReservedNodes",
        ),
        _ => return None,
    };
    Some(Operations {
        service,
        purchase,
        guard,
    })
}

/// Returns the sandbox service of the AWS service named `name`: ledger filters and
/// faults name it.
///
/// # Panics
///
/// When `name` is not the wire name of an AWS service that sells commitments.
pub fn sandbox_service(name: &str) -> Service {
    operations(name).service
}

/// Returns the operation that buys a commitment of the AWS service named `name`.
///
/// # Panics
///
/// When `name` is not the wire name of an AWS service that sells commitments.
pub fn purchase_operation(name: &str) -> &'static str {
    operations(name).purchase
}

/// Returns whether `operation` of `service` buys a commitment: the sandbox counts those
/// calls while they are open (docs/design/SANDBOX.md "Control API"), from this
/// table so the calls counted are the ones the tests fault and look up.
pub fn is_purchase(service: Service, operation: &str) -> bool {
    lookup(service.as_str()).is_some_and(|operations| operations.purchase == operation)
}

/// Returns whether `service` sells commitments (STS, Organizations and Cost Explorer do
/// not): only those can be named by a seeded Cost Explorer recommendation.
pub(crate) fn sells_commitments(service: Service) -> bool {
    lookup(service.as_str()).is_some()
}

/// Returns the look-up the guard of the AWS service named `name` starts with: nothing is
/// bought before it answered that the item's token holds no commitment.
///
/// # Panics
///
/// When `name` is not the wire name of an AWS service that sells commitments.
pub fn guard_operation(name: &str) -> &'static str {
    operations(name).guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_that_sells_commitments_has_its_operations() {
        for name in cudly_vocabulary::AWS_SERVICE_NAMES {
            assert_eq!(sandbox_service(name).as_str(), name);
            assert!(!purchase_operation(name).is_empty());
            assert!(guard_operation(name).starts_with("Describe"));
        }
    }

    #[test]
    fn only_the_purchase_of_a_service_that_sells_commitments_is_a_purchase() {
        for name in cudly_vocabulary::AWS_SERVICE_NAMES {
            let service = sandbox_service(name);
            assert!(is_purchase(service, purchase_operation(name)));
            assert!(!is_purchase(service, guard_operation(name)));
        }
        assert!(!is_purchase(
            Service::Opensearch,
            "PurchaseReservedDBInstancesOffering"
        ));
        assert!(!is_purchase(Service::Sts, "AssumeRole"));
        assert!(!is_purchase(Service::Organizations, "ListAccounts"));
    }

    #[test]
    fn only_the_services_of_the_table_sell_commitments() {
        for name in cudly_vocabulary::AWS_SERVICE_NAMES {
            assert!(sells_commitments(sandbox_service(name)));
        }
        for service in [Service::Sts, Service::Organizations, Service::Costexplorer] {
            assert!(!sells_commitments(service));
        }
    }

    #[test]
    #[should_panic(expected = "not an AWS service that sells commitments")]
    fn a_service_that_sells_none_has_no_operations() {
        purchase_operation("sts");
    }
}
