//! A PostgreSQL database for a test: a fresh schema in the database named by
//! `SQRL_TEST_POSTGRES` (e.g. `postgres://postgres@127.0.0.1:5432/test`),
//! dropped when the test ends. Without that variable the tests that need it
//! are reported as ignored (`build.rs`), unless `SQRL_REQUIRE_POSTGRES=1`
//! (CI) makes them run and fail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqrl_core::rand_core::{OsRng, RngCore as _};
use tokio_postgres::NoTls;

/// The variable naming the test server.
pub const POSTGRES_ENV: &str = "SQRL_TEST_POSTGRES";
/// The variable that turns a missing server into a failure.
pub const REQUIRE_POSTGRES_ENV: &str = "SQRL_REQUIRE_POSTGRES";

/// Schemas left by tests that died more than this long ago are dropped.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A schema of its own for one test.
pub struct TestDatabase {
    /// The server's URL (as given).
    pub url: String,
    /// The schema's name.
    pub schema: String,
}

impl TestDatabase {
    /// A fresh schema. A test that calls this is ignored (see `build.rs`)
    /// unless `SQRL_TEST_POSTGRES` is set or `SQRL_REQUIRE_POSTGRES=1`.
    pub async fn create() -> Self {
        let url = match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "{POSTGRES_ENV} is not set: set it to postgres://user@host/db \
                 ({REQUIRE_POSTGRES_ENV}=1 makes the PostgreSQL tests run without it)"
            ),
        };
        let client = connect(&url).await;
        drop_stale_schemas(&client).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let schema = format!("sqrl_t_{now}_{:08x}", OsRng.next_u32());
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Self { url, schema }
    }

    /// Connection settings whose search path is the test's schema.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config: tokio_postgres::Config = self.url.parse().unwrap();
        config.options(format!("-c search_path={}", self.schema));
        config
    }

    /// The URL of the test's schema, as `--db` takes it (the search path as
    /// a connection option).
    pub fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.schema
        )
    }

    /// A plain connection to the test's schema, for checks.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = self.config().connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// Drops the schema.
    pub async fn drop(self) {
        let client = connect(&self.url).await;
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}: cannot connect: {e}"));
    tokio::spawn(connection);
    client
}

async fn drop_stale_schemas(client: &tokio_postgres::Client) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rows = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sqrl\\_t\\_%'",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        if now.saturating_sub(created) > STALE_AFTER.as_secs() {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        }
    }
}
