//! Postgres set-up shared by every service: one schema per service, `search_path` set on
//! every connection, migrations applied at start-up with their table in that schema.

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// A database error whose text never contains the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("database url is not valid")]
    InvalidUrl,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migrations of schema {schema} failed: {detail}")]
    Migration { schema: String, detail: String },
}

fn options(database_url: &SecretString) -> Result<PgConnectOptions, DbSetupError> {
    PgConnectOptions::from_str(database_url.expose_secret()).map_err(|_| DbSetupError::InvalidUrl)
}

/// A pooled connection idle at least this long is pinged before it is handed out. A
/// connection in steady use is not: a ping per acquire was one more round trip per
/// statement on every request path. Restarting Postgres takes far longer than this, so
/// a connection from before a restart is still caught and replaced.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_millis(250);

/// Returns a lazily connecting pool whose connections use `schema` as `search_path`.
/// Lazy, so a service can start (and report NOT_SERVING) while Postgres is down.
pub fn lazy_pool(
    database_url: &SecretString,
    schema: &str,
    max_connections: u32,
) -> Result<PgPool, DbSetupError> {
    let connect_options = options(database_url)?
        .options([("search_path", schema)])
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(connect_options))
}

/// Applies `migrator` inside `schema`, creating the schema and keeping the migration
/// table there, so services never share or see each other's migration history.
pub async fn migrate(pool: &PgPool, migrator: &Migrator, schema: &str) -> Result<(), DbSetupError> {
    let mut schema_migrator = Migrator {
        migrations: migrator.migrations.clone(),
        ..Migrator::DEFAULT
    };
    schema_migrator.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    schema_migrator.create_schema(schema.to_owned());
    schema_migrator
        .run(pool)
        .await
        .map_err(|error| DbSetupError::Migration {
            schema: schema.to_owned(),
            detail: error.to_string(),
        })
}

/// Returns Ok when the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), DbSetupError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|error| DbSetupError::Unavailable(error_kind(&error)))
}

/// Creates the database named in the URL if it does not exist (the `cudly` binary and
/// tests use this; production databases are created by their operators).
pub async fn ensure_database(database_url: &SecretString) -> Result<(), DbSetupError> {
    let target = options(database_url)?;
    let Some(name) = target.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let admin = target.clone().database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&admin)
        .await
        .map_err(|error| DbSetupError::Unavailable(error_kind(&error)))?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await
        .map_err(|error| DbSetupError::Unavailable(error_kind(&error)))?;
    if exists.is_none() {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
        {
            // A concurrent creator may have won; only a missing database is an error.
            let raced = error
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code == "42P04" || code == "23505");
            if !raced {
                return Err(DbSetupError::Unavailable(error_kind(&error)));
            }
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Returns a short description of a sqlx error without any connection detail.
pub fn error_kind(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) => format!("io error: {}", io.kind()),
        sqlx::Error::PoolTimedOut => "pool timed out".to_owned(),
        sqlx::Error::PoolClosed => "pool closed".to_owned(),
        sqlx::Error::Tls(_) => "tls error".to_owned(),
        sqlx::Error::Database(db) => format!("database error {}", db.code().unwrap_or_default()),
        other => other.to_string(),
    }
}

/// Returns true when the error means the database cannot be reached (as opposed to a
/// query that Postgres refused), so callers answer UNAVAILABLE.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    ) || error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
}

/// Returns the name of the violated constraint of a unique or foreign-key violation.
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    let db = error.as_database_error()?;
    match db.code().as_deref() {
        Some("23505") | Some("23503") | Some("23P01") => db.constraint(),
        _ => None,
    }
}
