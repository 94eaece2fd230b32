//! The repository search index: keep a repository's row current, and query it with the
//! ranking the hub wants — exact and prefix name matches, then keywords, then text. On
//! SQLite with FTS5 (here); on PostgreSQL with tsvector columns (`postgres.rs`).

mod postgres;

use sqlx::{AnyConnection, Row};

use crate::{Engine, Metadata, RepositoryFilter, Result};

/// What a repository is found by.
#[derive(Debug, Clone, Default)]
pub struct SearchDocument {
    pub keywords: Vec<String>,
    pub description: String,
    pub docs: String,
}

/// The order of repositories listed without a search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BrowseOrder {
    /// The most recently pushed first.
    #[default]
    Pushed,
    /// The most pulled first (counts flushed to the database so far).
    Pulls,
    /// By name.
    Name,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Repository names, best first.
    pub names: Vec<String>,
    /// Matches over all pages.
    pub total: u64,
}

/// Removes a repository's FTS5 row (`$1`: its name).
const FTS5_DELETE: &str =
    "DELETE FROM repository_search WHERE rowid = (SELECT id FROM repositories WHERE name = $1)";

/// Writes a repository's FTS5 row: `$1` its name, `$2` its last component, `$3` the
/// keywords, `$4` the description, `$5` the docs. The namespace token and the visibility
/// are computed as migration 0010 and its triggers do, and as `Access` queries them.
const FTS5_INSERT: &str = "INSERT INTO repository_search
        (rowid, name, last, keywords, description, docs, namespace, visibility)
    SELECT r.id, r.name, $2, $3, $4, $5, 'n' || lower(hex(r.namespace)),
           COALESCE(rv.visibility, ns.default_visibility, 'private')
    FROM repositories r LEFT JOIN repository_visibility rv ON rv.name = r.name
    LEFT JOIN namespaces ns ON ns.name = r.namespace WHERE r.name = $1";

impl BrowseOrder {
    /// The ORDER BY of a page over `repositories r`.
    fn sql(self) -> &'static str {
        match self {
            BrowseOrder::Pushed => "r.pushed_at_ms DESC, r.name",
            BrowseOrder::Pulls => {
                "(SELECT COALESCE(sum(p.count), 0) FROM pull_counts p WHERE p.repository = r.name) DESC, r.name"
            }
            BrowseOrder::Name => "r.name",
        }
    }
}

impl Metadata {
    /// Replaces the search rows of repositories in one transaction; `None` removes a
    /// repository's row (no images left).
    pub async fn put_search_documents(
        &self,
        documents: &[(String, Option<SearchDocument>)],
    ) -> Result<()> {
        // Each engine's row; both statements bind the same values in the same order.
        let (delete, insert) = match self.engine {
            Engine::Sqlite => (FTS5_DELETE, FTS5_INSERT),
            Engine::Postgres => (postgres::DELETE, postgres::INSERT),
        };
        let mut tx = self.begin_write().await?;
        for (repository, document) in documents {
            sqlx::query(delete).bind(repository).execute(&mut *tx).await?;
            let Some(doc) = document else { continue };
            sqlx::query(insert)
                .bind(repository)
                .bind(repository.rsplit('/').next().unwrap_or(repository))
                .bind(doc.keywords.join(" "))
                .bind(&doc.description)
                .bind(&doc.docs)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every repository `filter` lets through (`None`: all) that holds an image and, with
    /// a `keyword`, lists it, in `order`, with their number: what the explore page shows
    /// before anything is searched.
    ///
    /// The candidates are the search rows (one per repository with an indexed image),
    /// matched on their visibility tokens as a search is, so counting them costs one FTS5
    /// doclist rather than a visibility check per repository. The keyword is matched as a
    /// phrase of the row's keyword tokens, so `web` also finds `web-server`: the filter
    /// narrows, it does not need an exact keyword.
    pub async fn browse_repositories(
        &self,
        filter: Option<&RepositoryFilter>,
        keyword: Option<&str>,
        order: BrowseOrder,
        limit: u32,
        offset: u32,
    ) -> Result<SearchPage> {
        if self.engine == Engine::Postgres {
            let mut snapshot = self.snapshot().await?;
            return postgres::browse(&mut snapshot, filter, keyword, order, limit, offset).await;
        }
        let Some(access) = Access::of(filter) else {
            return Ok(SearchPage { names: Vec::new(), total: 0 });
        };
        let mut expression = match keyword {
            Some(k) => format!("{{keywords}} : \"{}\"", k.replace('"', "\"\"")),
            // Every row has a visibility token: "public" or "private".
            None => "{visibility} : (public OR private)".to_string(),
        };
        expression = access.restrict(&expression);
        let order = order.sql();
        let mut snapshot = self.snapshot().await?;
        let total = count_matches(&mut snapshot, &expression).await?;
        let page_sql = format!(
            "SELECT r.name FROM repositories r
             WHERE r.id IN (SELECT rowid FROM repository_search WHERE repository_search MATCH $1)
             ORDER BY {order} LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&page_sql)
            .bind(&expression)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&mut *snapshot)
            .await?;
        Ok(SearchPage { names: rows.iter().map(|r| r.get(0)).collect(), total })
    }

    /// Repositories matching every term of `terms` (the last also as a prefix, as it may
    /// be a word still being typed), visible through `filter`
    /// (`None`: all), in tiers: the name or its last component equal to `query`, then
    /// starting with it (shorter first, then by name), then other name matches, then
    /// keyword matches, then description and docs matches; within the last three, the
    /// newest repository first.
    ///
    /// Each tier is an FTS5 expression excluding the tiers before it. The total is one
    /// count of their union; a tier is counted only when the page reaches it, and a page
    /// reads only the rows it shows (FTS5 walks matches in rowid order, which is creation
    /// order). Nothing is scored: ranking every match by relevance (`bm25`) costs about a
    /// microsecond per match, which for a common word among 50,000 repositories is far
    /// beyond the 20 ms a search may take. The queries share one read transaction, so the
    /// counts and the page agree with each other while pushes go on.
    pub async fn search_repositories(
        &self,
        query: &str,
        terms: &[String],
        filter: Option<&RepositoryFilter>,
        limit: u32,
        offset: u32,
    ) -> Result<SearchPage> {
        if terms.is_empty() {
            return Ok(SearchPage { names: Vec::new(), total: 0 });
        }
        if self.engine == Engine::Postgres {
            let mut snapshot = self.snapshot().await?;
            return postgres::search(&mut snapshot, query, terms, filter, limit, offset).await;
        }
        let Some(access) = Access::of(filter) else {
            return Ok(SearchPage { names: Vec::new(), total: 0 });
        };
        // Terms are alphanumeric (the caller splits the query at everything else), so
        // they need no escaping inside FTS5 strings.
        // Only the last term is a prefix: FTS5 merges the doclists of every term a prefix
        // covers before it can skip through them, so `bench*` in `bench/nuxt-…` read all
        // 50,000 rows' entries where `bench` seeks; an exact-name query went from 7 ms to 1.
        let last = terms.len() - 1;
        let all = terms
            .iter()
            .enumerate()
            .map(|(i, t)| if i == last { format!("\"{t}\"*") } else { format!("\"{t}\"") })
            .collect::<Vec<_>>()
            .join(" AND ");
        let phrase = format!("\"{}\" *", terms.join(" "));
        let in_name = format!("{{name}} : ({all})");
        let in_keywords = format!("{{keywords}} : ({all})");
        let in_text = format!("{{description docs}} : ({all})");
        let name_tier = access.restrict(&in_name);
        let keyword_tier = access.restrict(&format!("({in_keywords}) NOT ({in_name})"));
        let text_tier =
            access.restrict(&format!("({in_text}) NOT (({in_name}) OR ({in_keywords}))"));

        // Names starting with the query are among those whose first tokens (of the
        // whole name or of its last component) are the query's terms.
        let mut snapshot = self.snapshot().await?;
        let conn = &mut *snapshot;
        let starts = names_starting_with(
            conn,
            &access.restrict(&format!("({{name}} : ^ {phrase}) OR ({{last}} : ^ {phrase})")),
            query,
        )
        .await?;
        // With one term, "in the name, or the keywords, or the text" is one column set,
        // which FTS5 answers with one pass over the term's entries instead of three.
        let any_tier = match terms.len() {
            1 => format!("{{name keywords description docs}} : ({all})"),
            _ => format!("({in_name}) OR ({in_keywords}) OR ({in_text})"),
        };
        let total = count_matches(conn, &access.restrict(&any_tier)).await?;

        let page = Window { start: u64::from(offset), end: u64::from(offset) + u64::from(limit) };
        let mut names = Vec::new();
        if let Some((skip, take)) = page.overlap(0, starts.len() as u64) {
            names.extend(
                starts.iter().skip(skip as usize).take(take as usize).map(|(_, name)| name.clone()),
            );
        }
        let starts_ids =
            serde_json::Value::from(starts.iter().map(|(id, _)| *id).collect::<Vec<_>>())
                .to_string();
        let tiers = [(name_tier, starts_ids.as_str()), (keyword_tier, "[]"), (text_tier, "[]")];
        let mut tier_first = starts.len() as u64;
        for (i, (expression, excluded)) in tiers.iter().enumerate() {
            if tier_first >= page.end.min(total) {
                break; // the page is full, or nothing is left: later tiers need no count
            }
            // The tiers split the matches, so the last one holds what the others do not.
            let size = match i {
                0 => count_matches(conn, expression).await?.saturating_sub(starts.len() as u64),
                _ if i == tiers.len() - 1 => total.saturating_sub(tier_first),
                _ => count_matches(conn, expression).await?,
            };
            if let Some((skip, take)) = page.overlap(tier_first, size) {
                names.extend(newest_matches(conn, expression, excluded, skip, take).await?);
            }
            tier_first += size;
        }
        Ok(SearchPage { names, total })
    }
}

/// `(rowid, name)` of the matches of `expression` whose name or last component
/// starts with `query`: equal first, then shorter first, then by name.
async fn names_starting_with(
    conn: &mut AnyConnection,
    expression: &str,
    query: &str,
) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT id, name FROM (
             SELECT rowid AS id, name,
                    CASE WHEN name = $2 OR last = $2 THEN 0
                         WHEN substr(name, 1, length($2)) = $2 OR substr(last, 1, length($2)) = $2 THEN 1 END AS tier
             FROM repository_search WHERE repository_search MATCH $1)
         WHERE tier IS NOT NULL ORDER BY tier, length(name), name",
    )
    .bind(expression)
    .bind(query)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn count_matches(conn: &mut AnyConnection, expression: &str) -> Result<u64> {
    let row =
        sqlx::query("SELECT count(*) FROM repository_search WHERE repository_search MATCH $1")
            .bind(expression)
            .fetch_one(&mut *conn)
            .await?;
    Ok(row.get::<i64, _>(0) as u64)
}

/// Names of the matches of `expression` but not of the rowids in `excluded` (a JSON
/// array), newest first, `take` of them after skipping `skip`.
async fn newest_matches(
    conn: &mut AnyConnection,
    expression: &str,
    excluded: &str,
    skip: u64,
    take: u64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT name FROM repository_search WHERE repository_search MATCH $1
         AND rowid NOT IN (SELECT value FROM json_each($2)) ORDER BY rowid DESC LIMIT $3 OFFSET $4",
    )
    .bind(expression)
    .bind(excluded)
    .bind(take as i64)
    .bind(skip as i64)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Who may see a result, as a condition on the search rows' `namespace` and
/// `visibility` tokens: the same rule as `visibility::condition`, without its joins.
/// The tokens are kept current by the triggers of migration 0010.
enum Access {
    All,
    Matching(String),
}

impl Access {
    /// `None` when the filter lets nothing through.
    fn of(filter: Option<&RepositoryFilter>) -> Option<Access> {
        let Some(filter) = filter else { return Some(Access::All) };
        let namespaces = |names: &[String]| {
            names.iter().map(|n| namespace_token(n)).collect::<Vec<_>>().join(" OR ")
        };
        let mut visible = Vec::new();
        if filter.public {
            visible.push("{visibility} : public".to_string());
        }
        if !filter.namespaces.is_empty() {
            visible.push(format!("{{namespace}} : ({})", namespaces(&filter.namespaces)));
        }
        if visible.is_empty() {
            return None;
        }
        let visible = visible.iter().map(|v| format!("({v})")).collect::<Vec<_>>().join(" OR ");
        match &filter.only_namespaces {
            None => Some(Access::Matching(visible)),
            Some(only) if only.is_empty() => None,
            Some(only) => Some(Access::Matching(format!(
                "({visible}) AND ({{namespace}} : ({}))",
                namespaces(only)
            ))),
        }
    }

    /// `expression`, limited to what may be seen.
    fn restrict(&self, expression: &str) -> String {
        match self {
            Access::All => expression.to_string(),
            Access::Matching(access) => format!("({expression}) AND ({access})"),
        }
    }
}

/// A namespace as one token: `n` and the hex of its bytes, as SQL's
/// `'n' || lower(hex(namespace))` writes it.
fn namespace_token(namespace: &str) -> String {
    let mut token = String::with_capacity(1 + 2 * namespace.len());
    token.push('n');
    for byte in namespace.bytes() {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

/// The positions `[start, end)` of a page among all results.
struct Window {
    start: u64,
    end: u64,
}

impl Window {
    /// Which of the `size` results from position `first` on fall on the page: how many
    /// to skip and how many to take.
    fn overlap(&self, first: u64, size: u64) -> Option<(u64, u64)> {
        let (lo, hi) = (self.start.max(first), self.end.min(first + size));
        (lo < hi).then(|| (lo - first, hi - lo))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sqlx::migrate::Migrator;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    /// A database as the build before migration 0010 left it: two repositories of a
    /// public organization, one of them made private, with their old search rows.
    async fn database_before_0010(dir: &Path) -> std::path::PathBuf {
        let migrations = dir.join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        for entry in
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")).unwrap()
        {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.as_str() < "0010" {
                std::fs::copy(&path, migrations.join(&name)).unwrap();
            }
        }
        let db = dir.join("imagehub.db");
        let pool = sqlx::SqlitePool::connect_with(
            SqliteConnectOptions::new().filename(&db).create_if_missing(true),
        )
        .await
        .unwrap();
        Migrator::new(migrations.as_path()).await.unwrap().run(&pool).await.unwrap();
        for sql in [
            "INSERT INTO namespaces (name, kind, default_visibility, created_at) VALUES ('acme', 'org', 'public', 0)",
            "INSERT INTO repositories (id, name, created_at) VALUES (1, 'acme/redis', 0), (2, 'acme/secret-redis', 0)",
            "INSERT INTO repository_visibility (name, visibility) VALUES ('acme/secret-redis', 'private')",
            "INSERT INTO repository_search (rowid, name, keywords, description, docs) VALUES
                (1, 'acme/redis', 'cache', 'An in-memory store', ''), (2, 'acme/secret-redis', '', '', '')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
        db
    }

    fn public_only() -> RepositoryFilter {
        RepositoryFilter { public: true, namespaces: Vec::new(), only_namespaces: None }
    }

    async fn names(meta: &Metadata, query: &str, filter: Option<&RepositoryFilter>) -> Vec<String> {
        let terms: Vec<String> = query.split('/').map(str::to_string).collect();
        meta.search_repositories(query, &terms, filter, 20, 0).await.unwrap().names
    }

    #[tokio::test]
    async fn migration_0010_keeps_search_rows_and_visibility_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_sqlite(&database_before_0010(dir.path()).await).await.unwrap();
        assert_eq!(names(&meta, "redis", None).await, ["acme/redis", "acme/secret-redis"]);
        assert_eq!(names(&meta, "redis", Some(&public_only())).await, ["acme/redis"]);
        assert_eq!(
            names(&meta, "cache", Some(&public_only())).await,
            ["acme/redis"],
            "keywords carried over"
        );
        let member = RepositoryFilter {
            public: false,
            namespaces: vec!["acme".into()],
            only_namespaces: None,
        };
        assert_eq!(
            names(&meta, "redis", Some(&member)).await,
            ["acme/redis", "acme/secret-redis"],
            "namespace token"
        );

        meta.set_repository_visibility("acme/secret-redis", imagehub_auth::Visibility::Public)
            .await
            .unwrap();
        assert_eq!(
            names(&meta, "redis", Some(&public_only())).await,
            ["acme/redis", "acme/secret-redis"]
        );
        meta.delete_repository("acme/secret-redis").await.unwrap();
        assert_eq!(
            names(&meta, "redis", None).await,
            ["acme/redis"],
            "the row goes with its repository"
        );
    }

    #[tokio::test]
    async fn pages_cross_the_tiers_and_keep_the_total() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_sqlite(&dir.path().join("imagehub.db")).await.unwrap();
        let digest = imagehub_oci::Digest::sha256_of(b"blob");
        let documents = [
            ("acme/store", "", "A redis-compatible store"),
            ("acme/cache", "redis", ""),
            ("acme/my-redis-thing", "", ""),
            ("acme/redis-operator", "", ""),
            ("acme/redis", "", ""),
            ("acme/other", "", "nothing"),
        ];
        for (name, keywords, description) in documents {
            meta.link_blob(&name.parse().unwrap(), &digest, 4).await.unwrap();
            let document = SearchDocument {
                keywords: vec![keywords.to_string()],
                description: description.to_string(),
                docs: String::new(),
            };
            meta.put_search_documents(&[(name.to_string(), Some(document))]).await.unwrap();
        }
        let terms = ["redis".to_string()];
        let all = meta.search_repositories("redis", &terms, None, 20, 0).await.unwrap();
        assert_eq!(
            all.names,
            [
                "acme/redis",
                "acme/redis-operator",
                "acme/my-redis-thing",
                "acme/cache",
                "acme/store"
            ]
        );
        assert_eq!(all.total, 5);
        let mut paged = Vec::new();
        for offset in 0..6 {
            let page = meta.search_repositories("redis", &terms, None, 1, offset).await.unwrap();
            assert_eq!(page.total, 5, "offset {offset}");
            paged.extend(page.names);
        }
        assert_eq!(paged, all.names);
    }

    #[test]
    fn namespace_tokens_are_what_sql_writes() {
        assert_eq!(namespace_token("acme"), "n61636d65");
        assert_eq!(namespace_token("a-b_c.d"), "n612d625f632e64");
    }
}
