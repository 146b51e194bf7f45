//! Cost Explorer recommendations through the real SDK client, over HTTP, against the AWS
//! sandbox: an organization root collecting for every member, a member for itself, pages,
//! the call budget and a throttled call.

use std::time::Duration;

use cudly_aws::costexplorer::{
    AccountScope, CallBudget, CollectedRecommendation, CostExplorer, RecommendationQuery,
};
use cudly_aws::sdk::{AwsSettings, SessionCredentials};
use cudly_aws::sts::{AssumeRole, Sts};
use cudly_aws_sandbox::{
    AccountSpec, ORGANIZATION_ACCESS_ROLE, Sandbox, SandboxConfig, SandboxHandle,
};
use cudly_vocabulary::{AwsService, RecommendationDetails};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROOT: &str = "111111111111";
const MEMBER_A: &str = "222222222222";
const MEMBER_B: &str = "333333333333";
const KEY: &str = "AKIACOSTEXPLORER0001";
const SECRET: &str = "sandbox-secret";
const PAYMENT: &str = "all-upfront";
// The fields of seeds beyond account, service, region and resource type.
const PRICED_LINUX: &str =
    r#","platform":"Linux/UNIX","upfront_cost":1000.5,"monthly_savings":40.25"#;
const WINDOWS: &str = r#","platform":"Windows""#;
const POSTGRESQL: &str = r#","engine":"postgresql""#;
const MYSQL: &str = r#","engine":"mysql""#;
const REDIS: &str = r#","engine":"redis""#;
const COMPUTE_PLAN: &str = r#","plan_type":"Compute","hourly_commitment":"1.25""#;
const EC2_PLAN: &str = r#","plan_type":"EC2Instance","hourly_commitment":"0.5""#;

/// A sandbox holding an organization (root and two members) and the root's session.
struct Organization {
    handle: SandboxHandle,
    settings: AwsSettings,
    root: SessionCredentials,
}

impl Organization {
    async fn start() -> Self {
        let root_account = AccountSpec::new(ROOT)
            .with_access_key(KEY, SECRET)
            .with_member(MEMBER_A, "member a")
            .with_member(MEMBER_B, "member b");
        let handle = Sandbox::start(SandboxConfig::default().with_account(root_account))
            .await
            .expect("sandbox starts");
        let settings = AwsSettings::default().with_endpoint(handle.endpoint());
        let long_lived = SessionCredentials {
            access_key_id: KEY.to_owned(),
            secret_access_key: SecretString::from(SECRET),
            session_token: None,
            expiration: None,
        };
        let root = Sts::with_credentials(&settings, &long_lived)
            .get_session_token(Duration::from_secs(900))
            .await
            .expect("the root gets a session");
        Self {
            handle,
            settings,
            root,
        }
    }

    /// Returns a session in `member`, assumed from the root as the accounts service does.
    async fn member(&self, member: &str) -> SessionCredentials {
        let role_arn = format!("arn:aws:iam::{member}:role/{ORGANIZATION_ACCESS_ROLE}");
        Sts::with_credentials(&self.settings, &self.root)
            .assume_role(AssumeRole {
                scoping: None,
                role_arn: &role_arn,
                external_id: None,
                session_name: "cudly-recommendations",
                duration: Duration::from_secs(900),
            })
            .await
            .expect("the root assumes the member's role")
    }

    fn cost_explorer(&self, credentials: &SessionCredentials) -> CostExplorer {
        CostExplorer::with_credentials(&self.settings, credentials)
    }

    /// Sends one control-API request with a JSON body and returns the HTTP status (a raw
    /// HTTP/1.1 exchange: the crate needs no HTTP client of its own for this).
    async fn control(&self, method: &str, path: &str, body: &str) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(self.handle.addr())
            .await
            .unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or_default()
    }

    /// Seeds one recommendation per [`Seed`].
    async fn seed(&self, seeds: &[Seed<'_>]) {
        let recommendations: Vec<String> = seeds.iter().map(seeded).collect();
        let body = format!("[{}]", recommendations.join(","));
        let status = self
            .control("POST", "/_sandbox/recommendations", &body)
            .await;
        assert!((200..300).contains(&status), "seeding answered {status}");
    }

    /// Returns the Cost Explorer calls the sandbox received (throttled ones included).
    async fn calls(&self) -> usize {
        let ledger = self.handle.ledger().await;
        ledger
            .calls
            .iter()
            .filter(|call| call.service.as_str() == "costexplorer")
            .count()
    }
}

/// A seeded recommendation: account, service, region, resource type, and more fields
/// (`,"engine":"postgresql"`).
type Seed<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

/// Returns the JSON of a seed to buy two, for one year, all upfront.
fn seeded(&(account, service, region, resource_type, extra): &Seed<'_>) -> String {
    format!(
        r#"{{"account_id":"{account}","service":"{service}","region":"{region}","resource_type":"{resource_type}","term":1,"payment":"{PAYMENT}","recommended_count":2{extra}}}"#
    )
}

fn queries(services: &[AwsService]) -> Vec<RecommendationQuery> {
    services
        .iter()
        .map(|service| RecommendationQuery {
            service: *service,
            term: 1,
            payment: PAYMENT.to_owned(),
        })
        .collect()
}

/// Returns the (account, service, resource type) of every recommendation, sorted.
fn keys(collected: &[CollectedRecommendation]) -> Vec<(String, AwsService, String)> {
    let mut keys: Vec<_> = collected
        .iter()
        .map(|found| {
            (
                found.account_id.clone(),
                found.service,
                found.resource_type.clone(),
            )
        })
        .collect();
    keys.sort();
    keys
}

fn one<'a>(
    collected: &'a [CollectedRecommendation],
    account: &str,
    resource_type: &str,
) -> &'a CollectedRecommendation {
    collected
        .iter()
        .find(|found| found.account_id == account && found.resource_type == resource_type)
        .unwrap_or_else(|| panic!("no {resource_type} for {account}"))
}

#[tokio::test]
async fn a_root_with_linked_scope_collects_every_member_normalised() {
    let org = Organization::start().await;
    org.seed(&[
        (MEMBER_A, "ec2", "us-east-1", "m5.large", PRICED_LINUX),
        (MEMBER_B, "ec2", "eu-west-1", "c5.xlarge", WINDOWS),
        (MEMBER_A, "rds", "us-east-1", "db.r5.large", POSTGRESQL),
        (
            MEMBER_B,
            "elasticache",
            "us-east-1",
            "cache.m5.large",
            REDIS,
        ),
        (MEMBER_A, "memorydb", "us-east-1", "db.r6g.large", ""),
        (MEMBER_B, "opensearch", "us-east-1", "r6g.large.search", ""),
        (MEMBER_A, "redshift", "us-east-1", "dc2.large", ""),
        (
            MEMBER_B,
            "savingsplans",
            "us-east-1",
            "Compute",
            COMPUTE_PLAN,
        ),
        (
            MEMBER_A,
            "savingsplans",
            "eu-west-1",
            "EC2Instance",
            EC2_PLAN,
        ),
    ])
    .await;
    let budget = CallBudget::new(100);
    let collected = org
        .cost_explorer(&org.root)
        .recommendations(
            AccountScope::Linked,
            ROOT,
            &queries(&AwsService::ALL),
            &budget,
        )
        .await
        .unwrap();

    let key = |account: &str, service, resource_type: &str| {
        (account.to_owned(), service, resource_type.to_owned())
    };
    let mut expected = vec![
        key(MEMBER_A, AwsService::Ec2, "m5.large"),
        key(MEMBER_B, AwsService::Ec2, "c5.xlarge"),
        key(MEMBER_A, AwsService::Rds, "db.r5.large"),
        key(MEMBER_B, AwsService::ElastiCache, "cache.m5.large"),
        key(MEMBER_A, AwsService::MemoryDb, "db.r6g.large"),
        key(MEMBER_B, AwsService::OpenSearch, "r6g.large.search"),
        key(MEMBER_A, AwsService::Redshift, "dc2.large"),
        key(MEMBER_B, AwsService::SavingsPlans, "Compute"),
        key(MEMBER_A, AwsService::SavingsPlans, "EC2Instance"),
    ];
    expected.sort();
    assert_eq!(keys(&collected), expected);
    assert_eq!(
        *one(&collected, MEMBER_A, "m5.large"),
        CollectedRecommendation {
            account_id: MEMBER_A.to_owned(),
            service: AwsService::Ec2,
            region: "us-east-1".to_owned(),
            resource_type: "m5.large".to_owned(),
            engine: None,
            platform: Some("Linux/UNIX".to_owned()),
            term: 1,
            payment: PAYMENT.to_owned(),
            recommended_count: 2.0,
            upfront_cost: 1000.5,
            monthly_savings: 40.25,
            details: RecommendationDetails {
                tenancy: Some("default".to_owned()),
                offering_class: Some("standard".to_owned()),
                ..RecommendationDetails::default()
            },
        }
    );
    let rds = one(&collected, MEMBER_A, "db.r5.large");
    assert_eq!(
        (
            rds.engine.as_deref(),
            rds.details.multi_az,
            rds.recommended_count
        ),
        (Some("postgresql"), Some(false), 2.0)
    );
    let cache = one(&collected, MEMBER_B, "cache.m5.large");
    assert_eq!(cache.engine.as_deref(), Some("redis"));
    let compute = one(&collected, MEMBER_B, "Compute");
    assert_eq!(
        (compute.region.as_str(), compute.recommended_count),
        ("us-east-1", 1.0)
    );
    assert_eq!(compute.details.plan_type.as_deref(), Some("Compute"));
    assert_eq!(compute.details.hourly_commitment.as_deref(), Some("1.25"));
    assert_eq!(one(&collected, MEMBER_A, "EC2Instance").region, "eu-west-1");
    // Six reservation services and two Savings Plans types, one page each.
    assert_eq!((budget.used(), org.calls().await), (8, 8));
}

#[tokio::test]
async fn a_member_with_payer_scope_gets_only_its_own() {
    let org = Organization::start().await;
    org.seed(&[
        (MEMBER_A, "rds", "us-east-1", "db.r5.large", MYSQL),
        (MEMBER_A, "rds", "us-west-2", "db.m5.large", POSTGRESQL),
        (MEMBER_B, "rds", "us-east-1", "db.r5.xlarge", MYSQL),
    ])
    .await;
    let member = org.member(MEMBER_A).await;
    let collected = org
        .cost_explorer(&member)
        .recommendations(
            AccountScope::Payer,
            MEMBER_A,
            &queries(&[AwsService::Rds]),
            &CallBudget::new(10),
        )
        .await
        .unwrap();
    let mut resource_types: Vec<&str> = collected
        .iter()
        .map(|found| found.resource_type.as_str())
        .collect();
    resource_types.sort_unstable();
    assert_eq!(resource_types, ["db.m5.large", "db.r5.large"]);
    assert!(collected.iter().all(|found| found.account_id == MEMBER_A));
    assert_eq!(
        one(&collected, MEMBER_A, "db.r5.large").engine.as_deref(),
        Some("mysql")
    );
}

/// Collects EC2 and Redshift recommendations from the root for every member.
async fn collect_two_services(
    org: &Organization,
    budget: &CallBudget,
) -> Result<Vec<cudly_aws::costexplorer::CollectedRecommendation>, cudly_aws::AwsFailure> {
    org.cost_explorer(&org.root)
        .recommendations(
            AccountScope::Linked,
            ROOT,
            &queries(&[AwsService::Ec2, AwsService::Redshift]),
            budget,
        )
        .await
}

/// Seeds six EC2 and six Redshift recommendations: two pages each at the sandbox's page
/// size of five.
async fn two_pages_each(org: &Organization) {
    let sizes = [
        "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge",
    ];
    let instances: Vec<String> = sizes.iter().map(|size| format!("m5.{size}")).collect();
    let nodes: Vec<String> = sizes.iter().map(|size| format!("ra3.{size}")).collect();
    let mut seeds: Vec<Seed<'_>> = instances
        .iter()
        .map(|kind| (MEMBER_A, "ec2", "us-east-1", kind.as_str(), ""))
        .collect();
    seeds.extend(
        nodes
            .iter()
            .map(|kind| (MEMBER_B, "redshift", "us-east-1", kind.as_str(), "")),
    );
    org.seed(&seeds).await;
}

#[tokio::test]
async fn every_page_is_followed_and_is_one_billed_call() {
    let org = Organization::start().await;
    two_pages_each(&org).await;
    let budget = CallBudget::new(4);
    let collected = collect_two_services(&org, &budget).await.unwrap();
    assert_eq!(collected.len(), 12);
    assert_eq!(
        (budget.used(), budget.remaining(), org.calls().await),
        (4, 0, 4)
    );
}

#[tokio::test]
async fn the_budget_refuses_a_call_beyond_its_limit_before_sending_it() {
    let org = Organization::start().await;
    two_pages_each(&org).await;
    let budget = CallBudget::new(3);
    let refused = collect_two_services(&org, &budget).await.unwrap_err();
    assert_eq!(
        refused.detail,
        "Cost Explorer call budget of 3 calls exhausted"
    );
    assert_eq!((budget.used(), org.calls().await), (3, 3));
}

#[tokio::test]
async fn a_throttled_call_is_retried_and_succeeds() {
    let org = Organization::start().await;
    org.seed(&[(MEMBER_A, "memorydb", "us-east-1", "db.r6g.large", "")])
        .await;
    let fault = r#"{"service":"costexplorer","error":"throttle","count":1}"#;
    assert_eq!(org.control("POST", "/_sandbox/faults", fault).await, 201);
    let budget = CallBudget::new(1);
    let collected = org
        .cost_explorer(&org.root)
        .recommendations(
            AccountScope::Linked,
            ROOT,
            &queries(&[AwsService::MemoryDb]),
            &budget,
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&collected),
        [(
            MEMBER_A.to_owned(),
            AwsService::MemoryDb,
            "db.r6g.large".to_owned()
        )]
    );
    // The SDK's retry re-sent the throttled call: two calls, one page of the budget.
    assert_eq!((budget.used(), org.calls().await), (1, 2));
}
