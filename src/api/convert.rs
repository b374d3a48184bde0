//! Protobuf <-> domain conversions. Enum values a client sends that this
//! version does not know are `INVALID_ARGUMENT`, never silently a default.

use crate::{
    domain::{
        commands::Outcome,
        model::{
            BaseRole, CheckResult, Decision, Membership, Organization, Permission, Role,
            RoleMembersChange, RoleScope, User, UserRef, UserRoles, Workspace,
        },
        names,
        roles::{PermissionDraft, RoleDraft},
        validate::non_empty,
    },
    error::{Error, Result},
    operations::Operation,
    pb::{encoded::Encoded, longrunning, rpc, v1},
};
use prost::Message;
use prost_types::{Any, Timestamp};

/// Microseconds since the epoch as a protobuf timestamp.
pub fn timestamp(micros: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    })
}

/// Organization to protobuf.
pub fn organization(o: Organization) -> v1::Organization {
    v1::Organization {
        organization_id: o.organization_id,
        display_name: o.display_name,
        create_time: timestamp(o.create_time),
    }
}

/// User to protobuf.
pub fn user(u: User) -> v1::User {
    v1::User {
        organization_id: u.organization_id,
        user_id: u.user_id,
        email: u.email.unwrap_or_default(),
        aad_id: u.aad_id.unwrap_or_default(),
        auth0_id: u.auth0_id.unwrap_or_default(),
        display_name: u.display_name,
        create_time: timestamp(u.create_time),
    }
}

/// User from protobuf (ids and time are set by the domain).
pub fn user_in(u: v1::User) -> User {
    User {
        organization_id: u.organization_id,
        user_id: u.user_id,
        email: non_empty(&u.email),
        aad_id: non_empty(&u.aad_id),
        auth0_id: non_empty(&u.auth0_id),
        display_name: u.display_name,
        create_time: 0,
    }
}

/// Workspace to protobuf.
pub fn workspace(w: Workspace) -> v1::Workspace {
    v1::Workspace {
        organization_id: w.organization_id,
        workspace_id: w.workspace_id,
        display_name: w.display_name,
        create_time: timestamp(w.create_time),
    }
}

/// Workspace from protobuf.
pub fn workspace_in(w: v1::Workspace) -> Workspace {
    Workspace {
        organization_id: w.organization_id,
        workspace_id: w.workspace_id,
        display_name: w.display_name,
        create_time: 0,
    }
}

fn scope_out(scope: RoleScope) -> v1::RoleScope {
    match scope {
        RoleScope::Organization => v1::RoleScope::Organization,
        RoleScope::Workspace => v1::RoleScope::Workspace,
    }
}

/// A role scope from the wire; unspecified is `None`.
pub fn scope_in(field: &str, value: i32) -> Result<Option<RoleScope>> {
    match v1::RoleScope::try_from(value) {
        Ok(v1::RoleScope::Unspecified) => Ok(None),
        Ok(v1::RoleScope::Organization) => Ok(Some(RoleScope::Organization)),
        Ok(v1::RoleScope::Workspace) => Ok(Some(RoleScope::Workspace)),
        Err(_) => Err(Error::invalid(field, format!("unknown scope {value}"))),
    }
}

fn permission(p: &Permission) -> v1::Permission {
    v1::Permission {
        name: p.name.clone(),
        description: p.description.clone(),
        access: Some(p.access),
    }
}

/// Role to protobuf. By reference: roles are answered from shared cached
/// values, and copying straight into the message is the only copy.
pub fn role(r: &Role) -> v1::Role {
    v1::Role {
        etag: r.etag(),
        organization_id: r.organization_id.clone(),
        role_id: r.role_id.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        scope: scope_out(r.scope).into(),
        permissions: r.permissions.iter().map(permission).collect(),
        create_time: timestamp(r.create_time),
        update_time: timestamp(r.update_time),
    }
}

/// Role to protobuf, encoded: once per shared value.
pub fn encoded_role(r: &Role) -> Encoded<v1::Role> {
    Encoded::memoized(&r.encoding, || role(r))
}

/// Role draft from protobuf.
pub fn role_in(r: v1::Role) -> Result<RoleDraft> {
    Ok(RoleDraft {
        scope: scope_in("role.scope", r.scope)?,
        organization_id: r.organization_id,
        role_id: r.role_id,
        name: r.name,
        description: r.description,
        permissions: r
            .permissions
            .into_iter()
            .map(|p| PermissionDraft {
                name: p.name,
                description: p.description,
                access: p.access,
            })
            .collect(),
        etag: r.etag,
    })
}

fn base_role_out(role: BaseRole) -> v1::WorkspaceRole {
    match role {
        BaseRole::Owner => v1::WorkspaceRole::Owner,
        BaseRole::Editor => v1::WorkspaceRole::Editor,
        BaseRole::Viewer => v1::WorkspaceRole::Viewer,
    }
}

/// A base role from the wire; unspecified is `None`.
pub fn base_role_in(value: i32) -> Result<Option<BaseRole>> {
    match v1::WorkspaceRole::try_from(value) {
        Ok(v1::WorkspaceRole::Unspecified) => Ok(None),
        Ok(v1::WorkspaceRole::Owner) => Ok(Some(BaseRole::Owner)),
        Ok(v1::WorkspaceRole::Editor) => Ok(Some(BaseRole::Editor)),
        Ok(v1::WorkspaceRole::Viewer) => Ok(Some(BaseRole::Viewer)),
        Err(_) => Err(Error::invalid(
            "role",
            format!("unknown workspace role {value}"),
        )),
    }
}

/// Membership to protobuf.
pub fn membership(m: Membership) -> v1::WorkspaceMembership {
    v1::WorkspaceMembership {
        membership_id: m.membership_id,
        organization_id: m.organization_id,
        workspace_id: m.workspace_id,
        user_id: m.user_id,
        role: base_role_out(m.base_role).into(),
        roles: m.roles.iter().map(role).collect(),
        create_time: timestamp(m.create_time),
        update_time: timestamp(m.update_time),
    }
}

/// User roles to protobuf.
pub fn user_roles(u: &UserRoles) -> v1::UserRoles {
    v1::UserRoles {
        organization_id: u.organization_id.clone(),
        user_id: u.user_id.clone(),
        roles: u.roles.iter().map(|r| role(r)).collect(),
    }
}

/// User roles to protobuf, encoded: once per shared value.
pub fn encoded_user_roles(u: &UserRoles) -> Encoded<v1::UserRoles> {
    Encoded::memoized(&u.encoding, || user_roles(u))
}

fn role_members_change(c: RoleMembersChange) -> v1::RoleMembersChange {
    v1::RoleMembersChange {
        organization_id: c.organization_id,
        role_id: c.role_id,
        added_user_ids: c.added_user_ids,
        removed_user_ids: c.removed_user_ids,
        unchanged_user_ids: c.unchanged_user_ids,
    }
}

/// User references from protobuf; an empty `oneof` is `INVALID_ARGUMENT`.
pub fn user_refs(refs: Vec<v1::UserRef>) -> Result<Vec<UserRef>> {
    use v1::user_ref::User as U;
    refs.into_iter()
        .enumerate()
        .map(|(i, r)| match r.user {
            Some(U::UserId(v)) => Ok(UserRef::UserId(v)),
            Some(U::Email(v)) => Ok(UserRef::Email(v)),
            Some(U::AadId(v)) => Ok(UserRef::AadId(v)),
            Some(U::Auth0Id(v)) => Ok(UserRef::Auth0Id(v)),
            None => Err(Error::invalid(
                format!("users[{i}]"),
                "set one of user_id, email, aad_id, auth0_id",
            )),
        })
        .collect()
}

/// Permission decision to protobuf.
pub fn check_result(c: CheckResult) -> v1::CheckPermissionResponse {
    let decision = match c.decision {
        Decision::Granted => v1::Decision::Granted,
        Decision::DeniedExplicitly => v1::Decision::DeniedExplicitly,
        Decision::NoGrant => v1::Decision::NoGrant,
    };
    v1::CheckPermissionResponse {
        allowed: c.decision == Decision::Granted,
        decision: decision.into(),
        matched_role_ids: c.matched_role_ids,
    }
}

fn any<M: prost::Name>(message: &M) -> Option<Any> {
    Any::from_msg(message).ok()
}

/// An error as the `google.rpc.Status` of an operation, with the same
/// details an RPC error would carry.
pub fn rpc_status(err: Error, request_id: &str) -> rpc::Status {
    let status = err.into_status(request_id);
    rpc::Status::decode(status.details()).unwrap_or_else(|_| rpc::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details: Vec::new(),
    })
}

/// An operation as `google.longrunning.Operation`.
pub fn operation(op: Operation) -> longrunning::Operation {
    let metadata = v1::OperationMetadata {
        create_time: timestamp(op.create_time),
        start_time: op.start_time.and_then(timestamp),
        end_time: op.end_time.and_then(timestamp),
        target: op.target,
        verb: op.verb,
        principal: op.principal,
        request_id: op.request_id.unwrap_or_default(),
        requested_items: op.requested_items,
        processed_items: op.processed_items,
        cancel_requested: op.cancel_requested,
    };
    let result = op.result.map(|result| match result {
        Ok(Outcome::UserRoles(u)) => {
            longrunning::operation::Result::Response(any(&user_roles(&u)).unwrap_or_default())
        }
        Ok(Outcome::RoleMembers(c)) => longrunning::operation::Result::Response(
            any(&role_members_change(c)).unwrap_or_default(),
        ),
        Ok(Outcome::Membership(m)) => {
            longrunning::operation::Result::Response(any(&membership(m)).unwrap_or_default())
        }
        Err(err) => longrunning::operation::Result::Error(rpc_status(err, &op.trace_id)),
    });
    longrunning::Operation {
        name: names::operation(&op.id),
        metadata: any(&metadata),
        done: op.done,
        result,
    }
}
