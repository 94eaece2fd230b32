//! Copying a hub's metadata from SQLite into an empty PostgreSQL database
//! (`imagehub migrate --to`): every table, row for row and id for id, in one PostgreSQL
//! transaction read from one SQLite snapshot, then checked.
//!
//! The tables are read by the columns the PostgreSQL schema has (generated ones left to
//! PostgreSQL), and each value converted to that column's type; so a column added to
//! both schemas is copied without a change here, and a table added to them fails the
//! check below until it is named in [`TABLES`].

use futures_util::TryStreamExt;
use imagehub_oci::{Algorithm, Digest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::{Engine, Metadata, MetadataError, Result};

/// Every table, parents before children (foreign keys are checked row by row).
const TABLES: &[&str] = &[
    "namespaces",
    "users",
    "org_members",
    "repository_visibility",
    "repository_descriptions",
    "access_tokens",
    "audit_events",
    "web_sessions",
    "repositories",
    "blobs",
    "repository_blobs",
    "manifests",
    "manifest_references",
    "tags",
    "uploads",
    "image_info",
    "image_details",
    "jobs",
    "repository_search",
    "pull_counts",
    "datapacks",
    "import_groups",
    "import_jobs",
    "sync_rules",
    "sync_runs",
    "build_jobs",
    "login_failures",
];

/// What was copied.
#[derive(Debug, Clone, Default)]
pub struct MetadataCopy {
    /// Rows per table, in copy order.
    pub rows: Vec<(&'static str, u64)>,
    /// Manifests whose bytes were hashed again in PostgreSQL and matched their digest.
    pub manifests_verified: u64,
}

/// A PostgreSQL column: its name and the type a value is bound as.
struct Column {
    name: String,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Flag,
    Text,
    Bytes,
}

impl Metadata {
    /// Copies everything in this SQLite database into `target`, a PostgreSQL database
    /// holding no hub yet; all or nothing. Fails without writing when `target` already
    /// holds users or repositories.
    pub async fn copy_to(&self, target: &Metadata) -> Result<MetadataCopy> {
        if self.engine != Engine::Sqlite || target.engine != Engine::Postgres {
            return Err(MetadataError::CopyDirection);
        }
        let mut source = self.snapshot().await?;
        let mut tx = target.pool.begin().await?;
        let occupied: i64 = sqlx::query(
            "SELECT (SELECT count(*) FROM repositories) + (SELECT count(*) FROM namespaces)",
        )
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        if occupied > 0 {
            return Err(MetadataError::TargetNotEmpty);
        }
        check_every_table_is_named(&mut tx).await?;
        let mut copy = MetadataCopy::default();
        for &table in TABLES {
            let columns = columns(&mut tx, table).await?;
            let rows = copy_table(&mut source, &mut tx, table, &columns).await?;
            copy.rows.push((table, rows));
        }
        restart_identities(&mut tx).await?;
        copy.manifests_verified = verify_manifests(&mut tx).await?;
        tx.commit().await?;
        Ok(copy)
    }
}

/// The non-generated columns of `table` on PostgreSQL, in order.
async fn columns(tx: &mut AnyConnection, table: &str) -> Result<Vec<Column>> {
    let rows = sqlx::query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER'
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|r| {
            let (name, data_type): (String, String) = (r.get(0), r.get(1));
            let kind = match data_type.as_str() {
                "bigint" => Kind::Integer,
                "boolean" => Kind::Flag,
                "text" => Kind::Text,
                "bytea" => Kind::Bytes,
                other => {
                    return Err(MetadataError::Corrupt(format!("{table}.{name} is {other}")));
                }
            };
            Ok(Column { name, kind })
        })
        .collect()
}

async fn copy_table(
    source: &mut AnyConnection,
    target: &mut AnyConnection,
    table: &str,
    columns: &[Column],
) -> Result<u64> {
    let names = columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>();
    // The FTS5 table keeps the repository's id as its rowid.
    let selected = names
        .iter()
        .map(|&name| match (table, name) {
            ("repository_search", "id") => "rowid AS id",
            _ => name,
        })
        .collect::<Vec<_>>()
        .join(", ");
    let params = (1..=names.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let insert = format!("INSERT INTO {table} ({}) VALUES ({params})", names.join(", "));
    // Streamed: a table (manifests, with their bytes) may not fit in memory.
    let select = format!("SELECT {selected} FROM {table}");
    let mut rows = sqlx::query(&select).fetch(source);
    let mut copied = 0;
    while let Some(row) = rows.try_next().await? {
        let mut query = sqlx::query(&insert);
        for (i, column) in columns.iter().enumerate() {
            query = bind(query, &row, i, column.kind);
        }
        query.execute(&mut *target).await?;
        copied += 1;
    }
    Ok(copied)
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    row: &AnyRow,
    i: usize,
    kind: Kind,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match kind {
        Kind::Integer => query.bind(row.get::<Option<i64>, _>(i)),
        Kind::Flag => query.bind(row.get::<Option<i64>, _>(i).map(|v| v != 0)),
        Kind::Text => query.bind(row.get::<Option<String>, _>(i)),
        Kind::Bytes => query.bind(row.get::<Option<Vec<u8>>, _>(i)),
    }
}

/// Fails when PostgreSQL's schema has a table [`TABLES`] does not name, so nothing is
/// left behind by a copy older than the schema.
async fn check_every_table_is_named(tx: &mut AnyConnection) -> Result<()> {
    let rows = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let table: String = row.get(0);
        if !TABLES.contains(&table.as_str()) {
            return Err(MetadataError::Corrupt(format!("the copy does not know table {table}")));
        }
    }
    Ok(())
}

/// Moves each identity column's sequence past the ids copied into it, so the next row
/// inserted gets a new id.
async fn restart_identities(tx: &mut AnyConnection) -> Result<()> {
    let rows = sqlx::query(
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND column_name = 'id' AND is_identity = 'YES'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let table: String = row.get(0);
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                           COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Hashes every copied manifest again, in PostgreSQL, and compares with its digest.
async fn verify_manifests(tx: &mut AnyConnection) -> Result<u64> {
    let rows = sqlx::query(
        "SELECT digest, 'sha256:' || encode(sha256(content), 'hex'), 'sha512:' || encode(sha512(content), 'hex')
         FROM manifests",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let digest: String = row.get(0);
        let computed: String = match digest.parse::<Digest>().map(|d| d.algorithm()) {
            Ok(Algorithm::Sha512) => row.get(2),
            _ => row.get(1),
        };
        if computed != digest {
            return Err(MetadataError::Corrupt(format!(
                "manifest {digest} reads back as {computed} after the copy"
            )));
        }
    }
    Ok(rows.len() as u64)
}
