//! Every (caller, RPC) pair a service's caller table does not allow is refused at its
//! edge, before any handler runs: PERMISSION_DENIED for a caller the service knows,
//! UNAUTHENTICATED for one it does not accept at all. Each table names exactly the RPCs
//! its service serves, so a new RPC cannot slip through unlisted. A service holds only
//! its own token and its callers' digests, and neither a digest nor another's token
//! gets it past a receiver.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use cudly_common::caller_policy::{CallerTable, allowed_callers};
use cudly_common::config::{Env, Layout};
use cudly_common::grpc::{Caller, TokenDigest, client_channel};
use cudly_testkit::TestStack;
use prost::Message;
use prost_types::FileDescriptorSet;
use secrecy::SecretString;
use tonic::codegen::http::uri::PathAndQuery;

/// One gRPC service of the stack as the test sees it.
struct Edge {
    service: &'static str,
    addr: SocketAddr,
    table: CallerTable,
    accepted: &'static [Caller],
}

fn edges(stack: &TestStack) -> [Edge; 4] {
    let stack = stack.stack();
    use cudly_proto::{accounts, executor, planner, sweeper};
    [
        Edge {
            service: accounts::v1::accounts_service_server::SERVICE_NAME,
            addr: stack.accounts_addr(),
            table: cudly_accounts::CALLERS,
            accepted: cudly_accounts::config::ACCEPTED_CALLERS,
        },
        Edge {
            service: planner::v1::planner_service_server::SERVICE_NAME,
            addr: stack.planner_addr(),
            table: cudly_planner::CALLERS,
            accepted: cudly_planner::config::ACCEPTED_CALLERS,
        },
        Edge {
            service: executor::v1::executor_service_server::SERVICE_NAME,
            addr: stack.executor_addr(),
            table: cudly_executor::CALLERS,
            accepted: cudly_executor::config::ACCEPTED_CALLERS,
        },
        Edge {
            service: sweeper::v1::sweeper_service_server::SERVICE_NAME,
            addr: stack.sweeper_addr(),
            table: cudly_sweeper::CALLERS,
            accepted: cudly_sweeper::config::ACCEPTED_CALLERS,
        },
    ]
}

/// Returns the RPC names the descriptor set gives `service` (`package.Service`).
fn rpcs_of(service: &str) -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(cudly_proto::FILE_DESCRIPTOR_SET).unwrap();
    let (package, name) = service.rsplit_once('.').unwrap();
    set.file
        .iter()
        .filter(|file| file.package() == package)
        .flat_map(|file| file.service.iter())
        .find(|candidate| candidate.name() == name)
        .unwrap()
        .method
        .iter()
        .map(|method| method.name().to_owned())
        .collect()
}

/// Calls `rpc` of `edge` as `caller` with an empty request; returns the gRPC code.
async fn call_as(stack: &TestStack, edge: &Edge, rpc: &str, caller: Caller) -> tonic::Code {
    call_presenting(edge, rpc, &stack.secrets().internal_token(caller)).await
}

/// Calls `rpc` of `edge` presenting `token`; returns the gRPC code.
async fn call_presenting(edge: &Edge, rpc: &str, token: &SecretString) -> tonic::Code {
    let channel = client_channel(
        &format!("http://{}", edge.addr),
        token,
        Duration::from_secs(10),
    )
    .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = PathAndQuery::try_from(format!("/{}/{rpc}", edge.service)).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn each_caller_table_names_exactly_the_rpcs_of_its_service() {
    let stack = TestStack::start().await.expect("start the stack");
    for edge in edges(&stack) {
        let listed: BTreeSet<String> = edge
            .table
            .iter()
            .map(|(rpc, _)| (*rpc).to_owned())
            .collect();
        assert_eq!(listed, rpcs_of(edge.service), "{}", edge.service);
        assert_eq!(
            listed.len(),
            edge.table.len(),
            "{}: an rpc listed twice",
            edge.service
        );
    }
}

#[tokio::test]
async fn every_caller_an_rpc_does_not_allow_is_refused_at_the_edge() {
    let stack = TestStack::start().await.expect("start the stack");
    let mut refused = 0;
    for edge in edges(&stack) {
        for (rpc, _) in edge.table {
            let allowed = allowed_callers(edge.table, rpc).unwrap();
            for caller in Caller::ALL
                .into_iter()
                .filter(|caller| !allowed.contains(caller))
            {
                let expected = if edge.accepted.contains(&caller) {
                    tonic::Code::PermissionDenied
                } else {
                    tonic::Code::Unauthenticated
                };
                let code = call_as(&stack, &edge, rpc, caller).await;
                assert_eq!(code, expected, "{} {rpc} as {caller:?}", edge.service);
                refused += 1;
            }
        }
    }
    // 44 RPCs, 4 callers: every pair a table leaves out.
    assert!(refused > 100, "{refused} pairs checked");
}

#[tokio::test]
async fn a_digest_a_receiver_holds_does_not_pass_for_its_token() {
    // A receiver keeps only the SHA-256 of each caller's token: presenting that digest
    // (as the receiver's configuration holds it) in place of the token is refused, on
    // every RPC, for every caller the RPC allows.
    let stack = TestStack::start().await.expect("start the stack");
    let mut refused = 0;
    for edge in edges(&stack) {
        for (rpc, allowed) in edge.table {
            for caller in *allowed {
                let token = stack.secrets().internal_token(*caller);
                let digest = SecretString::from(TokenDigest::of_secret(&token).to_hex());
                let code = call_presenting(&edge, rpc, &digest).await;
                assert_eq!(
                    code,
                    tonic::Code::Unauthenticated,
                    "{} {rpc}: the digest of {caller:?}'s token",
                    edge.service
                );
                refused += 1;
            }
        }
    }
    assert!(refused >= 44, "{refused} digests presented");
}

#[test]
fn no_service_starts_holding_another_services_token() {
    // What a deployment gives a service: its own token and its callers' digests. With
    // any other caller's token as well, its configuration is refused, naming the token.
    let token = |caller: Caller| format!("{}-token", caller.name());
    let digests: Vec<(String, String)> = Caller::ALL
        .into_iter()
        .map(|caller| {
            let digest = TokenDigest::of(token(caller).as_bytes()).to_hex();
            (caller.digest_var(), digest)
        })
        .collect();
    // Each service's own configuration reader; the variable it refuses, if any.
    type Reader = fn(&Env) -> Option<String>;
    let read: [(Option<Caller>, Reader); 5] = [
        (None, |env| {
            cudly_accounts::config::Config::read(env, env, Layout::Standalone)
                .err()
                .map(|error| error.variable)
        }),
        (Some(Caller::Planner), |env| {
            cudly_planner::config::Config::read(env, env, Layout::Standalone)
                .err()
                .map(|error| error.variable)
        }),
        (Some(Caller::Executor), |env| {
            cudly_executor::config::Config::read(env, env, Layout::Standalone)
                .err()
                .map(|error| error.variable)
        }),
        (Some(Caller::Sweeper), |env| {
            cudly_sweeper::config::Config::read(env, env, Layout::Standalone)
                .err()
                .map(|error| error.variable)
        }),
        (Some(Caller::Gateway), |env| {
            cudly_gateway::Config::read(env, env, Layout::Standalone)
                .err()
                .map(|error| error.variable)
        }),
    ];
    let credential_key = "ab".repeat(32);
    for (own, read) in read {
        let mut pairs = digests.clone();
        pairs.push(("CUDLY_CREDENTIAL_KEY".into(), credential_key.clone()));
        if let Some(own) = own {
            pairs.push((own.token_var(), token(own)));
        }
        assert_eq!(read(&Env::from_pairs(pairs.clone())), None, "{own:?} alone");
        for foreign in Caller::ALL
            .into_iter()
            .filter(|caller| Some(*caller) != own)
        {
            let mut with_foreign = pairs.clone();
            with_foreign.push((foreign.token_var(), token(foreign)));
            assert_eq!(
                read(&Env::from_pairs(with_foreign)),
                Some(foreign.token_var()),
                "{own:?} given {foreign:?}'s token"
            );
        }
    }
}
