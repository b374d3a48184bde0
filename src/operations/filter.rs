//! The ListOperations filter grammar: terms joined by ` AND `, each one of
//! `done=true|false`, `target="..."`, `verb="..."`, at most once each.

use crate::error::Error;

/// A parsed filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `done=`.
    pub done: Option<bool>,
    /// `target=`.
    pub target: Option<String>,
    /// `verb=`.
    pub verb: Option<String>,
}

fn bad(description: impl Into<String>) -> Error {
    Error::invalid("filter", description)
}

fn quoted(value: &str) -> Option<&str> {
    value
        .strip_prefix('"')?
        .strip_suffix('"')
        .filter(|inner| !inner.is_empty() && !inner.contains(['"', '\0']))
}

/// Parses `text`; empty means no filter.
pub fn parse(text: &str) -> Result<Filter, Error> {
    let mut filter = Filter::default();
    if text.trim().is_empty() {
        return Ok(filter);
    }
    for term in text.split(" AND ") {
        parse_term(term, &mut filter).map_err(|err| {
            if other_connective(term) {
                bad("join terms with ` AND ` (upper case); OR, NOT and parentheses are not supported")
            } else {
                err
            }
        })?;
    }
    Ok(filter)
}

/// Whether `term`, outside its double-quoted values, uses a connective or
/// grouping this grammar lacks (`OR`, `NOT`, lower-case `and`, parentheses).
fn other_connective(term: &str) -> bool {
    let mut quoted = false;
    let unquoted: String = term
        .chars()
        .filter(|&c| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && c != '"'
        })
        .collect();
    unquoted.contains(['(', ')'])
        || unquoted.split_whitespace().any(|word| {
            ["or", "and", "not"]
                .iter()
                .any(|connective| word.eq_ignore_ascii_case(connective))
        })
}

/// Parses one `key=value` term into `filter`.
fn parse_term(term: &str, filter: &mut Filter) -> Result<(), Error> {
    let (key, value) = term
        .split_once('=')
        .ok_or_else(|| bad(format!("`{}` is not `key=value`", term.trim())))?;
    let (key, value) = (key.trim(), value.trim());
    let duplicate = || bad(format!("`{key}` appears more than once"));
    match key {
        "done" => {
            let done = match value {
                "true" => true,
                "false" => false,
                _ => return Err(bad("done must be true or false")),
            };
            if filter.done.replace(done).is_some() {
                return Err(duplicate());
            }
        }
        "target" | "verb" => {
            let value = quoted(value)
                .ok_or_else(|| bad(format!("{key} needs a non-empty double-quoted value")))?
                .to_owned();
            let slot = if key == "target" {
                &mut filter.target
            } else {
                &mut filter.verb
            };
            if slot.replace(value).is_some() {
                return Err(duplicate());
            }
        }
        other => {
            return Err(bad(format!(
                "unknown field `{other}`; use done, target or verb"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_term() {
        let f = parse(
            r#"done=false AND target="organizations/o1/users/u1" AND verb="AssignUserRoles""#,
        )
        .expect("valid");
        assert_eq!(f.done, Some(false));
        assert_eq!(f.target.as_deref(), Some("organizations/o1/users/u1"));
        assert_eq!(f.verb.as_deref(), Some("AssignUserRoles"));
        assert_eq!(parse("").expect("valid"), Filter::default());
        assert_eq!(parse("done=true").expect("valid").done, Some(true));
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "done=yes",
            "done=true AND done=false",
            "target=organizations/o1",
            r#"verb="""#,
            r#"name="x""#,
            "done=true OR done=false",
            "done",
            r#"done=true and verb="x""#,
            r#"target="a"b""#,
            "verb=\"a\0b\"",
        ] {
            assert!(parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn names_the_missing_connectives() {
        for text in [
            "done=true OR done=false",
            r#"done=true and verb="x""#,
            "NOT done=true",
            r#"(verb="x")"#,
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains("join terms with ` AND `"), "{text}: {err}");
        }
        let err = parse(r#"verb="a OR b" AND done=maybe"#)
            .expect_err("bad done")
            .to_string();
        assert!(err.contains("done must be true or false"), "{err}");
    }
}
