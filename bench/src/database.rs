//! The server's relational database: by default a fresh SQLite file in the
//! server's temp dir; with `--database-url`, a PostgreSQL database of the
//! run's own on that server. With `--users`, the bench fills `users` in bulk
//! by SQL and reads the query plans of the server's hot statements.

use std::time::Instant;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult,
    Statement, Value,
};
use serde::Serialize;

/// Users added per statement: each statement is a transaction of its own,
/// which either backend commits in well under a second (100,000 rows took
/// 0.35 s on SQLite, 0.56 s on PostgreSQL, on 2 cores).
const FILL_BATCH: u64 = 100_000;

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// `--database-url`: a PostgreSQL server URL (its database is where the
/// bench connects to create and drop its own).
pub fn postgres_url(url: &str) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_string())
    } else {
        Err("expected a postgres:// URL".to_string())
    }
}

/// A PostgreSQL database made for this run, dropped by [`RunDatabase::remove`].
pub struct RunDatabase {
    /// A connection to the database `--database-url` names, which creates
    /// this one and drops it again (no database can drop itself).
    admin: DatabaseConnection,
    pub name: String,
    /// The URL the server gets.
    pub url: String,
}

impl RunDatabase {
    /// Creates `tessera_bench_<run id>` on the server `server_url` names.
    pub async fn create(server_url: &str, run_id: &str) -> Result<Self, String> {
        // The run id is hex: the name needs no quoting.
        let name = format!("tessera_bench_{run_id}");
        let admin = connect(server_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|err| format!("creating database {name}: {err}"))?;
        Ok(RunDatabase {
            url: with_database(server_url, &name),
            name,
            admin,
        })
    }

    /// Drops the database. `FORCE` ends any connection still open to it
    /// (a server that had to be killed), which would otherwise keep it.
    pub async fn remove(self) -> Result<(), String> {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = self.admin.execute_unprepared(&drop).await;
        let _ = self.admin.close().await;
        dropped
            .map(|_| ())
            .map_err(|err| format!("dropping database {}: {err}", self.name))
    }
}

/// One connection, without a statement log: the URL may hold a password,
/// and errors do not repeat it.
async fn connect(url: &str) -> Result<DatabaseConnection, String> {
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|err| format!("connecting to the database: {err}"))
}

/// `url` naming database `name` instead of its own (any query kept).
fn with_database(url: &str, name: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let path = url[authority..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority + i);
    let query = url[path..].find('?').map_or("", |i| &url[path + i..]);
    format!("{}/{name}{query}", &url[..path])
}

/// What `--users` added, and the plans the statements of the hot paths get
/// over that many users.
#[derive(Debug, Serialize)]
pub struct FilledUsers {
    pub count: u64,
    /// The INSERTs.
    pub fill_secs: f64,
    pub analyze_secs: f64,
    pub plans: Vec<QueryPlan>,
}

#[derive(Debug, Serialize)]
pub struct QueryPlan {
    /// Which request issues it.
    pub statement: &'static str,
    pub sql: String,
    /// `EXPLAIN QUERY PLAN` (SQLite, indented by depth) or `EXPLAIN`
    /// (PostgreSQL), one line each.
    pub plan: Vec<String>,
}

/// The `i`-th user `--users` adds: the seeded users' format, another letter
/// (the fill's SQL writes the same).
pub fn filled_username(i: u64, run_id: &str) -> String {
    format!("f{i}-{run_id}")
}

/// Adds `count` users to the `users` table of the database at `url` (the
/// server's, migrated), in bulk, then runs `ANALYZE` and reads the plans of
/// the server's hot statements over them.
///
/// The rows are what a sign-up writes: a UUID v7 id (a 16-byte blob on
/// SQLite, `uuid` on PostgreSQL, as sqlx stores one), a username in
/// [`filled_username`]'s format, `password_hash` (one Argon2id PHC string
/// for all), `created_at` = `updated_at` in the server's format, the other
/// timestamps `NULL`. User `i` signed up `count - i` seconds ago, and its
/// id carries that time, so ids ascend with `created_at` as the server's do.
pub async fn fill_users(
    url: &str,
    count: u64,
    run_id: &str,
    password_hash: &str,
) -> Result<FilledUsers, String> {
    let db = connect(url).await?;
    let result = fill_and_explain(&db, count, run_id, password_hash).await;
    let _ = db.close().await;
    result.map_err(|err| format!("filling users: {err}"))
}

async fn fill_and_explain(
    db: &DatabaseConnection,
    count: u64,
    run_id: &str,
    password_hash: &str,
) -> Result<FilledUsers, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    for first in (0..count).step_by(FILL_BATCH as usize) {
        let values = [
            Value::from(first as i64),
            Value::from((first + FILL_BATCH).min(count) as i64),
            Value::from(count as i64),
            Value::from(now_ms),
            Value::from(run_id),
            Value::from(password_hash),
        ];
        let sql = match backend {
            DbBackend::Postgres => FILL_POSTGRES,
            _ => FILL_SQLITE,
        };
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    let fill_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    db.execute_unprepared("ANALYZE").await?;
    let analyze_secs = started.elapsed().as_secs_f64();
    // One user from the middle, and the next name the fill would have taken.
    let existing = filled_username(count / 2, run_id);
    let new = filled_username(count, run_id);
    let plans = explain_hot_statements(db, &existing, &new, password_hash).await?;
    Ok(FilledUsers {
        count,
        fill_secs,
        analyze_secs,
        plans,
    })
}

/// Users `$1` to `$2` (excluded) of `$3`, user `i` signed up `$3 - i`
/// seconds before `$4` (unix ms); `$5` the run id, `$6` the hash. The id:
/// the sign-up's unix ms in 48 bits, the version 7, then the random bits of
/// a v4 (whose variant is already RFC 9562's).
const FILL_POSTGRES: &str = "\
INSERT INTO users (id, username, password_hash, created_at, updated_at)
SELECT (lpad(to_hex(ms), 12, '0') || '7' || substr(r, 14, 3) || substr(r, 17))::uuid,
       'f' || i || '-' || $5, $6, to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0)
FROM (SELECT i, $4 - ($3 - i) * 1000 AS ms, replace(gen_random_uuid()::text, '-', '') AS r
      FROM generate_series($1::bigint, $2::bigint - 1) AS i) AS new_users";

/// The same on SQLite: a recursive CTE for the series, the id as the blob
/// sqlx binds (random bits from `randomblob`, the variant from `random()`),
/// the times as sqlx writes a `DateTime<Utc>` (RFC 3339, nanoseconds,
/// `+00:00`).
const FILL_SQLITE: &str = "\
WITH RECURSIVE series(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM series WHERE i + 1 < $2)
INSERT INTO users (id, username, password_hash, created_at, updated_at)
SELECT unhex(printf('%012x7%s%x%s', ms, substr(r, 1, 3), 8 + abs(random()) % 4, substr(r, 4, 15))),
       'f' || i || '-' || $5, $6, at, at
FROM (SELECT i, ms, hex(randomblob(9)) AS r,
             strftime('%Y-%m-%dT%H:%M:%S', ms / 1000, 'unixepoch')
               || printf('.%09d+00:00', ms % 1000 * 1000000) AS at
      FROM (SELECT i, $4 - ($3 - i) * 1000 AS ms FROM series))";

/// The statements of the server's hot paths on `users`, as its `UserStore`
/// issues them: sea-orm's SQL, copied from PostgreSQL's statement log
/// (SQLite gets the same with `?` for each `$n`).
const SELECT_BY_USERNAME: &str = r#"SELECT "users"."id", "users"."username", "users"."password_hash", "users"."created_at", "users"."updated_at", "users"."disabled_at", "users"."password_changed_at", "users"."last_signin_at" FROM "users" WHERE "users"."username" = $1 AND "users"."disabled_at" IS NULL"#;
const SELECT_ACTIVE_BY_ID: &str = r#"SELECT "users"."id", "users"."username", "users"."password_hash", "users"."created_at", "users"."updated_at", "users"."disabled_at", "users"."password_changed_at", "users"."last_signin_at" FROM "users" WHERE "users"."id" = $1 AND "users"."disabled_at" IS NULL"#;
const SELECT_ME: &str = r#"SELECT "users"."id", "users"."username", "users"."created_at", "users"."disabled_at", "users"."password_changed_at", "users"."last_signin_at", "mfa_factors"."enabled_at" AS "mfa_enabled_at", "mfa_factors"."recovery_codes_left" AS "recovery_codes_left" FROM "users" LEFT JOIN "mfa_factors" ON "users"."id" = "mfa_factors"."user_id" WHERE "users"."id" = $1 AND "users"."disabled_at" IS NULL"#;
const UPDATE_LAST_SIGNIN: &str =
    r#"UPDATE "users" SET "last_signin_at" = $1 WHERE "users"."id" = $2"#;
const INSERT_USER: &str = r#"INSERT INTO "users" ("id", "username", "password_hash", "created_at", "updated_at", "disabled_at", "password_changed_at", "last_signin_at") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING "id", "username", "password_hash", "created_at", "updated_at", "disabled_at", "password_changed_at", "last_signin_at""#;

/// The plans of the hot statements, with the values of one call each:
/// `username` is a user's, `new_username` nobody's yet (the sign-up's).
async fn explain_hot_statements(
    db: &DatabaseConnection,
    username: &str,
    new_username: &str,
    password_hash: &str,
) -> Result<Vec<QueryPlan>, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let find_id = statement(
        backend,
        "SELECT id FROM users WHERE username = $1",
        [username.into()],
    );
    let id: uuid::Uuid = db
        .query_one_raw(find_id)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(username.to_string()))?
        .try_get("", "id")?;
    let now = chrono::Utc::now();
    let never = || Value::from(None::<chrono::DateTime<chrono::Utc>>);
    let signup = [
        uuid::Uuid::now_v7().into(),
        new_username.into(),
        password_hash.into(),
        now.into(),
        now.into(),
        never(),
        never(),
        never(),
    ];
    let hot: [(&'static str, &str, Vec<Value>); 5] = [
        (
            "sign-in: the user by username",
            SELECT_BY_USERNAME,
            vec![username.into()],
        ),
        (
            "sign-in: the user again, by id, after the password check",
            SELECT_ACTIVE_BY_ID,
            vec![id.into()],
        ),
        (
            "sign-in: last_signin_at",
            UPDATE_LAST_SIGNIN,
            vec![now.into(), id.into()],
        ),
        (
            "GET /v1/me: the user by id (user cache miss)",
            SELECT_ME,
            vec![id.into()],
        ),
        (
            "sign-up: the insert (the unique index on username checks the name)",
            INSERT_USER,
            signup.into(),
        ),
    ];
    let mut plans = Vec::with_capacity(hot.len());
    for (name, sql, values) in hot {
        plans.push(explain(db, name, sql, values).await?);
    }
    Ok(plans)
}

async fn explain(
    db: &DatabaseConnection,
    name: &'static str,
    sql: &str,
    values: Vec<Value>,
) -> Result<QueryPlan, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let explain = match backend {
        DbBackend::Postgres => "EXPLAIN",
        _ => "EXPLAIN QUERY PLAN",
    };
    let rows = db
        .query_all_raw(statement(backend, &format!("{explain} {sql}"), values))
        .await?;
    let plan = match backend {
        DbBackend::Postgres => rows
            .iter()
            .map(|row| row.try_get_by_index(0))
            .collect::<Result<_, _>>()?,
        _ => sqlite_plan(&rows)?,
    };
    Ok(QueryPlan {
        statement: name,
        sql: placeholders(backend, sql),
        plan,
    })
}

fn statement(backend: DbBackend, sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(backend, placeholders(backend, sql), values)
}

/// `sql` (written with `$n`) as sea-orm writes it for `backend`: SQLite's
/// placeholders are `?`, in the same order.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend == DbBackend::Postgres {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            out.push('?');
            while chars.next_if(char::is_ascii_digit).is_some() {}
        } else {
            out.push(c);
        }
    }
    out
}

/// `EXPLAIN QUERY PLAN`'s rows (`id`, `parent`, `detail`) as lines, each
/// indented under its parent, as the sqlite3 shell shows them.
fn sqlite_plan(rows: &[QueryResult]) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut depths = std::collections::HashMap::new();
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("", "id")?;
            let parent: i64 = row.try_get("", "parent")?;
            let detail: String = row.try_get("", "detail")?;
            let depth = depths.get(&parent).map_or(0, |depth| depth + 1);
            depths.insert(id, depth);
            Ok(format!("{}{detail}", "  ".repeat(depth)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_database_replaces_the_given_one() {
        let url = |given| with_database(given, "tessera_bench_0123abcd");
        assert_eq!(
            url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/tessera_bench_0123abcd"
        );
        assert_eq!(
            url("postgresql://u:p@db/test?sslmode=disable"),
            "postgresql://u:p@db/tessera_bench_0123abcd?sslmode=disable"
        );
        assert_eq!(
            url("postgres://db:5432"),
            "postgres://db:5432/tessera_bench_0123abcd"
        );
        assert_eq!(
            url("postgres://db?sslmode=require"),
            "postgres://db/tessera_bench_0123abcd?sslmode=require"
        );
    }

    #[test]
    fn only_postgres_urls_are_taken() {
        assert!(postgres_url("postgres://db/x").is_ok());
        assert!(postgres_url("postgresql://db/x").is_ok());
        assert!(postgres_url("sqlite://x.db").is_err());
    }

    #[test]
    fn sqlite_gets_question_marks() {
        assert_eq!(
            placeholders(DbBackend::Sqlite, UPDATE_LAST_SIGNIN),
            r#"UPDATE "users" SET "last_signin_at" = ? WHERE "users"."id" = ?"#
        );
        assert_eq!(placeholders(DbBackend::Postgres, "a = $12"), "a = $12");
    }

    #[test]
    fn filled_users_are_not_the_seeded_ones() {
        let run_id = "0123abcd";
        for i in 0..crate::tessera::SEED_USERS {
            let seeded = crate::tessera::Credentials::seeded(i, run_id).username;
            assert_ne!(filled_username(i as u64, run_id), seeded);
        }
        // The server's limit, at the largest count a run could ask for.
        assert!(filled_username(u64::MAX, run_id).len() <= 32);
    }
}
