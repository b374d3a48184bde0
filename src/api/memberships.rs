//! `rolekeeper.v1.WorkspaceMembershipService`.

use super::{Api, convert, roles::command_request};
use crate::{
    auth::Scope,
    domain::{commands::Command, paging::PageRequest, validate::non_empty},
    pb::{
        longrunning::Operation,
        v1::{self, workspace_membership_service_server as server},
    },
};
use tonic::{Request, Response, Status};

/// The service, ready to add to a server.
pub fn membership_service(api: Api) -> server::WorkspaceMembershipServiceServer<Api> {
    server::WorkspaceMembershipServiceServer::new(api)
}

#[tonic::async_trait]
impl server::WorkspaceMembershipService for Api {
    async fn create_workspace_membership(
        &self,
        request: Request<v1::CreateWorkspaceMembershipRequest>,
    ) -> Result<Response<v1::WorkspaceMembership>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                let role = convert::base_role_in(m.role)?;
                let created = self
                    .queue
                    .service()
                    .create_membership(&m.organization_id, &m.workspace_id, &m.user_id, role)
                    .await?;
                Ok(convert::membership(created))
            }
            .await,
        )
    }

    async fn get_workspace_membership(
        &self,
        request: Request<v1::GetWorkspaceMembershipRequest>,
    ) -> Result<Response<v1::WorkspaceMembership>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let found = self
                    .queue
                    .service()
                    .get_membership(&m.organization_id, &m.workspace_id, &m.membership_id)
                    .await?;
                Ok(convert::membership(found))
            }
            .await,
        )
    }

    async fn list_workspace_memberships(
        &self,
        request: Request<v1::ListWorkspaceMembershipsRequest>,
    ) -> Result<Response<v1::ListWorkspaceMembershipsResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let page = PageRequest::parse(
                    m.page_size,
                    &m.page_token,
                    &[
                        "memberships",
                        &m.organization_id,
                        &m.workspace_id,
                        &m.user_id,
                    ],
                )?;
                let user = non_empty(&m.user_id);
                let page = self
                    .queue
                    .service()
                    .list_memberships(&m.organization_id, &m.workspace_id, user.as_deref(), page)
                    .await?;
                Ok(v1::ListWorkspaceMembershipsResponse {
                    memberships: page.items.into_iter().map(convert::membership).collect(),
                    next_page_token: page.next_page_token,
                })
            }
            .await,
        )
    }

    async fn update_workspace_membership(
        &self,
        request: Request<v1::UpdateWorkspaceMembershipRequest>,
    ) -> Result<Response<v1::WorkspaceMembership>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                let role = convert::base_role_in(m.role)?;
                let updated = self
                    .queue
                    .service()
                    .update_membership(&m.organization_id, &m.workspace_id, &m.membership_id, role)
                    .await?;
                Ok(convert::membership(updated))
            }
            .await,
        )
    }

    async fn delete_workspace_membership(
        &self,
        request: Request<v1::DeleteWorkspaceMembershipRequest>,
    ) -> Result<Response<()>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                self.queue
                    .service()
                    .delete_membership(&m.organization_id, &m.workspace_id, &m.membership_id)
                    .await
            }
            .await,
        )
    }

    async fn assign_membership_roles(
        &self,
        request: Request<v1::AssignMembershipRolesRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.submit(command_request(request, |m| {
            let command = Command::AssignMembershipRoles {
                organization_id: m.organization_id.clone(),
                workspace_id: m.workspace_id,
                membership_id: m.membership_id,
                role_ids: m.role_ids,
            };
            (m.organization_id, m.request_id, Ok(command))
        }))
        .await
    }

    async fn revoke_membership_roles(
        &self,
        request: Request<v1::RevokeMembershipRolesRequest>,
    ) -> Result<Response<Operation>, Status> {
        self.submit(command_request(request, |m| {
            let command = Command::RevokeMembershipRoles {
                organization_id: m.organization_id.clone(),
                workspace_id: m.workspace_id,
                membership_id: m.membership_id,
                role_ids: m.role_ids,
            };
            (m.organization_id, m.request_id, Ok(command))
        }))
        .await
    }
}
