//! `grpc.health.v1.Health`: tonic-health's service, except that a `Watch`
//! stream ends once the server starts draining, right after it has sent
//! `NOT_SERVING`. Otherwise an open watch (a sidecar's, a load balancer's)
//! would hold a stopping server until its drain timeout.

use crate::{api::CallInfo, monitor::shutting_down};
use std::{
    pin::Pin,
    task::{Context, Poll},
};
use tokio::sync::watch;
use tokio_stream::{Stream, wrappers::WatchStream};
use tonic::{Request, Response, Status};
use tonic_health::{
    pb::{
        HealthCheckRequest, HealthCheckResponse,
        health_server::{Health, HealthServer},
    },
    server::{self as upstream, HealthReporter, HealthService},
};

/// The health service over `reporter`'s statuses; its watches end when
/// `draining` turns true.
pub fn service(
    reporter: &HealthReporter,
    draining: watch::Receiver<bool>,
) -> HealthServer<DrainingHealth> {
    HealthServer::new(DrainingHealth {
        inner: HealthService::from_health_reporter(reporter.clone()),
        draining,
    })
}

/// tonic-health's service with watches that end on draining.
#[derive(Debug)]
pub struct DrainingHealth {
    inner: HealthService,
    draining: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Health for DrainingHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = UntilDrained;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let request_id = request
            .extensions()
            .get::<CallInfo>()
            .map(|call| call.request_id.clone())
            .unwrap_or_default();
        let updates = self.inner.watch(request).await?.into_inner();
        Ok(Response::new(UntilDrained {
            updates,
            draining: WatchStream::new(self.draining.clone()),
            request_id,
            ended: false,
        }))
    }
}

/// A watch's status updates until the server drains; then it ends with
/// `UNAVAILABLE` (`SHUTTING_DOWN`), like any call refused while draining.
pub struct UntilDrained {
    updates: upstream::WatchStream,
    draining: WatchStream<bool>,
    request_id: String,
    ended: bool,
}

impl Stream for UntilDrained {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        // Updates first: the server reports NOT_SERVING before it drains,
        // and that update must reach the watcher.
        if let Poll::Ready(update) = Pin::new(&mut self.updates).poll_next(cx) {
            return Poll::Ready(update);
        }
        while let Poll::Ready(draining) = Pin::new(&mut self.draining).poll_next(cx) {
            if draining != Some(false) {
                self.ended = true;
                let refusal = shutting_down().into_status(&self.request_id);
                return Poll::Ready(Some(Err(refusal)));
            }
        }
        Poll::Pending
    }
}
