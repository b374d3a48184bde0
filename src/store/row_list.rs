//! Many rows as the parameters of one statement, selected by a subquery.
//! A list goes as `VALUES` of text parameters, padded with rows of NULLs to
//! a power of two so that a few prepared statements serve every count. The
//! planner sees how many rows there are (PostgreSQL guesses 100 for a JSON
//! function, and then scans whole tables by hash join), and each field is
//! bound as it is instead of being escaped into JSON, parsed and unescaped
//! again (on SQLite that was a third of the cost of inserting a batch of
//! operations, whose results are kilobytes of JSON each). A list with more
//! parameters than [`MAX_LISTED`] goes as one JSON array instead, within
//! both databases' limits on parameters.
//! Either way every column is text (or NULL): a statement casts the
//! numbers it reads.

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, IdenStatic, Statement, TryGetable, Value,
    sea_query::{Expr, SimpleExpr},
};
use serde::Serialize;

/// Most parameters of a `VALUES` list (SQLite allows 32,766 in a statement,
/// PostgreSQL 65,535).
const MAX_LISTED: usize = 4096;

/// Keys or rows per statement of a long list: stays far below every
/// backend's parameter limit.
pub(crate) const CHUNK: usize = 500;

/// A subquery and the parameters its `?` placeholders take, in order.
#[derive(Debug)]
pub(crate) struct Rows {
    /// Selects element `i` of every row under the name `columns[i]`.
    pub sql: String,
    /// Its parameters.
    pub values: Vec<Value>,
}

/// `rows` (tuples of strings, integers and options of them) as a subquery
/// with the column names `columns`.
pub(crate) fn rows<R: Serialize>(
    backend: DbBackend,
    columns: &[&str],
    rows: &[R],
) -> Result<Rows, DbErr> {
    if padded(rows.len()) * columns.len() <= MAX_LISTED {
        values_list(columns, rows)
    } else {
        json_array(backend, columns, rows)
    }
}

/// The rows a `VALUES` list of `count` rows has, padding included.
fn padded(count: usize) -> usize {
    count.max(1).next_power_of_two()
}

fn values_list<R: Serialize>(columns: &[&str], rows: &[R]) -> Result<Rows, DbErr> {
    let count = padded(rows.len());
    let mut values = Vec::with_capacity(count * columns.len());
    for row in rows {
        let serde_json::Value::Array(fields) = serde_json::to_value(row).map_err(encoding)? else {
            return Err(DbErr::Custom("a statement row is not a tuple".into()));
        };
        if fields.len() != columns.len() {
            return Err(DbErr::Custom("a statement row has the wrong width".into()));
        }
        for field in fields {
            values.push(match field {
                serde_json::Value::String(s) => Value::from(s),
                serde_json::Value::Null => Value::String(None),
                other => Value::from(other.to_string()),
            });
        }
    }
    values.resize(count * columns.len(), Value::String(None));
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    Ok(Rows {
        sql: format!(
            "SELECT {} FROM (VALUES {}) AS v WHERE column1 IS NOT NULL",
            picks(columns, |i| format!("column{}", i + 1)),
            vec![row; count].join(", "),
        ),
        values,
    })
}

fn json_array<R: Serialize>(
    backend: DbBackend,
    columns: &[&str],
    rows: &[R],
) -> Result<Rows, DbErr> {
    // Each SQLite row is turned into binary JSON once, so that picking its
    // columns does not parse it again.
    let elements = match backend {
        DbBackend::Postgres => "jsonb_array_elements(CAST(? AS jsonb)) AS x",
        _ => "(SELECT jsonb(value) AS x FROM json_each(?))",
    };
    Ok(Rows {
        sql: format!(
            "SELECT {} FROM {elements}",
            picks(columns, |i| format!("x ->> {i}"))
        ),
        values: vec![serde_json::to_string(rows).map_err(encoding)?.into()],
    })
}

/// `column(i) AS columns[i]`, for each column.
fn picks(columns: &[&str], column: impl Fn(usize) -> String) -> String {
    columns
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{} AS {name}", column(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sql` with `{rows}` standing for the subquery of `rows` (with the column
/// names `columns`); its parameters are `before`, those of the rows and
/// `after`, in that order.
pub(crate) fn statement<R: Serialize>(
    backend: DbBackend,
    sql: &str,
    columns: &[&str],
    rows: &[R],
    before: Vec<Value>,
    after: Vec<Value>,
) -> Result<Statement, DbErr> {
    let list = self::rows(backend, columns, rows)?;
    let mut values = before;
    values.extend(list.values);
    values.extend(after);
    Ok(super::statement(
        backend,
        &sql.replace("{rows}", &list.sql),
        values,
    ))
}

/// `first`, then `last`, as one SQLite statement: sqlx runs every statement
/// of an SQLite query's text, in order, binding the `?` parameters of each
/// in turn, and returns the rows of all (only `last` should return any).
/// PostgreSQL prepares one statement at a time, so it takes no such list.
pub(crate) fn in_sequence(first: Vec<Statement>, last: Statement) -> Statement {
    let mut sql = Vec::new();
    let mut values = Vec::new();
    for statement in first.into_iter().chain([last]) {
        sql.push(statement.sql);
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql.join(";\n"), values)
}

/// `column IN (...)` with `values` as a subquery of their rows instead of
/// a parameter each. PostgreSQL switches a prepared statement to a generic
/// plan after five runs, and a generic plan compares each row it scans
/// with every parameter of an `IN ($1, $2, ...)` list, where it hashes the
/// rows of a subquery: before an organization of 10,000 new users was
/// analyzed, looking up 500 of them took 150 ms instead of 2.
pub(crate) fn is_in(
    backend: DbBackend,
    column: impl IdenStatic,
    values: &[String],
) -> Result<SimpleExpr, DbErr> {
    let keys: Vec<_> = values.iter().map(|v| (v,)).collect();
    let list = rows(backend, &["v"], &keys)?;
    let sql = format!("\"{}\" IN ({})", column.as_str(), list.sql);
    Ok(Expr::cust_with_values(
        super::placeholders(backend, &sql),
        list.values,
    ))
}

/// Runs `select`, with `{rows}` standing for the subquery of `rows` (with
/// the column names `columns`), and collects the columns `first` and
/// `second` of each row it returns.
pub(crate) async fn select_pairs<R, A, B, C>(
    db: &impl ConnectionTrait,
    select: &str,
    columns: &[&str],
    rows: &[R],
    (first, second): (&str, &str),
) -> Result<C, DbErr>
where
    R: Serialize,
    A: TryGetable,
    B: TryGetable,
    C: FromIterator<(A, B)>,
{
    let select = statement(
        db.get_database_backend(),
        select,
        columns,
        rows,
        vec![],
        vec![],
    )?;
    db.query_all(select)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", first)?, row.try_get("", second)?)))
        .collect()
}

fn encoding(err: serde_json::Error) -> DbErr {
    DbErr::Custom(format!("cannot encode statement rows: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_text_padded_with_nulls_to_a_power_of_two() {
        let list = rows(
            DbBackend::Postgres,
            &["i", "n"],
            &[("a", 1), ("b", 2), ("c", 3)],
        )
        .expect("rows");
        assert_eq!(
            list.sql,
            "SELECT column1 AS i, column2 AS n FROM (VALUES (?, ?), (?, ?), (?, ?), (?, ?)) AS v \
             WHERE column1 IS NOT NULL"
        );
        assert_eq!(list.values.len(), 8);
        assert_eq!(list.values[4], Value::from("c"));
        assert_eq!(list.values[5], Value::from("3"));
        assert_eq!(list.values[6], Value::String(None));
        assert_eq!(list.values[7], Value::String(None));
    }

    #[test]
    fn an_in_list_is_a_subquery_numbered_after_the_parameters_before_it() {
        use crate::store::entities::user;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryTrait};
        let ids = ["u1".to_owned(), "u2".to_owned(), "u3".to_owned()];
        let select = user::Entity::find()
            .filter(user::Column::OrganizationId.eq("acme"))
            .filter(is_in(DbBackend::Postgres, user::Column::UserId, &ids).expect("in"))
            .build(DbBackend::Postgres);
        assert!(
            select.sql.ends_with(
                r#"WHERE "users"."organization_id" = $1 AND ("user_id" IN (SELECT column1 AS v FROM (VALUES ($2), ($3), ($4), ($5)) AS v WHERE column1 IS NOT NULL))"#
            ),
            "{}",
            select.sql
        );
        let values = select.values.expect("values").0;
        assert_eq!(values[0], Value::from("acme"));
        assert_eq!(values[3], Value::from("u3"));
        assert_eq!(values[4], Value::String(None));
    }

    #[test]
    fn no_rows_still_make_a_valid_list() {
        let none: &[(&str,)] = &[];
        let list = rows(DbBackend::Sqlite, &["t"], none).expect("rows");
        assert_eq!(list.values, [Value::String(None)]);
    }

    #[test]
    fn a_long_list_is_one_json_parameter() {
        let many: Vec<_> = (0..MAX_LISTED).map(|i| ("acme", i)).collect();
        let list = rows(DbBackend::Sqlite, &["o", "n"], &many).expect("rows");
        assert_eq!(
            list.sql,
            "SELECT x ->> 0 AS o, x ->> 1 AS n FROM (SELECT jsonb(value) AS x FROM json_each(?))"
        );
        assert_eq!(list.values.len(), 1);
        let list = rows(DbBackend::Postgres, &["o", "n"], &many).expect("rows");
        assert_eq!(
            list.sql,
            "SELECT x ->> 0 AS o, x ->> 1 AS n FROM jsonb_array_elements(CAST(? AS jsonb)) AS x"
        );
    }
}
