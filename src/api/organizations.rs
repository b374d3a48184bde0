//! `rolekeeper.v1.OrganizationService`.

use super::{Api, convert};
use crate::{
    auth::Scope,
    domain::paging::PageRequest,
    error::Error,
    pb::v1::{self, organization_service_server as server},
};
use tonic::{Request, Response, Status};

/// The service, ready to add to a server.
pub fn organization_service(api: Api) -> server::OrganizationServiceServer<Api> {
    server::OrganizationServiceServer::new(api)
}

fn missing(field: &str) -> Error {
    Error::invalid(field, "is required")
}

#[tonic::async_trait]
impl server::OrganizationService for Api {
    async fn create_organization(
        &self,
        request: Request<v1::CreateOrganizationRequest>,
    ) -> Result<Response<v1::Organization>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.require_scope(Scope::Admin)?;
                let o = m.organization.ok_or_else(|| missing("organization"))?;
                let created = self
                    .queue
                    .service()
                    .create_organization(crate::domain::model::Organization {
                        organization_id: o.organization_id,
                        display_name: o.display_name,
                        create_time: 0,
                    })
                    .await?;
                Ok(convert::organization(created))
            }
            .await,
        )
    }

    async fn get_organization(
        &self,
        request: Request<v1::GetOrganizationRequest>,
    ) -> Result<Response<v1::Organization>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let o = self
                    .queue
                    .service()
                    .get_organization(&m.organization_id)
                    .await?;
                Ok(convert::organization(o))
            }
            .await,
        )
    }

    async fn list_organizations(
        &self,
        request: Request<v1::ListOrganizationsRequest>,
    ) -> Result<Response<v1::ListOrganizationsResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.require_scope(Scope::Admin)?;
                let page = PageRequest::parse(m.page_size, &m.page_token, &["organizations"])?;
                let page = self.queue.service().list_organizations(page).await?;
                Ok(v1::ListOrganizationsResponse {
                    organizations: page.items.into_iter().map(convert::organization).collect(),
                    next_page_token: page.next_page_token,
                })
            }
            .await,
        )
    }

    async fn create_user(
        &self,
        request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                let user = convert::user_in(m.user.ok_or_else(|| missing("user"))?);
                let created = self
                    .queue
                    .service()
                    .create_user(&m.organization_id, user)
                    .await?;
                Ok(convert::user(created))
            }
            .await,
        )
    }

    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let user = self
                    .queue
                    .service()
                    .get_user(&m.organization_id, &m.user_id)
                    .await?;
                Ok(convert::user(user))
            }
            .await,
        )
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let page =
                    PageRequest::parse(m.page_size, &m.page_token, &["users", &m.organization_id])?;
                let page = self
                    .queue
                    .service()
                    .list_users(&m.organization_id, page)
                    .await?;
                Ok(v1::ListUsersResponse {
                    users: page.items.into_iter().map(convert::user).collect(),
                    next_page_token: page.next_page_token,
                })
            }
            .await,
        )
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                self.queue
                    .service()
                    .delete_user(&m.organization_id, &m.user_id)
                    .await
            }
            .await,
        )
    }

    async fn create_workspace(
        &self,
        request: Request<v1::CreateWorkspaceRequest>,
    ) -> Result<Response<v1::Workspace>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                let workspace =
                    convert::workspace_in(m.workspace.ok_or_else(|| missing("workspace"))?);
                let created = self
                    .queue
                    .service()
                    .create_workspace(&m.organization_id, workspace)
                    .await?;
                Ok(convert::workspace(created))
            }
            .await,
        )
    }

    async fn get_workspace(
        &self,
        request: Request<v1::GetWorkspaceRequest>,
    ) -> Result<Response<v1::Workspace>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let w = self
                    .queue
                    .service()
                    .get_workspace(&m.organization_id, &m.workspace_id)
                    .await?;
                Ok(convert::workspace(w))
            }
            .await,
        )
    }

    async fn list_workspaces(
        &self,
        request: Request<v1::ListWorkspacesRequest>,
    ) -> Result<Response<v1::ListWorkspacesResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Read, &m.organization_id)?;
                let page = PageRequest::parse(
                    m.page_size,
                    &m.page_token,
                    &["workspaces", &m.organization_id],
                )?;
                let page = self
                    .queue
                    .service()
                    .list_workspaces(&m.organization_id, page)
                    .await?;
                Ok(v1::ListWorkspacesResponse {
                    workspaces: page.items.into_iter().map(convert::workspace).collect(),
                    next_page_token: page.next_page_token,
                })
            }
            .await,
        )
    }

    async fn delete_workspace(
        &self,
        request: Request<v1::DeleteWorkspaceRequest>,
    ) -> Result<Response<()>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.authorize(Scope::Write, &m.organization_id)?;
                self.queue
                    .service()
                    .delete_workspace(&m.organization_id, &m.workspace_id)
                    .await
            }
            .await,
        )
    }
}
