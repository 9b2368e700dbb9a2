//! Connecting to the relational store and migrating it.

use std::{path::Path, time::Duration};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    TransactionTrait, sqlx::sqlite::SqliteJournalMode,
};

use crate::settings::DatabaseSettings;

const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Key of the PostgreSQL advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0074_6573_7365_7261; // "tessera" in ASCII

/// Connects (creating a SQLite file's directory when needed) and runs pending migrations.
pub async fn connect_and_migrate(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let db = connect(settings).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        migrate_under_lock(&db, settings).await?;
    } else {
        Migrator::up(&db, None).await?;
    }
    Ok(db)
}

/// Instances starting together on one PostgreSQL database would race to
/// apply the same migration, and the losers would fail to start. A
/// transaction on a connection of its own holds an advisory lock while the
/// pool migrates: one instance migrates, the others wait and find nothing to do.
async fn migrate_under_lock(
    db: &DatabaseConnection,
    settings: &DatabaseSettings,
) -> Result<(), DbErr> {
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(1)
        .connect_timeout(settings.connect_timeout)
        .sqlx_logging(false);
    let lock_connection = Database::connect(options).await?;
    let lock = lock_connection.begin().await?;
    lock.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await?;
    let migrated = Migrator::up(db, None).await;
    // Ending the transaction releases the lock, whatever the migration did.
    lock.rollback().await?;
    lock_connection.close().await?;
    migrated
}

pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    if let Some(dir) = sqlite_file_dir(&settings.url) {
        std::fs::create_dir_all(dir)
            .map_err(|err| DbErr::Custom(format!("creating {}: {err}", dir.display())))?;
    }
    let timeout = settings.connect_timeout;
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(settings.max_connections.get())
        .min_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        // Pinging on every checkout doubled the cost of each query; a
        // connection is pinged only after sitting idle, and a dead one fails
        // its query (503) and is replaced.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        .sqlx_logging(false)
        // SQLite's default rollback journal makes a writer and readers wait
        // for each other; WAL lets sign-ins and `/v1/me` read while a sign-up
        // writes (commits still sync fully: no stored user is lost).
        .map_sqlx_sqlite_opts(|options| options.journal_mode(SqliteJournalMode::Wal));
    Database::connect(options).await
}

/// The directory of a `sqlite://` file URL, if it has one.
fn sqlite_file_dir(url: &str) -> Option<&Path> {
    let path = url.strip_prefix("sqlite://")?.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Path::new(path)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_directory_of_sqlite_files() {
        assert_eq!(
            sqlite_file_dir("sqlite://data/tessera.db?mode=rwc"),
            Some(Path::new("data"))
        );
        assert_eq!(
            sqlite_file_dir("sqlite:///tmp/x/t.db"),
            Some(Path::new("/tmp/x"))
        );
        assert_eq!(sqlite_file_dir("sqlite://t.db"), None);
        assert_eq!(sqlite_file_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_file_dir("postgres://localhost/test"), None);
    }
}
