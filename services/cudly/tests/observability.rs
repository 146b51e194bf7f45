//! What an operator watches (issue "Deploy and observe"): one trace per REST request
//! across gateway → planner → executor → accounts with a span per AWS call, and the
//! Prometheus figures after a plan execution.
//!
//! Every service of the stack runs in this process with the SDK's in-memory span
//! exporter; the services still talk to each other over loopback gRPC, so the trace
//! context crosses the same `traceparent` headers as in production.

#[allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::add_keys_account;
use cudly_telemetry::{InMemorySpanExporter, SpanData};
use cudly_testkit::{TestStack, eventually};
use opentelemetry::trace::{SpanId, TraceId};
use reqwest::Method;
use serde_json::{Value, json};

const TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "10f067aa0ba902b7";

/// An account the sandbox knows, registered through the gateway; returns its id.
async fn add_account(stack: &TestStack, external_id: &str) -> String {
    add_keys_account(
        stack,
        &format!("observed {external_id}"),
        external_id,
        &format!("AKIAOBS{external_id}"),
        &format!("observeSecret{external_id}abcdefghijkl"),
    )
    .await
}

/// An auto-purchase plan over `account_id`: executing it runs at once.
async fn add_plan(stack: &TestStack, account_id: &str) -> String {
    let limit = json!({"max_window_commitment": 1e12});
    let (status, _) = stack
        .admin_json(Method::PUT, "/api/guardrails", Some(limit))
        .await
        .unwrap();
    assert_eq!(status, 200, "auto_purchase needs a window limit");
    let (status, plan) = stack
        .admin_json(
            Method::POST,
            "/api/plans",
            Some(json!({"name": "observed", "auto_purchase": true,
                "services": {
                    "aws/rds": {"provider": "aws", "service": "rds", "term": 1, "payment": "all-upfront", "coverage": 100},
                    "aws/ec2": {"provider": "aws", "service": "ec2", "term": 1, "payment": "no-upfront", "coverage": 100}},
                "account_ids": [account_id]})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{plan}");
    plan["id"].as_str().unwrap().to_owned()
}

fn recommendations() -> Value {
    json!([
        {"provider": "aws", "service": "rds", "region": "us-east-1", "resource_type": "db.r5.large",
         "engine": "postgresql", "count": 1, "term": 1, "payment": "all-upfront"},
        {"provider": "aws", "service": "ec2", "region": "us-east-1", "resource_type": "m5.large",
         "platform": "Linux/UNIX", "count": 1, "term": 1, "payment": "no-upfront",
         "details": {"tenancy": "default", "offering_class": "standard"}},
    ])
}

/// Starts the plan's execution through the gateway, inside the caller's trace when
/// `traceparent` is given, and waits until it ends.
async fn execute_plan(stack: &TestStack, plan_id: &str, traceparent: Option<&str>) -> Value {
    let mut request = stack
        .admin(Method::POST, &format!("/api/plans/{plan_id}/executions"))
        .json(&json!({"recommendations": recommendations()}));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201);
    let execution: Value = response.json().await.unwrap();
    assert_eq!(execution["status"], "approved", "{execution}");
    let id = execution["id"].as_str().unwrap().to_owned();
    eventually("the execution to end", Duration::from_secs(60), || async {
        let (_, body) = stack
            .admin_json(Method::GET, &format!("/api/executions/{id}"), None)
            .await
            .ok()?;
        (body["status"] == "completed").then_some(body)
    })
    .await
    .unwrap()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// The spans of `trace_id` once `done` holds for them (spans close on their own tasks).
async fn trace_spans(
    exporter: &InMemorySpanExporter,
    trace_id: TraceId,
    done: impl Fn(&[SpanData]) -> bool,
) -> Vec<SpanData> {
    eventually("the trace's spans", Duration::from_secs(20), || async {
        let spans: Vec<SpanData> = exporter
            .get_finished_spans()
            .ok()?
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .collect();
        done(&spans).then_some(spans)
    })
    .await
    .unwrap_or_else(|error| {
        let names: Vec<String> = exporter
            .get_finished_spans()
            .unwrap_or_default()
            .iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .map(|span| format!("{} {:?}", span.name, attribute(span, "operation")))
            .collect();
        panic!("{error}; the trace holds: {names:?}")
    })
}

/// The names of `span`'s ancestors, nearest first, as far as the trace holds them.
fn ancestors<'a>(span: &'a SpanData, by_id: &HashMap<SpanId, &'a SpanData>) -> Vec<&'a SpanData> {
    let mut chain = Vec::new();
    let mut parent = span.parent_span_id;
    while let Some(next) = by_id.get(&parent) {
        chain.push(*next);
        parent = next.parent_span_id;
    }
    chain
}

fn grpc_span_of(service: &str) -> impl Fn(&&SpanData) -> bool + '_ {
    move |span| {
        span.name.starts_with("cudly.")
            && attribute(span, "cudly.service").as_deref() == Some(service)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_execution_is_one_trace_from_the_gateway_to_every_aws_call() {
    let exporter = cudly_telemetry::init_for_tests("cudly");
    // The run must be the one the request starts: a run the poll picks up instead (the
    // backstop for approved executions nobody started) begins a trace of its own.
    let stack = TestStack::start_with_sandbox_and(|config| {
        config.executor.runner.poll_interval = Duration::from_secs(3600);
    })
    .await
    .unwrap();
    let account_id = add_account(&stack, "523456789012").await;
    let plan_id = add_plan(&stack, &account_id).await;

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    execute_plan(&stack, &plan_id, Some(&traceparent)).await;
    let trace_id = TraceId::from_hex(TRACE_ID).unwrap();
    let is_purchase = |span: &SpanData| {
        span.name == "aws_call"
            && attribute(span, "operation").is_some_and(|op| op.starts_with("Purchase"))
    };
    let spans = trace_spans(&exporter, trace_id, |spans| {
        spans.iter().filter(|span| is_purchase(span)).count() == 2
            && spans.iter().any(|span| span.name == "execution_run")
    })
    .await;
    stack.stop().await.unwrap();

    let by_id: HashMap<SpanId, &SpanData> = spans
        .iter()
        .map(|span| (span.span_context.span_id(), span))
        .collect();
    // One tree: the gateway's span is the child of the caller's, every other span's
    // parent is in the trace.
    let roots: Vec<&SpanData> = spans
        .iter()
        .filter(|span| !by_id.contains_key(&span.parent_span_id))
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "one root: {:?}",
        roots.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let root = roots[0];
    assert_eq!(
        root.parent_span_id,
        SpanId::from_hex(CALLER_SPAN_ID).unwrap()
    );
    assert_eq!(root.name, "POST /api/plans/{id}/executions");
    assert_eq!(
        attribute(root, "http.response.status_code").as_deref(),
        Some("201")
    );

    // gateway → planner → executor → accounts, each a server span under the caller's.
    let planner = spans
        .iter()
        .find(grpc_span_of("planner"))
        .expect("a planner span");
    assert!(
        ancestors(planner, &by_id)
            .iter()
            .any(|span| span.span_context.span_id() == root.span_context.span_id())
    );
    let create = spans
        .iter()
        .filter(grpc_span_of("executor"))
        .find(|span| span.name.ends_with("/CreateExecution"))
        .expect("the executor's CreateExecution span");
    assert!(
        ancestors(create, &by_id)
            .iter()
            .any(|span| span.span_context.span_id() == planner.span_context.span_id()),
        "CreateExecution runs under the planner's span"
    );
    // Credentials are resolved twice: to price the items at creation, then by the run.
    let resolves: Vec<&SpanData> = spans
        .iter()
        .filter(grpc_span_of("accounts"))
        .filter(|span| span.name.ends_with("/ResolveCredentials"))
        .collect();
    let in_run = |span: &&SpanData| {
        ancestors(span, &by_id)
            .iter()
            .any(|ancestor| ancestor.name == "account_run")
    };
    assert!(
        resolves.iter().any(|span| !in_run(span)
            && ancestors(span, &by_id)
                .iter()
                .any(|ancestor| ancestor.span_context.span_id() == create.span_context.span_id())),
        "pricing resolves credentials under CreateExecution"
    );
    let resolve = *resolves
        .iter()
        .find(|span| in_run(span))
        .expect("the run's ResolveCredentials span");
    let resolve_chain: Vec<&str> = ancestors(resolve, &by_id)
        .iter()
        .map(|span| span.name.as_ref())
        .collect();
    assert!(resolve_chain.contains(&"account_run"), "{resolve_chain:?}");
    assert!(
        resolve_chain.contains(&"execution_run"),
        "{resolve_chain:?}"
    );
    assert!(
        ancestors(resolve, &by_id)
            .iter()
            .any(|span| span.span_context.span_id() == create.span_context.span_id()),
        "the run continues the trace of the request that created it: {resolve_chain:?}"
    );

    // One span per AWS call, with service, operation and the masked token.
    let calls: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.name == "aws_call")
        .collect();
    let operations: Vec<String> = calls
        .iter()
        .filter_map(|span| attribute(span, "operation"))
        .collect();
    for wanted in [
        "GetCallerIdentity",
        "DescribeReservedDBInstances",
        "DescribeReservedDBInstancesOfferings",
        "PurchaseReservedDBInstancesOffering",
        "DescribeReservedInstancesOfferings",
        "PurchaseReservedInstancesOffering",
        "CreateTags",
    ] {
        assert!(
            operations.iter().any(|op| op == wanted),
            "no {wanted} span in {operations:?}"
        );
    }
    for call in calls.iter().filter(|span| is_purchase(span)) {
        let service = attribute(call, "service").unwrap();
        assert!(["rds", "ec2"].contains(&service.as_str()), "{service}");
        let token = attribute(call, "token").unwrap();
        assert_eq!(
            token.len(),
            11,
            "a masked token: 8 characters and an ellipsis, got {token}"
        );
        assert!(token.ends_with("..."), "{token}");
        let chain: Vec<&str> = ancestors(call, &by_id)
            .iter()
            .map(|span| span.name.as_ref())
            .collect();
        assert!(
            chain.starts_with(&["item", "account_run", "execution_run"]),
            "{chain:?}"
        );
    }
    // No full token anywhere in the trace.
    for span in &spans {
        for kv in &span.attributes {
            assert!(
                !has_token_like_run(&kv.value.as_str()),
                "a full token on span {}: {}",
                span.name,
                kv.key
            );
        }
    }
}

/// True when `text` holds 64 hex digits in a row (an idempotency token's length).
fn has_token_like_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= 64 {
            return true;
        }
    }
    false
}

/// Returns the value of the series `name{labels}` with every one of `labels` (in any
/// order among the series' labels); None when no such series is there.
fn series_value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((head, rest)) => (head, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels.iter().all(|(key, value)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{key}=\"{value}\""))
                });
            matches.then(|| value.parse().ok()).flatten()
        })
        .reduce(|sum, value| sum + value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_after_a_plan_execution_show_executions_purchases_requests_and_sweeps() {
    let stack = TestStack::start_with_sandbox().await.unwrap();
    let account_id = add_account(&stack, "534567890123").await;
    let plan_id = add_plan(&stack, &account_id).await;
    let bought = execute_plan(&stack, &plan_id, None).await;
    // A run over a per-execution limit, refused before anything is stored.
    let limits = json!({"max_window_commitment": 1e12, "max_execution_commitment": 0.01});
    let (status, _) = stack
        .admin_json(Method::PUT, "/api/guardrails", Some(limits))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, refused) = stack
        .admin_json(
            Method::POST,
            &format!("/api/plans/{plan_id}/executions"),
            Some(json!({"recommendations": recommendations()})),
        )
        .await
        .unwrap();
    assert_eq!(status, 422, "{refused}");
    let response = stack
        .admin(Method::POST, "/api/admin/sweeps/recover_stranded/run")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    // /metrics is on its own listener (never behind the API's ingress) and needs no key.
    let on_api = stack.http.get(stack.url("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), 404, "the API does not serve /metrics");
    let scrape = stack
        .http
        .get(stack.stack().metrics_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stack.stop().await.unwrap();

    let expect = |name: &str, labels: &[(&str, &str)]| -> f64 {
        series_value(&scrape, name, labels)
            .unwrap_or_else(|| panic!("no series {name} {labels:?} in:\n{scrape}"))
    };
    // Executions by status: one root and one child, each approved, running, completed.
    assert_eq!(
        expect("executor_executions_total", &[("status", "completed")]),
        2.0
    );
    assert_eq!(
        expect("executor_executions_total", &[("status", "running")]),
        2.0
    );
    // Purchases by service, and the purchase calls' latency.
    for service in ["rds", "ec2"] {
        assert_eq!(
            expect(
                "executor_purchases_total",
                &[("service", service), ("outcome", "bought")]
            ),
            1.0
        );
        assert_eq!(
            expect(
                "executor_purchase_call_duration_seconds_count",
                &[("service", service), ("result", "ok")]
            ),
            1.0
        );
    }
    // What was committed, by service (whole dollars per item), and the refusal.
    for child in bought["children"].as_array().unwrap() {
        for item in child["items"].as_array().unwrap() {
            let service = item["recommendation"]["service"].as_str().unwrap();
            let total = item["quote"]["total_commitment"].as_f64().unwrap();
            assert_eq!(
                expect(
                    "executor_committed_total",
                    &[("currency", "USD"), ("service", service)]
                ),
                total.round(),
                "{item}"
            );
        }
    }
    assert_eq!(
        expect(
            "executor_limit_refusals_total",
            &[("limit", "max_execution_commitment")]
        ),
        1.0
    );
    // The fan-out's bounds: every purchase call permit given back, one wait per
    // purchase and per item, one account run.
    assert_eq!(expect("executor_purchase_calls_in_flight", &[]), 0.0);
    assert_eq!(
        expect(
            "executor_permit_wait_seconds_count",
            &[("permit", "purchase_call")]
        ),
        2.0
    );
    assert_eq!(
        expect("executor_permit_wait_seconds_count", &[("permit", "item")]),
        2.0
    );
    assert_eq!(
        expect(
            "executor_permit_wait_seconds_count",
            &[("permit", "account")]
        ),
        1.0
    );
    assert_eq!(
        expect("executor_account_run_duration_seconds_count", &[]),
        1.0
    );
    // Requests per route and per RPC, with latency histograms.
    assert!(
        expect(
            "http_requests_total",
            &[
                ("route", "/api/plans/{id}/executions"),
                ("method", "POST"),
                ("status", "201")
            ]
        ) >= 1.0
    );
    assert!(
        expect(
            "http_request_duration_seconds_bucket",
            &[("route", "/api/plans/{id}/executions")]
        ) >= 1.0
    );
    assert!(
        expect(
            "grpc_server_requests_total",
            &[("method", "CreateExecution"), ("code", "0")]
        ) >= 1.0
    );
    assert!(
        expect(
            "grpc_server_requests_total",
            &[("method", "ResolveCredentials")]
        ) >= 1.0
    );
    assert!(
        expect(
            "grpc_server_request_duration_seconds_count",
            &[("method", "StartExecution")]
        ) >= 1.0
    );
    // The sweeper's task figures and its lock acquisitions.
    assert!(expect("sweeper_task_runs_total", &[("task", "recover_stranded")]) >= 1.0);
    assert!(
        expect(
            "sweeper_lock_acquisitions_total",
            &[("task", "recover_stranded")]
        ) >= 1.0
    );
    assert!(
        expect(
            "sweeper_task_duration_seconds_count",
            &[("task", "recover_stranded")]
        ) >= 1.0
    );
}
