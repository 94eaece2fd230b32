//! Search on PostgreSQL: the tiers of `fts5.rs` over the `tsvector` columns of
//! `repository_search` (generated from the text, split as FTS5 splits it), with who may
//! see a result checked by the listings' visibility condition.
//!
//! Unlike FTS5, PostgreSQL sorts the matches by tier in one query: a GIN index finds
//! them and a sort on a computed tier costs far less per match than FTS5's `bm25`.

use sqlx::{AnyConnection, Row};

use super::{BrowseOrder, SearchPage};
use crate::{RepositoryFilter, Result, visibility};

/// Which tier a match is in: 0 its name or last component is the query, 1 starts with
/// it, 2 the name matches, 3 the keywords, 4 the description or docs. `$1` is the
/// tsquery, `$2` the query as typed.
const TIER: &str = "CASE WHEN s.name_terms @@ to_tsquery('simple', $1) THEN
        CASE WHEN s.name = $2 OR s.last = $2 THEN 0
             WHEN starts_with(s.name, $2) OR starts_with(s.last, $2) THEN 1 ELSE 2 END
    WHEN s.keyword_terms @@ to_tsquery('simple', $1) THEN 3 ELSE 4 END";

/// Any column matches the tsquery `$1`.
const MATCHES: &str = "(s.name_terms @@ to_tsquery('simple', $1)
    OR s.keyword_terms @@ to_tsquery('simple', $1) OR s.text_terms @@ to_tsquery('simple', $1))";

/// Removes a repository's row (`$1`: its name).
pub(super) const DELETE: &str =
    "DELETE FROM repository_search WHERE id = (SELECT id FROM repositories WHERE name = $1)";

/// Writes a repository's row, with the values of `FTS5_INSERT` in the same order; the
/// tsvector columns are generated from them.
pub(super) const INSERT: &str =
    "INSERT INTO repository_search (id, name, last, keywords, description, docs)
    SELECT id, name, $2, $3, $4, $5 FROM repositories WHERE name = $1";

/// See `Metadata::browse_repositories`; `conn` is in a snapshot transaction.
pub(super) async fn browse(
    conn: &mut AnyConnection,
    filter: Option<&RepositoryFilter>,
    keyword: Option<&str>,
    order: BrowseOrder,
    limit: u32,
    offset: u32,
) -> Result<SearchPage> {
    let params = visibility::Params::of(filter);
    let from = format!(
        "FROM repository_search s JOIN repositories r ON r.id = s.id {joins}
         WHERE ($1 IS NULL OR s.keyword_terms @@
                phraseto_tsquery('simple', regexp_replace($1, '[^[:alnum:]]+', ' ', 'g')))
           AND {visible}",
        joins = visibility::JOINS,
        visible = visibility::condition(2),
    );
    let count = format!("SELECT count(*) {from}");
    let total = sqlx::query(&count).bind(keyword);
    let total: i64 = visibility::bind(total, &params).fetch_one(&mut *conn).await?.get(0);
    let page = format!("SELECT r.name {from} ORDER BY {} LIMIT $6 OFFSET $7", order.sql());
    let page = visibility::bind(sqlx::query(&page).bind(keyword), &params)
        .bind(i64::from(limit))
        .bind(i64::from(offset));
    let rows = page.fetch_all(&mut *conn).await?;
    Ok(SearchPage { names: rows.iter().map(|r| r.get(0)).collect(), total: total as u64 })
}

/// See `Metadata::search_repositories`; `conn` is in a snapshot transaction, `terms`
/// are alphanumeric and not empty.
pub(super) async fn search(
    conn: &mut AnyConnection,
    query: &str,
    terms: &[String],
    filter: Option<&RepositoryFilter>,
    limit: u32,
    offset: u32,
) -> Result<SearchPage> {
    // Every term, the last also as a prefix; alphanumeric terms need no quoting.
    let last = terms.len() - 1;
    let tsquery = terms
        .iter()
        .enumerate()
        .map(|(i, t)| if i == last { format!("{t}:*") } else { t.clone() })
        .collect::<Vec<_>>()
        .join(" & ");
    let params = visibility::Params::of(filter);
    // The matches visible to the caller, the visibility parameters from `$first` on.
    let matches = |first| {
        format!(
            "FROM repository_search s JOIN repositories r ON r.id = s.id {joins}
             WHERE {MATCHES} AND {visible}",
            joins = visibility::JOINS,
            visible = visibility::condition(first),
        )
    };
    let count = format!("SELECT count(*) {}", matches(2));
    let total = sqlx::query(&count).bind(&tsquery);
    let total: i64 = visibility::bind(total, &params).fetch_one(&mut *conn).await?.get(0);
    let page = format!(
        "SELECT name FROM (SELECT s.id, s.name, {TIER} AS tier {}) m
         ORDER BY tier, CASE WHEN tier < 2 THEN length(name) END,
                  CASE WHEN tier < 2 THEN name END, id DESC
         LIMIT $7 OFFSET $8",
        matches(3)
    );
    let page = visibility::bind(sqlx::query(&page).bind(&tsquery).bind(query), &params)
        .bind(i64::from(limit))
        .bind(i64::from(offset));
    let rows = page.fetch_all(&mut *conn).await?;
    Ok(SearchPage { names: rows.iter().map(|r| r.get(0)).collect(), total: total as u64 })
}
