//! Many rows as the parameters of one statement, selected by a subquery.
//! SQLite unpacks a JSON array of arrays bound as a single parameter
//! (`json_each`, each row turned into binary JSON once so that picking its
//! columns does not parse it again), so that one prepared statement serves
//! every row count.
//! PostgreSQL gets a `VALUES` list of text parameters instead, whose row
//! count its planner sees (for a JSON function it would guess 100 rows and
//! scan whole tables by hash join); the list is padded with rows of NULLs
//! to a power of two, so that a few prepared statements serve every count.
//! Either way every column is text (or NULL): a statement casts the
//! numbers it reads.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TryGetable, Value};
use serde::Serialize;

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
    match backend {
        DbBackend::Postgres => values_list(columns, rows),
        _ => Ok(Rows {
            sql: format!(
                "SELECT {} FROM (SELECT jsonb(value) AS x FROM json_each(?))",
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, column)| format!("x ->> {i} AS {column}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            values: vec![serde_json::to_string(rows).map_err(encoding)?.into()],
        }),
    }
}

fn values_list<R: Serialize>(columns: &[&str], rows: &[R]) -> Result<Rows, DbErr> {
    let mut values = Vec::with_capacity(rows.len().next_power_of_two() * columns.len());
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
    let count = rows.len().max(1).next_power_of_two();
    values.resize(count * columns.len(), Value::String(None));
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    Ok(Rows {
        sql: format!(
            "SELECT * FROM (VALUES {}) AS v({}) WHERE {} IS NOT NULL",
            vec![row; count].join(", "),
            columns.join(", "),
            columns[0]
        ),
        values,
    })
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
    fn postgres_rows_are_text_padded_with_nulls_to_a_power_of_two() {
        let list = rows(
            DbBackend::Postgres,
            &["i", "n"],
            &[("a", 1), ("b", 2), ("c", 3)],
        )
        .expect("rows");
        assert_eq!(
            list.sql,
            "SELECT * FROM (VALUES (?, ?), (?, ?), (?, ?), (?, ?)) AS v(i, n) WHERE i IS NOT NULL"
        );
        assert_eq!(list.values.len(), 8);
        assert_eq!(list.values[4], Value::from("c"));
        assert_eq!(list.values[5], Value::from("3"));
        assert_eq!(list.values[6], Value::String(None));
        assert_eq!(list.values[7], Value::String(None));
    }

    #[test]
    fn no_rows_still_make_a_valid_list() {
        let none: &[(&str,)] = &[];
        let list = rows(DbBackend::Postgres, &["t"], none).expect("rows");
        assert_eq!(list.values, [Value::String(None)]);
        let list = rows(DbBackend::Sqlite, &["t"], none).expect("rows");
        assert_eq!(list.values, [Value::from("[]")]);
    }

    #[test]
    fn sqlite_rows_are_one_json_parameter() {
        let list = rows(DbBackend::Sqlite, &["o", "u"], &[("acme", "alice")]).expect("rows");
        assert_eq!(
            list.sql,
            "SELECT x ->> 0 AS o, x ->> 1 AS u FROM (SELECT jsonb(value) AS x FROM json_each(?))"
        );
        assert_eq!(list.values, [Value::from(r#"[["acme","alice"]]"#)]);
    }
}
