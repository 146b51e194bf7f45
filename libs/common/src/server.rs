//! The start-up and serving sequence every gRPC service shares (docs/design/STYLE.md, Start-up and
//! shutdown): the listener is bound first, the pool connects lazily, migrations run in
//! the background until Postgres answers, health starts NOT_SERVING and follows the
//! dependency checks, and the server stops gracefully on the shutdown future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::grpc::{DependencyStatus, drive_health};
use crate::grpc_limits::{GrpcLimits, GrpcLimitsLayer};

/// An extra dependency check (e.g. Redis for the sweeper).
pub type ExtraCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = DependencyStatus> + Send>> + Send + Sync>;

/// What a service hands to [`serve`].
pub struct ServiceSpec {
    /// Short name: `accounts`, `planner`, ...
    pub name: &'static str,
    /// Fully qualified gRPC service name, reported in health.
    pub grpc_name: &'static str,
    /// The service's own Postgres schema.
    pub schema: &'static str,
    pub migrator: &'static Migrator,
    pub health_interval: Duration,
    /// Deadlines and the concurrency cap of the server.
    pub limits: GrpcLimits,
    /// Whether gRPC reflection is served.
    pub reflection: bool,
    /// Serve over TLS (and ask callers for certificates with mutual TLS).
    pub tls: Option<crate::tls::GrpcTls>,
    pub extra_checks: Vec<ExtraCheck>,
    /// Told when the migrations are applied and every dependency answers; background
    /// work that needs them waits on it ([`Readiness::wait_ready`]).
    pub readiness: Readiness,
}

/// Whether a service's migrations are applied and its dependencies answered the last
/// check.
#[derive(Clone)]
pub struct Readiness {
    migrated: Arc<AtomicBool>,
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            migrated: Arc::default(),
            ready: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl Readiness {
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Whether the service is migrated and its dependencies answered the last check.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Completes once the service is migrated and its dependencies answer.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`, so the wait ends only by readiness.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.send_if_modified(|current| {
            let changed = *current != ready;
            *current = ready;
            changed
        });
    }
}

/// Returns the reflection service over the system's descriptor set.
pub fn reflection_service() -> anyhow::Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cudly_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?)
}

/// Serves `routes` (the service's own gRPC services) plus health and, when asked,
/// reflection on `listener` within the server's limits until `shutdown` completes. Migrations are applied by the health loop
/// before the first SERVING report, so nothing acts on an unmigrated schema.
pub async fn serve(
    spec: ServiceSpec,
    listener: TcpListener,
    pool: PgPool,
    routes: tonic::service::Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for name in ["", spec.grpc_name, "postgres"] {
        reporter
            .set_service_status(name, tonic_health::ServingStatus::NotServing)
            .await;
    }
    let cancel = CancellationToken::new();
    let readiness = spec.readiness.clone();
    let health_task = tokio::spawn(drive_health(
        reporter,
        vec![spec.grpc_name.to_owned()],
        spec.health_interval,
        cancel.clone(),
        dependency_checker(
            spec.name,
            spec.schema,
            spec.migrator,
            pool.clone(),
            readiness,
            spec.extra_checks,
        ),
    ));
    let addr = listener.local_addr()?;
    tracing::info!(service = spec.name, %addr, "grpc server listening");
    let reflection = if spec.reflection {
        Some(reflection_service()?)
    } else {
        None
    };
    let router = tonic::transport::Server::builder()
        .layer(cudly_telemetry::GrpcTraceLayer::new(spec.name))
        .layer(crate::metrics::RpcMetricsLayer::new(spec.name))
        .layer(GrpcLimitsLayer::new(spec.limits))
        .add_routes(routes)
        .add_service(health_service)
        .add_optional_service(reflection);
    let result = match &spec.tls {
        Some(tls) => {
            let incoming = crate::tls::tls_incoming(listener, tls.acceptor()?);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    shutdown,
                )
                .await
        }
    };
    cancel.cancel();
    let _ = health_task.await;
    pool.close().await;
    tracing::info!(service = spec.name, "grpc server stopped");
    Ok(result?)
}

fn dependency_checker(
    service: &'static str,
    schema: &'static str,
    migrator: &'static Migrator,
    pool: PgPool,
    readiness: Readiness,
    extra_checks: Vec<ExtraCheck>,
) -> impl FnMut() -> Pin<Box<dyn Future<Output = Vec<DependencyStatus>> + Send>> {
    move || {
        let pool = pool.clone();
        let readiness = readiness.clone();
        let extra_checks = extra_checks.clone();
        Box::pin(async move {
            let mut statuses = Vec::with_capacity(1 + extra_checks.len());
            let postgres = async {
                if !readiness.is_migrated() {
                    crate::db::migrate(&pool, migrator, schema)
                        .await
                        .map_err(|error| error.to_string())?;
                    readiness.migrated.store(true, Ordering::Release);
                    tracing::info!(service, schema, "migrations applied");
                }
                crate::db::ping(&pool)
                    .await
                    .map_err(|error| error.to_string())
            }
            .await;
            statuses.push(("postgres", postgres));
            for check in &extra_checks {
                statuses.push(check().await);
            }
            readiness.set_ready(
                readiness.is_migrated() && statuses.iter().all(|(_, status)| status.is_ok()),
            );
            statuses
        })
    }
}

/// Completes once every peer (name and gRPC URL) answers its health check SERVING,
/// checking again every `interval`. A peer serves only once its own migrations are
/// applied, so work that calls it does not start early and fail.
pub async fn wait_serving(
    peers: &[(&'static str, String)],
    interval: Duration,
    tls: Option<&crate::tls::GrpcTls>,
) {
    for (name, url) in peers {
        let Some(mut client) = health_client(url, tls) else {
            tracing::warn!(peer = name, "peer url is not valid, not waiting for it");
            continue;
        };
        let mut announced = false;
        loop {
            if check_serving(&mut client).await {
                break;
            }
            if !announced {
                tracing::info!(peer = name, "waiting for the peer to serve");
                announced = true;
            }
            tokio::time::sleep(interval).await;
        }
    }
}

type HealthClient = tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>;

/// Returns a health client of the gRPC service at `url` (3 s to connect and answer),
/// or None for a URL that is not valid.
fn health_client(url: &str, tls: Option<&crate::tls::GrpcTls>) -> Option<HealthClient> {
    let endpoint = crate::grpc::endpoint(url, tls).ok()?;
    Some(HealthClient::new(
        endpoint
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(3))
            .connect_lazy(),
    ))
}

async fn check_serving(client: &mut HealthClient) -> bool {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|reply| reply.get_ref().status == ServingStatus::Serving as i32)
}

/// Returns whether the gRPC service at `url` answers its health check SERVING now.
pub async fn is_serving(url: &str) -> bool {
    match health_client(url, None) {
        Some(mut client) => check_serving(&mut client).await,
        None => false,
    }
}
