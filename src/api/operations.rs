//! `google.longrunning.Operations`, scoped to the caller's organizations.

use super::{Api, Ctx};
use crate::{
    auth::Scope,
    domain::{names, paging::PageRequest},
    error::{Error, Result},
    operations::{Operation, filter},
    pb::longrunning::{self, operations_server as server},
    store::operations::ListFilter,
};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The service, ready to add to a server.
pub fn operations_service(api: Api) -> server::OperationsServer<Api> {
    server::OperationsServer::new(api)
}

/// The id inside `operations/{uuid}`.
fn operation_id(name: &str) -> Result<&str> {
    name.strip_prefix("operations/")
        .filter(|id| uuid::Uuid::try_parse(id).is_ok())
        .ok_or_else(|| Error::invalid("name", "must be `operations/{uuid}`"))
}

impl Api {
    /// Checks `scope`, then loads the operation and checks its organization
    /// (without naming it to a caller who may not act on it).
    async fn visible_operation(&self, ctx: &Ctx, name: &str, scope: Scope) -> Result<Operation> {
        ctx.principal.require_scope(scope)?;
        let op = self.queue.get(operation_id(name)?).await?;
        ctx.principal
            .authorize(scope, &op.organization_id)
            .map_err(|err| match err {
                Error::OrganizationForbidden { .. } => Error::OperationForbidden,
                other => other,
            })?;
        Ok(op)
    }
}

#[tonic::async_trait]
impl server::Operations for Api {
    async fn list_operations(
        &self,
        request: Request<longrunning::ListOperationsRequest>,
    ) -> Result<Response<longrunning::ListOperationsResponse>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                ctx.principal.require_scope(Scope::Read)?;
                let parsed = filter::parse(&m.filter)?;
                if let Some(org) = parsed.target.as_deref().and_then(names::organization_of) {
                    ctx.principal.authorize(Scope::Read, org)?;
                }
                if !matches!(m.name.as_str(), "" | "operations") {
                    return Err(Error::invalid("name", "must be empty or `operations`"));
                }
                let visible = ctx.principal.visible_organization().map(str::to_owned);
                let params = format!("{visible:?}|{parsed:?}");
                let page =
                    PageRequest::parse(m.page_size, &m.page_token, &["operations", &params])?;
                let list_filter = ListFilter {
                    organization_id: visible,
                    done: parsed.done,
                    target: parsed.target,
                    verb: parsed.verb,
                };
                let page = self.queue.list(&list_filter, page).await?;
                Ok(longrunning::ListOperationsResponse {
                    operations: page
                        .items
                        .into_iter()
                        .map(super::convert::operation)
                        .collect(),
                    next_page_token: page.next_page_token,
                })
            }
            .await,
        )
    }

    async fn get_operation(
        &self,
        request: Request<longrunning::GetOperationRequest>,
    ) -> Result<Response<longrunning::Operation>, Status> {
        let (ctx, m) = self.begin(request)?;
        let result = self.visible_operation(&ctx, &m.name, Scope::Read).await;
        ctx.respond_operation(result)
    }

    async fn delete_operation(
        &self,
        request: Request<longrunning::DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                let op = self.visible_operation(&ctx, &m.name, Scope::Write).await?;
                self.queue.delete(&op.id).await
            }
            .await,
        )
    }

    async fn cancel_operation(
        &self,
        request: Request<longrunning::CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let (ctx, m) = self.begin(request)?;
        ctx.respond(
            async {
                let op = self.visible_operation(&ctx, &m.name, Scope::Write).await?;
                self.queue.cancel(&op.id).await
            }
            .await,
        )
    }

    async fn wait_operation(
        &self,
        request: Request<longrunning::WaitOperationRequest>,
    ) -> Result<Response<longrunning::Operation>, Status> {
        let (ctx, m) = self.begin(request)?;
        let result = async {
            let op = self.visible_operation(&ctx, &m.name, Scope::Read).await?;
            let timeout = match m.timeout {
                None => self.max_wait,
                Some(t) => Duration::try_from(t)
                    .map_err(|_| Error::invalid("timeout", "must not be negative"))?
                    .min(self.max_wait),
            };
            self.queue.wait(&op.id, timeout).await
        }
        .await;
        ctx.respond_operation(result)
    }
}
