//! A master client that passes every call through to the master over HTTP, except those a
//! test overrides: [`Through`]'s methods say what to do, [`Via`] makes it a `MasterClient`.

use pinball::master::{HttpMasterClient, MasterClient, MasterError};
use pinball::token::*;

#[async_trait::async_trait]
pub trait Through: Send + Sync {
    fn inner(&self) -> &HttpMasterClient;

    async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.inner().modify(req).await
    }
    async fn query(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        self.inner().query(req).await
    }
    async fn query_and_own(
        &self,
        req: QueryAndOwnRequest,
    ) -> Result<QueryAndOwnResponse, MasterError> {
        self.inner().query_and_own(req).await
    }
    async fn append_log(&self, req: LogRequest) -> Result<LogResponse, MasterError> {
        self.inner().append_log(req).await
    }
    async fn group(&self, req: GroupRequest) -> Result<GroupResponse, MasterError> {
        self.inner().group(req).await
    }
}

/// `T` as the master client workers take.
pub struct Via<T>(pub T);

#[async_trait::async_trait]
impl<T: Through> MasterClient for Via<T> {
    async fn modify(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.0.modify(req).await
    }
    async fn renew(&self, req: ModifyRequest) -> Result<ModifyResponse, MasterError> {
        self.0.inner().renew(req).await
    }
    async fn query(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        self.0.query(req).await
    }
    async fn query_held(&self, req: QueryRequest) -> Result<QueryResponse, MasterError> {
        self.0.inner().query_held(req).await
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
        self.0.inner().archive(req).await
    }
    async fn health(&self) -> Result<Health, MasterError> {
        self.0.inner().health().await
    }
    async fn audit(&self, req: AuditRequest) -> Result<AuditResponse, MasterError> {
        self.0.inner().audit(req).await
    }
    async fn append_log(&self, req: LogRequest) -> Result<LogResponse, MasterError> {
        self.0.append_log(req).await
    }
}
