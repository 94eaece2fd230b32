//! The repository search index (SQLite FTS5), behind methods a PostgreSQL implementation
//! (tsvector) can take later: keep a repository's row current, and query it with the
//! ranking the hub wants — exact and prefix name matches, then keywords, then text.

use sqlx::Row;

use crate::{Metadata, RepositoryFilter, Result, visibility};

/// What a repository is found by.
#[derive(Debug, Clone, Default)]
pub struct SearchDocument {
    pub keywords: Vec<String>,
    pub description: String,
    pub docs: String,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Repository names, best first.
    pub names: Vec<String>,
    /// Matches over all pages.
    pub total: u64,
}

impl Metadata {
    /// Replaces the search row of `repository`; `None` removes it (no images left).
    pub async fn put_search_document(&self, repository: &str, document: Option<&SearchDocument>) -> Result<()> {
        self.put_search_documents(&[(repository.to_string(), document.cloned())]).await
    }

    /// Replaces the search rows of several repositories in one transaction.
    pub async fn put_search_documents(&self, documents: &[(String, Option<SearchDocument>)]) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (repository, document) in documents {
            let id: Option<i64> = sqlx::query("SELECT id FROM repositories WHERE name = ?")
                .bind(repository)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
            let Some(id) = id else { continue };
            sqlx::query("DELETE FROM repository_search WHERE rowid = ?").bind(id).execute(&mut *tx).await?;
            if let Some(doc) = document {
                sqlx::query("INSERT INTO repository_search (rowid, name, keywords, description, docs) VALUES (?, ?, ?, ?, ?)")
                    .bind(id)
                    .bind(repository)
                    .bind(doc.keywords.join(" "))
                    .bind(&doc.description)
                    .bind(&doc.docs)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Repositories matching every term of `terms` (prefixes), visible through `filter`
    /// (`None`: all), ranked: the name equal to the query or its last component, then
    /// names starting with it (shorter first), then other name matches, then keyword
    /// matches, then description and docs; within a rank by relevance, then name.
    pub async fn search_repositories(&self, query: &str, terms: &[String], filter: Option<&RepositoryFilter>, limit: u32, offset: u32) -> Result<SearchPage> {
        let page = self.search_page(query, terms, filter, limit, offset).await?;
        if page.names.is_empty() && offset > 0 {
            // Past the last page: the total still comes from the first.
            let first = self.search_page(query, terms, filter, 1, 0).await?;
            return Ok(SearchPage { names: Vec::new(), total: first.total });
        }
        Ok(page)
    }

    async fn search_page(&self, query: &str, terms: &[String], filter: Option<&RepositoryFilter>, limit: u32, offset: u32) -> Result<SearchPage> {
        let fts = |columns: &str| {
            let terms: Vec<String> = terms.iter().map(|t| format!("\"{}\"*", t.replace('"', ""))).collect();
            format!("{{{columns}}} : ({})", terms.join(" AND "))
        };
        let params = visibility::Params::of(filter);
        let sql = format!(
            "WITH hits(id, tier, score) AS (
                 SELECT rowid, 2, bm25(repository_search) FROM repository_search WHERE repository_search MATCH ?1
                 UNION ALL
                 SELECT rowid, 3, bm25(repository_search) FROM repository_search WHERE repository_search MATCH ?2
                 UNION ALL
                 SELECT rowid, 4, bm25(repository_search) FROM repository_search WHERE repository_search MATCH ?3
             ), best AS (SELECT id, min(tier) AS tier, min(score) AS score FROM hits GROUP BY id)
             SELECT r.name,
                    CASE WHEN r.name = ?4 OR r.name LIKE '%/' || ?4 ESCAPE '\\' THEN 0
                         WHEN r.name LIKE ?4 || '%' ESCAPE '\\' OR r.name LIKE '%/' || ?4 || '%' ESCAPE '\\' THEN 1
                         ELSE b.tier END AS rank,
                    count(*) OVER () AS total
             FROM best b JOIN repositories r ON r.id = b.id {}
             WHERE {}
             ORDER BY rank, CASE WHEN rank <= 1 THEN length(r.name) END, b.score, r.name
             LIMIT ?9 OFFSET ?10",
            visibility::JOINS,
            visibility::condition(5)
        );
        let query = sqlx::query(&sql).bind(fts("name")).bind(fts("keywords")).bind(fts("description docs")).bind(like_escape(query));
        let rows = visibility::bind(query, &params).bind(limit).bind(offset).fetch_all(&self.pool).await?;
        let total = rows.first().map_or(0, |r| r.get::<i64, _>(2) as u64);
        Ok(SearchPage { names: rows.iter().map(|r| r.get(0)).collect(), total })
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
