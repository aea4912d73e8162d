//! The master as a client of itself: for components in its own process (`-m all`).

use async_trait::async_trait;

use super::client::MasterClient;
use super::service::Master;
use crate::token::*;

/// A client of a master running in this process (tests, `-m all` without a network hop).
#[derive(Clone)]
pub struct LocalMasterClient(pub Master);

#[async_trait]
impl MasterClient for LocalMasterClient {
    async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.0.modify(req).await
    }
    async fn query(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        self.0.query(req).await
    }
    async fn query_and_own(
        &self,
        req: QueryAndOwnRequest,
    ) -> Result<QueryAndOwnResponse, MasterError> {
        self.0.query_and_own(req).await
    }
    async fn group(&self, req: GroupRequest) -> Result<GroupResponse, MasterError> {
        self.0.group(req).await
    }
    async fn archive(&self, req: ArchiveRequest) -> Result<ArchiveResponse, MasterError> {
        self.0.archive(req).await
    }
    async fn health(&self) -> Result<Health, MasterError> {
        self.0.health().await
    }
    async fn audit(&self, req: AuditRequest) -> Result<AuditResponse, MasterError> {
        self.0.audit(req, "in-process").await
    }
    async fn append_log(&self, req: LogRequest) -> Result<LogResponse, MasterError> {
        self.0.append_log(req).await
    }
}
