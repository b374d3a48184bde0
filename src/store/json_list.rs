//! Many rows as one statement parameter: a JSON array of arrays that the
//! database unpacks itself (`json_each` on SQLite, `jsonb_array_elements`
//! on PostgreSQL). One prepared statement then serves any number of rows,
//! where `IN (?, ?, …)` would need a statement per row count.

use sea_orm::{DbBackend, DbErr, Value};
use serde::Serialize;

/// A subquery that reads the JSON parameter at its `?` and selects element
/// `i` of every row, as text, under the name `columns[i]`.
pub(crate) fn rows(backend: DbBackend, columns: &[&str]) -> String {
    let picks = columns
        .iter()
        .enumerate()
        .map(|(i, column)| format!("x ->> {i} AS {column}"))
        .collect::<Vec<_>>()
        .join(", ");
    match backend {
        DbBackend::Postgres => {
            format!("SELECT {picks} FROM jsonb_array_elements(CAST(? AS jsonb)) AS t(x)")
        }
        _ => format!("SELECT {picks} FROM (SELECT value AS x FROM json_each(?))"),
    }
}

/// The parameter for [`rows`]: each of `rows` (a tuple) as a JSON array.
pub(crate) fn param<R: Serialize>(rows: &[R]) -> Result<Value, DbErr> {
    serde_json::to_string(rows)
        .map(Value::from)
        .map_err(|err| DbErr::Custom(format!("cannot encode statement rows: {err}")))
}
