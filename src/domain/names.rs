//! Resource names and types used in error details and operation targets.

/// `ResourceInfo.resource_type` values.
pub mod types {
    /// An organization.
    pub const ORGANIZATION: &str = "rolekeeper.v1.Organization";
    /// A user.
    pub const USER: &str = "rolekeeper.v1.User";
    /// A workspace.
    pub const WORKSPACE: &str = "rolekeeper.v1.Workspace";
    /// A role.
    pub const ROLE: &str = "rolekeeper.v1.Role";
    /// A workspace membership.
    pub const MEMBERSHIP: &str = "rolekeeper.v1.WorkspaceMembership";
    /// A long-running operation.
    pub const OPERATION: &str = "google.longrunning.Operation";
}

/// `organizations/{o}`.
pub fn organization(o: &str) -> String {
    format!("organizations/{o}")
}

/// `organizations/{o}/users/{u}`.
pub fn user(o: &str, u: &str) -> String {
    format!("organizations/{o}/users/{u}")
}

/// `organizations/{o}/roles/{r}`.
pub fn role(o: &str, r: &str) -> String {
    format!("organizations/{o}/roles/{r}")
}

/// `organizations/{o}/workspaces/{w}`.
pub fn workspace(o: &str, w: &str) -> String {
    format!("organizations/{o}/workspaces/{w}")
}

/// `organizations/{o}/workspaces/{w}/memberships/{m}`.
pub fn membership(o: &str, w: &str, m: &str) -> String {
    format!("organizations/{o}/workspaces/{w}/memberships/{m}")
}

/// `operations/{id}`.
pub fn operation(id: &str) -> String {
    format!("operations/{id}")
}

/// The organization id inside a resource name `organizations/{o}/...`.
pub fn organization_of(name: &str) -> Option<&str> {
    name.strip_prefix("organizations/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .filter(|o| !o.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn organization_of_names() {
        assert_eq!(
            super::organization_of("organizations/o1/users/u"),
            Some("o1")
        );
        assert_eq!(super::organization_of("organizations/o1"), Some("o1"));
        assert_eq!(super::organization_of("organizations/"), None);
        assert_eq!(super::organization_of("operations/x"), None);
    }
}
