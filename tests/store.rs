//! Statements that take many rows as parameters: a short list goes as
//! `VALUES`, a long one as one JSON array. Both must give the same answers
//! on both databases, and on PostgreSQL the same as a version connection
//! (which asks with an array parameter, outside the pool).

#[macro_use]
mod common;

use common::*;
use rolekeeper::store::{
    Store,
    acl_versions::{self, VersionConnection},
};
use sea_orm::DbBackend;

backend_tests!(short_and_long_row_lists_give_the_same_answers);

async fn short_and_long_row_lists_give_the_same_answers(server: TestServer) {
    let store = Store::connect(server.database_url())
        .await
        .expect("connect");
    let names: Vec<String> = (0..5000).map(|i| format!("org-{i:05}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let (few, many) = (&all[..3], &all[..]);
    for bumped in [many, few] {
        let tx = store.write().await.expect("begin");
        acl_versions::bump(&*tx, bumped, None).await.expect("bump");
        tx.commit().await.expect("commit");
    }
    let mut own = match store.backend() {
        DbBackend::Postgres => Some(VersionConnection::open(&store).await.expect("open")),
        _ => None,
    };
    for asked in [few, many] {
        let versions = acl_versions::current(store.reader(), asked)
            .await
            .expect("versions");
        if let Some(own) = &mut own {
            assert_eq!(own.current(asked).await.expect("versions"), versions);
        }
        assert_eq!(versions.len(), asked.len());
        for (i, name) in asked.iter().enumerate() {
            let expected = if i < few.len() { 2 } else { 1 };
            assert_eq!(versions.get(*name), Some(&expected), "{name}");
        }
    }
    let unknown = acl_versions::current(store.reader(), &["org-x"])
        .await
        .expect("versions");
    assert!(unknown.is_empty());
    store.close().await.expect("close");
}
