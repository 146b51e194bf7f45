//! Installation of the global subscriber and tracer provider.
//!
//! The `tracing` subscriber can be installed once per process, but services, the
//! all-in-one binary and tests call [`init`] repeatedly. So the OpenTelemetry layer is
//! installed once with a [`SwappableTracer`], and each init swaps the provider behind it:
//! a fresh provider when none is live, the live one otherwise. A provider is shut down
//! only when the last [`TelemetryGuard`] goes; a bare provider (ids, no export) then takes
//! its place, because a shut-down provider hands out invalid span contexts and would
//! silently stop trace propagation.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, RwLock};

use anyhow::Context as _;
use opentelemetry::Context;
use opentelemetry::global;
use opentelemetry::trace::{SpanBuilder, Tracer, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The instrumentation scope of every span this crate's layer exports.
const TRACER_NAME: &str = "cudly";

/// The variables that turn the OTLP exporter on. The exporter itself reads them (and the
/// other `OTEL_EXPORTER_OTLP_*` variables) when it is built.
const OTLP_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The variable choosing the log format (`json`, `pretty`, else compact), read here
/// before any configuration.
pub const LOG_FORMAT_VAR: &str = "CUDLY_LOG_FORMAT";

/// The `CUDLY_*` variables this crate reads itself, so that a binary does not report
/// them as unused.
pub const VARIABLES: &[&str] = &[LOG_FORMAT_VAR];

/// Keeps telemetry running; dropping the last guard flushes and shuts down the span
/// exporter.
///
/// Hold the guard returned by [`init`] in `main` until the process ends.
#[must_use = "dropping the guard shuts down span export"]
#[derive(Debug)]
pub struct TelemetryGuard {
    _private: (),
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let mut state = lock_state();
        let Mode::Live { guards } = &mut state.mode else {
            // Issued in test mode, or before init_for_tests took over: nothing to stop.
            return;
        };
        *guards -= 1;
        if *guards > 0 {
            return;
        }
        let provider = state.swap_provider(bare_provider());
        state.mode = Mode::Idle;
        drop(state);
        // Shutdown flushes the batch processor; failures only mean lost spans.
        if let Err(error) = provider.shutdown() {
            tracing::warn!(%error, "span exporter shutdown failed");
        }
    }
}

/// Installs tracing for `service_name` and returns the guard that keeps span export alive.
///
/// - The subscriber logs to stdout through an `EnvFilter` read from `RUST_LOG` (default
///   `info`), as JSON when `CUDLY_LOG_FORMAT=json`, multi-line with `pretty`, else
///   compact.
/// - Spans at `info` and above (whatever `RUST_LOG` says, so that lowering the log level
///   never breaks trace propagation) go to OpenTelemetry. When
///   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set they
///   are exported over OTLP/gRPC through a batch processor, under a resource whose
///   `service.name` is `service_name`; otherwise they only carry ids for propagation.
/// - The global propagator is W3C TraceContext.
///
/// Calling it again is harmless: while a guard is alive later calls share its provider
/// (and its `service.name`), and after [`init_for_tests`] they keep the in-memory
/// exporter. If another global subscriber was installed first, logging goes there and
/// spans carry no OpenTelemetry context.
///
/// # Errors
///
/// Fails when the OTLP exporter cannot be built, which includes being called outside a
/// Tokio runtime while an OTLP endpoint is set.
pub fn init(service_name: &str) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut state = lock_state();
    match &mut state.mode {
        Mode::Testing { .. } => {}
        Mode::Live { guards } => *guards += 1,
        Mode::Idle => {
            let provider = otlp_provider(service_name)?;
            let bare = state.swap_provider(provider);
            // The bare provider has no processor; shutting it down only marks it.
            let _ = bare.shutdown();
            state.mode = Mode::Live { guards: 1 };
        }
    }
    state.install_subscriber(SubscriberKind::Service);
    Ok(TelemetryGuard { _private: () })
}

/// Installs tracing with an in-memory span exporter and returns that exporter.
///
/// Spans are exported as soon as they close (simple processor), so a test can read them
/// with [`InMemorySpanExporter::get_finished_spans`] once its spans are dropped. Every call
/// in a process returns the same exporter, shared by all tests running in it, so a test
/// should pick its spans by trace id. Log output goes through the test writer. Later
/// calls to [`init`] keep this exporter.
pub fn init_for_tests(service_name: &str) -> InMemorySpanExporter {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut state = lock_state();
    if let Mode::Testing { exporter } = &state.mode {
        return exporter.clone();
    }
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_resource(service_resource(service_name))
        .with_simple_exporter(exporter.clone())
        .build();
    let previous = state.swap_provider(provider);
    state.mode = Mode::Testing {
        exporter: exporter.clone(),
    };
    state.install_subscriber(SubscriberKind::Tests);
    drop(state);
    let _ = previous.shutdown();
    exporter
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| {
    let provider = bare_provider();
    Mutex::new(State {
        tracer: SwappableTracer::new(provider.tracer(TRACER_NAME)),
        provider,
        mode: Mode::Idle,
        subscriber_attempted: false,
    })
});

fn lock_state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

struct State {
    /// The tracer inside the installed OpenTelemetry layer.
    tracer: SwappableTracer,
    /// The provider `tracer` currently draws from.
    provider: SdkTracerProvider,
    mode: Mode,
    subscriber_attempted: bool,
}

enum Mode {
    /// No guard alive: spans get ids but are not exported.
    Idle,
    /// Exporting (over OTLP when configured) until the last of `guards` drops.
    Live { guards: usize },
    /// Exporting to an in-memory exporter for the rest of the process.
    Testing { exporter: InMemorySpanExporter },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SubscriberKind {
    Service,
    Tests,
}

impl State {
    /// Makes `provider` the source of all new spans and the global provider, and returns
    /// the previous one.
    fn swap_provider(&mut self, provider: SdkTracerProvider) -> SdkTracerProvider {
        self.tracer.replace(provider.tracer(TRACER_NAME));
        global::set_tracer_provider(provider.clone());
        std::mem::replace(&mut self.provider, provider)
    }

    fn install_subscriber(&mut self, kind: SubscriberKind) {
        if self.subscriber_attempted {
            return;
        }
        self.subscriber_attempted = true;
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(
                "a global tracing subscriber was already set; spans carry no opentelemetry context"
            );
            return;
        }
        let otel_layer = tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_filter(otel_filter());
        // Only fails when a subscriber or logger was set meanwhile: keep theirs.
        let _ = Registry::default()
            .with(fmt_layer(kind))
            .with(otel_layer)
            .try_init();
    }
}

/// Log levels the AWS SDK crates may not exceed (secret safety, see `fmt_layer`).
const SDK_LOG_CAPS: [&str; 5] = [
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_sigv4=info",
    "aws_config=info",
    "aws_smithy_http_client=info",
];

fn fmt_layer(kind: SubscriberKind) -> Box<dyn Layer<Registry> + Send + Sync> {
    let mut env_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    // The AWS SDK's own debug and trace lines print request details such as the
    // access key id; they stay at info whatever RUST_LOG asks for.
    for directive in SDK_LOG_CAPS {
        if let Ok(directive) = directive.parse() {
            env_filter = env_filter.add_directive(directive);
        }
    }
    let format = std::env::var(LOG_FORMAT_VAR).unwrap_or_default();
    let layer = tracing_subscriber::fmt::layer();
    match (format.as_str(), kind) {
        ("json", SubscriberKind::Tests) => layer
            .json()
            .with_test_writer()
            .with_filter(env_filter)
            .boxed(),
        ("json", SubscriberKind::Service) => layer.json().with_filter(env_filter).boxed(),
        ("pretty", SubscriberKind::Tests) => layer
            .pretty()
            .with_test_writer()
            .with_filter(env_filter)
            .boxed(),
        ("pretty", SubscriberKind::Service) => layer.pretty().with_filter(env_filter).boxed(),
        (_, SubscriberKind::Tests) => layer
            .compact()
            .with_test_writer()
            .with_filter(env_filter)
            .boxed(),
        (_, SubscriberKind::Service) => layer.compact().with_filter(env_filter).boxed(),
    }
}

/// Spans and events that reach OpenTelemetry: `info` and above, except the exporter's
/// own diagnostics, which would otherwise feed back into the export. Targets match by
/// prefix, so this also covers `opentelemetry_sdk` and `opentelemetry-otlp`.
fn otel_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("opentelemetry", LevelFilter::OFF)
}

fn service_resource(service_name: &str) -> Resource {
    Resource::builder()
        .with_service_name(service_name.to_owned())
        .build()
}

/// A provider that assigns ids (so context still propagates) and exports nothing.
fn bare_provider() -> SdkTracerProvider {
    SdkTracerProvider::builder().build()
}

/// Returns a provider for `service_name`, exporting over OTLP/gRPC when an endpoint is
/// configured.
fn otlp_provider(service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let builder = SdkTracerProvider::builder().with_resource(service_resource(service_name));
    if !otlp_endpoint_configured() {
        return Ok(builder.build());
    }
    // The tonic channel spawns its worker on the current runtime.
    tokio::runtime::Handle::try_current()
        .context("telemetry init must run inside a tokio runtime when an otlp endpoint is set")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .context("building the otlp span exporter")?;
    Ok(builder.with_batch_exporter(exporter).build())
}

fn otlp_endpoint_configured() -> bool {
    OTLP_ENDPOINT_VARIABLES
        .iter()
        .any(|variable| std::env::var(variable).is_ok_and(|value| !value.trim().is_empty()))
}

/// The tracer of the installed OpenTelemetry layer, which can be pointed at another
/// provider after the subscriber is set.
#[derive(Clone, Debug)]
struct SwappableTracer {
    current: Arc<RwLock<SdkTracer>>,
}

impl SwappableTracer {
    fn new(tracer: SdkTracer) -> Self {
        Self {
            current: Arc::new(RwLock::new(tracer)),
        }
    }

    fn replace(&self, tracer: SdkTracer) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = tracer;
    }

    fn get(&self) -> SdkTracer {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Tracer for SwappableTracer {
    type Span = opentelemetry_sdk::trace::Span;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> Self::Span {
        // Cloned out of the lock so that span processors never run under it.
        self.get().build_with_context(builder, parent_cx)
    }
}
