//! One fresh database per test on the shared Postgres, dropped when the test ends.

use secrecy::SecretString;
use sqlx::Connection;

/// URL of the shared server's maintenance database; `CUDLY_TEST_POSTGRES_URL` overrides.
fn admin_url() -> String {
    std::env::var("CUDLY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database created for one test. Service schemas inside it keep their fixed names,
/// so tests run in parallel without seeing each other's rows.
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates `cudly_test_<uuid>` on the shared server.
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&admin_url()).await
    }

    /// Creates a fresh database on the server of `admin_url` (a URL naming the
    /// `postgres` database of that server).
    pub async fn create_on(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("cudly_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await.ok();
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(admin_url);
        Ok(Self {
            url: format!("{base}/{name}"),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// Returns the database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the URL wrapped as the services expect it.
    pub fn secret_url(&self) -> SecretString {
        SecretString::from(self.url.clone())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a pool on the test database with `schema` as search path, for assertions
    /// that read a service's rows directly.
    pub async fn pool(&self, schema: &str) -> anyhow::Result<sqlx::PgPool> {
        let url = format!("{}?options=-c%20search_path%3D{schema}", self.url);
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Dropping runs on a separate thread with its own runtime: Drop cannot await,
        // and the test's runtime may already be shutting down.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await;
                    conn.close().await.ok();
                }
            });
        });
        let _ = dropper.join();
    }
}
