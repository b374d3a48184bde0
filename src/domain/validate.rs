//! Input rules shared by every RPC. Each check names the offending field
//! with its full path so callers see `role.permissions[2].name`.

use crate::error::{Error, Violation};
use std::collections::HashSet;

/// Longest caller-chosen id.
pub const MAX_ID_LEN: usize = 63;
/// Longest role name.
pub const MAX_ROLE_NAME: usize = 3000;
/// Longest display name or description.
pub const MAX_TEXT: usize = 3000;
/// Longest e-mail address.
pub const MAX_EMAIL: usize = 254;
/// Longest external identity (Azure AD or Auth0 id).
pub const MAX_EXTERNAL_ID: usize = 256;
/// Most role ids in one Assign/Revoke call.
pub const MAX_ROLE_IDS: usize = 1000;
/// Most users in one AddRoleMembers/RemoveRoleMembers call.
pub const MAX_USERS: usize = 10_000;
/// Most permissions in one role.
pub const MAX_PERMISSIONS: usize = 1000;

/// Collects violations so a request reports all of its problems at once.
#[derive(Debug, Default)]
pub struct Checker {
    violations: Vec<Violation>,
}

impl Checker {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn fail(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(Violation::new(field, description));
    }

    /// `field` must be a well-formed, non-empty id.
    pub fn id(&mut self, field: &str, value: &str) {
        if let Err(problem) = id_problem(value) {
            self.fail(field, problem);
        }
    }

    /// `field` must be a UUID: an id the server assigned.
    pub fn server_assigned(&mut self, field: &str, value: &str) {
        if uuid::Uuid::try_parse(value).is_err() {
            self.fail(field, "must be a UUID (the server assigns these ids)");
        }
    }

    /// `field` must be a well-formed id or empty (then one is generated).
    pub fn optional_id(&mut self, field: &str, value: &str) {
        if !value.is_empty() {
            self.id(field, value);
        }
    }

    /// `field` is free text: at most `max` characters, no NUL (which
    /// PostgreSQL cannot store in text).
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        } else if value.contains('\0') {
            self.fail(field, "must not contain NUL characters");
        }
    }

    /// `field` must be a permission name.
    pub fn permission_name(&mut self, field: &str, value: &str) {
        if !is_permission_name(value) {
            self.fail(
                field,
                "must match [a-z][a-z0-9_.:-]{0,127}, e.g. `documents.write`",
            );
        }
    }

    /// `field` must be empty or a UUID (AIP-155 request ids).
    pub fn request_id(&mut self, field: &str, value: &str) {
        if !value.is_empty() && uuid::Uuid::try_parse(value).is_err() {
            self.fail(field, "must be a UUID");
        }
    }

    /// `field` must hold 1..=`max` distinct well-formed ids.
    pub fn id_list(&mut self, field: &str, values: &[String], max: usize) {
        if values.is_empty() || values.len() > max {
            self.fail(field, format!("must hold between 1 and {max} ids"));
            return;
        }
        let mut seen = HashSet::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            let path = format!("{field}[{i}]");
            if !seen.insert(value.as_str()) {
                self.fail(path, format!("duplicate id `{value}`"));
            } else {
                self.id(&path, value);
            }
        }
    }

    /// `field` must be a plausible e-mail address.
    pub fn email(&mut self, field: &str, value: &str) {
        if value.chars().count() > MAX_EMAIL {
            self.fail(field, format!("must be at most {MAX_EMAIL} characters"));
        } else if !is_email(value) {
            self.fail(field, "must be an e-mail address with exactly one `@`");
        }
    }

    /// `field` must be a non-empty external id without spaces or controls.
    pub fn external_id(&mut self, field: &str, value: &str) {
        if value.is_empty()
            || value.chars().count() > MAX_EXTERNAL_ID
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.fail(
                field,
                format!("must be 1 to {MAX_EXTERNAL_ID} characters without spaces"),
            );
        }
    }

    /// `Ok` without violations, else `INVALID_ARGUMENT` with all of them.
    pub fn finish(self) -> Result<(), Error> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.violations))
        }
    }
}

fn id_problem(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        Err("is required")
    } else if value.len() > MAX_ID_LEN
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Err("must be 1-63 characters of [A-Za-z0-9_-]")
    } else {
        Ok(())
    }
}

/// Whether `value` is a well-formed id.
pub fn is_id(value: &str) -> bool {
    id_problem(value).is_ok()
}

/// Whether `value` matches `[a-z][a-z0-9_.:-]{0,127}`.
pub fn is_permission_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_lowercase()
        && bytes[1..].iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

fn is_email(value: &str) -> bool {
    let mut parts = value.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && !domain.is_empty()
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        _ => false,
    }
}

/// `INVALID_ARGUMENT` unless every `(field, value)` is a well-formed id.
pub fn ids(fields: &[(&str, &str)]) -> Result<(), Error> {
    let mut check = Checker::new();
    for (field, value) in fields {
        check.id(field, value);
    }
    check.finish()
}

/// `INVALID_ARGUMENT` unless `o`/`w`/`m` can name a membership.
pub fn membership(o: &str, w: &str, m: &str) -> Result<(), Error> {
    let mut check = Checker::new();
    check.id("organization_id", o);
    check.id("workspace_id", w);
    check.server_assigned("membership_id", m);
    check.finish()
}

/// A new id: the caller's, or a UUIDv7 when it left the id empty.
pub fn id_or_generated(value: &str) -> String {
    if value.is_empty() {
        uuid::Uuid::now_v7().to_string()
    } else {
        value.to_owned()
    }
}

/// A string field that is empty when unset.
pub fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_id("role_1-A"));
        assert!(!is_id(""));
        assert!(!is_id("a b"));
        assert!(!is_id(&"x".repeat(64)));
        assert!(is_id(&"x".repeat(63)));
    }

    #[test]
    fn permission_names() {
        assert!(is_permission_name("documents.write"));
        assert!(is_permission_name("a:b-c_d.e9"));
        assert!(!is_permission_name("Documents"));
        assert!(!is_permission_name("9docs"));
        assert!(!is_permission_name(&format!("a{}", "b".repeat(128))));
    }

    #[test]
    fn id_lists_report_each_bad_entry() {
        let mut check = Checker::new();
        check.id_list("role_ids", &["a".into(), "a".into(), "b c".into()], 10);
        let Err(Error::InvalidArgument(v)) = check.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["role_ids[1]", "role_ids[2]"]);
    }

    #[test]
    fn emails() {
        let ok = |e: &str| {
            let mut c = Checker::new();
            c.email("email", e);
            c.finish().is_ok()
        };
        assert!(ok("a@b.c"));
        assert!(!ok("a@@b"));
        assert!(!ok("ab"));
        assert!(!ok("a b@c"));
        assert!(!ok(&format!("{}@b.c", "a".repeat(251))));
    }
}
