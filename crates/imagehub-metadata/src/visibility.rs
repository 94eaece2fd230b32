//! The one SQL condition for "this caller may see this repository", shared by the
//! catalog, namespace listings and search.

use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::RepositoryFilter;

/// Joins the condition needs, on a query over `repositories r`.
pub(crate) const JOINS: &str = "LEFT JOIN repository_visibility rv ON rv.name = r.name LEFT JOIN namespaces ns ON ns.name = r.namespace";

/// The condition, taking its four parameters from `?{first}` on (bind them with [`bind`]).
pub(crate) fn condition(first: usize) -> String {
    let (all, only, public, namespaces) = (first, first + 1, first + 2, first + 3);
    format!(
        "(${all} OR ((${only} IS NULL OR r.namespace IN (SELECT value FROM json_each(${only})))
          AND ((${public} AND COALESCE(rv.visibility, ns.default_visibility, 'private') = 'public')
               OR r.namespace IN (SELECT value FROM json_each(${namespaces})))))"
    )
}

/// The condition's parameters for a filter (`None`: everything).
pub(crate) struct Params {
    all: bool,
    only: Option<String>,
    public: bool,
    namespaces: String,
}

impl Params {
    pub(crate) fn of(filter: Option<&RepositoryFilter>) -> Params {
        match filter {
            None => Params { all: true, only: None, public: false, namespaces: "[]".into() },
            Some(f) => Params {
                all: false,
                only: f
                    .only_namespaces
                    .as_ref()
                    .map(|n| serde_json::Value::from(n.clone()).to_string()),
                public: f.public,
                namespaces: serde_json::Value::from(f.namespaces.clone()).to_string(),
            },
        }
    }
}

/// Binds the condition's parameters, in order, after those already bound.
pub(crate) fn bind<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    params: &'q Params,
) -> Query<'q, Any, AnyArguments<'q>> {
    query
        .bind(params.all)
        .bind(params.only.as_deref())
        .bind(params.public)
        .bind(params.namespaces.as_str())
}
