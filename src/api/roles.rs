//! `rolekeeper.v1.RoleService`.

use super::{Api, convert};
use crate::{
    auth::Scope,
    domain::{commands::Command, paging::PageRequest, validate::non_empty},
    error::Error,
    pb::{
        encoded::Encoded,
        longrunning::Operation,
        v1::{self, role_service_server as server},
    },
};
use tonic::{Request, Response, Status};

/// The service, ready to add to a server.
pub fn role_service(api: Api) -> server::RoleServiceServer<Api> {
    server::RoleServiceServer::new(api)
}

impl Api {
    /// Authorizes a bulk command for writing and submits it.
    pub(super) async fn submit(
        &self,
        request: Request<(String, String, Result<Command, Error>)>,
    ) -> Result<Response<Operation>, Status> {
        let (ctx, (organization_id, request_id, command)) = self.begin(request)?;
        let result = async {
            ctx.principal.authorize(Scope::Write, &organization_id)?;
            self.queue
                .submit(&ctx.principal.sub, &ctx.request_id, &request_id, command?)
                .await
        }
        .await;
        ctx.respond_operation(result)
    }
}

/// Moves a request's message into the `(organization, request id, command)`
/// triple that [`Api::submit`] takes, keeping metadata and extensions.
pub(super) fn command_request<T>(
    request: Request<T>,
    parts: impl FnOnce(T) -> (String, String, Result<Command, Error>),
) -> Request<(String, String, Result<Command, Error>)> {
    request.map(parts)
}

#[tonic::async_trait]
impl server::RoleService for Api {
    async fn create_role(
        &self,
        request: Request<v1::CreateRoleRequest>,
    ) -> Result<Response<Encoded<v1::Role>>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                let role = m
                    .role
                    .ok_or_else(|| Error::invalid("role", "is required"))?;
                let draft = convert::role_in(role)?;
                let created = self
                    .queue
                    .service()
                    .create_role(&m.organization_id, draft)
                    .await?;
                Ok(convert::encoded_role(&created))
            }
            .await,
        )
    }

    async fn get_role(
        &self,
        request: Request<v1::GetRoleRequest>,
    ) -> Result<Response<Encoded<v1::Role>>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let role = self
                    .queue
                    .service()
                    .get_role(&m.organization_id, &m.role_id)
                    .await?;
                Ok(convert::encoded_role(&role))
            }
            .await,
        )
    }

    async fn list_roles(
        &self,
        request: Request<v1::ListRolesRequest>,
    ) -> Result<Response<v1::ListRolesResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let scope = convert::scope_in("scope", m.scope)?;
                let page = PageRequest::parse(
                    m.page_size,
                    &m.page_token,
                    &["roles", &m.organization_id, &m.scope.to_string()],
                )?;
                let page = self
                    .queue
                    .service()
                    .list_roles(&m.organization_id, scope, page)
                    .await?;
                Ok(v1::ListRolesResponse {
                    roles: page.items.iter().map(convert::role).collect(),
                    next_page_token: page.next_page_token,
                })
            }
            .await,
        )
    }

    async fn update_role(
        &self,
        request: Request<v1::UpdateRoleRequest>,
    ) -> Result<Response<Encoded<v1::Role>>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.require_scope(Scope::Write)?;
                let role = m
                    .role
                    .ok_or_else(|| Error::invalid("role", "is required"))?;
                ctx.principal
                    .authorize(Scope::Write, &role.organization_id)?;
                let draft = convert::role_in(role)?;
                let paths = m.update_mask.map(|mask| mask.paths).unwrap_or_default();
                let updated = self.queue.service().update_role(draft, &paths).await?;
                Ok(convert::encoded_role(&updated))
            }
            .await,
        )
    }

    async fn delete_role(
        &self,
        request: Request<v1::DeleteRoleRequest>,
    ) -> Result<Response<()>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                self.queue
                    .service()
                    .delete_role(&m.organization_id, &m.role_id, m.force)
                    .await
            }
            .await,
        )
    }

    async fn assign_user_roles(
        &self,
        request: Request<v1::AssignUserRolesRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.submit(command_request(request, |m| {
            let command = Command::AssignUserRoles {
                organization_id: m.organization_id.clone(),
                user_id: m.user_id,
                role_ids: m.role_ids,
            };
            (m.organization_id, m.request_id, Ok(command))
        }))
        .await
    }

    async fn revoke_user_roles(
        &self,
        request: Request<v1::RevokeUserRolesRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.submit(command_request(request, |m| {
            let command = Command::RevokeUserRoles {
                organization_id: m.organization_id.clone(),
                user_id: m.user_id,
                role_ids: m.role_ids,
            };
            (m.organization_id, m.request_id, Ok(command))
        }))
        .await
    }

    async fn list_user_roles(
        &self,
        request: Request<v1::ListUserRolesRequest>,
    ) -> Result<Response<Encoded<v1::UserRoles>>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let roles = self
                    .queue
                    .service()
                    .list_user_roles(&m.organization_id, &m.user_id)
                    .await?;
                Ok(convert::encoded_user_roles(&roles))
            }
            .await,
        )
    }

    async fn add_role_members(
        &self,
        request: Request<v1::AddRoleMembersRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.submit(command_request(request, |m| {
            let command = convert::user_refs(m.users).map(|users| Command::AddRoleMembers {
                organization_id: m.organization_id.clone(),
                role_id: m.role_id,
                users,
            });
            (m.organization_id, m.request_id, command)
        }))
        .await
    }

    async fn remove_role_members(
        &self,
        request: Request<v1::RemoveRoleMembersRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.submit(command_request(request, |m| {
            let command = convert::user_refs(m.users).map(|users| Command::RemoveRoleMembers {
                organization_id: m.organization_id.clone(),
                role_id: m.role_id,
                users,
            });
            (m.organization_id, m.request_id, command)
        }))
        .await
    }

    async fn list_role_members(
        &self,
        request: Request<v1::ListRoleMembersRequest>,
    ) -> Result<Response<v1::ListRoleMembersResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let page = PageRequest::parse(
                    m.page_size,
                    &m.page_token,
                    &["role_members", &m.organization_id, &m.role_id],
                )?;
                let page = self
                    .queue
                    .service()
                    .list_role_members(&m.organization_id, &m.role_id, page)
                    .await?;
                Ok(v1::ListRoleMembersResponse {
                    user_ids: page.items,
                    next_page_token: page.next_page_token,
                })
            }
            .await,
        )
    }

    async fn check_permission(
        &self,
        request: Request<v1::CheckPermissionRequest>,
    ) -> Result<Response<v1::CheckPermissionResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let workspace = non_empty(&m.workspace_id);
                let result = self
                    .queue
                    .service()
                    .check_permission(
                        &m.organization_id,
                        &m.user_id,
                        &m.permission,
                        workspace.as_deref(),
                    )
                    .await?;
                Ok(convert::check_result(result))
            }
            .await,
        )
    }
}
