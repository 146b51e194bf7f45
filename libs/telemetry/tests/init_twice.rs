//! `init` is called by every service and by tests, possibly many times in one process.

use cudly_telemetry::{current_trace_id, init};

#[tokio::test]
async fn init_can_be_called_again_and_spans_keep_their_ids_after_the_guards_drop() {
    let first = init("first-service").unwrap();
    let second = init("second-service").unwrap();
    let span = tracing::info_span!("work while live");
    assert!(span.in_scope(current_trace_id).is_some());
    drop(span);
    drop(second);
    drop(first);

    // All guards gone: the exporter is shut down but spans still get ids, so a later
    // init (another test in the same process) still propagates traces.
    let span = tracing::info_span!("work after shutdown");
    assert!(span.in_scope(current_trace_id).is_some());
    let _third = init("third-service").unwrap();
    let span = tracing::info_span!("work after re-init");
    assert!(span.in_scope(current_trace_id).is_some());
}
