//! The summaries of archived instances are written by the master's process as it archives, with
//! no dashboard running: lists and the scheduler read them.

use std::time::Duration;

use pinball::master::MasterClient;
use pinball::storage::{self, Table};

use crate::helpers::*;

#[tokio::test]
async fn the_masters_process_summarises_what_it_archives_without_a_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = workflows_config(
        d,
        "pinball.yaml",
        port,
        "workflows:\n  s:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'false', depends_on: [a]}\n",
        "worker_poll_time_sec: 1\narchive_delay_sec: 0\n",
    );
    let cfg = config.to_str().unwrap();
    let _all = spawn_pinball(&["-c", cfg, "-m", "master,workers"], d);
    let client = pinball::master::HttpMasterClient::new("127.0.0.1", port, quick_policy());
    wait_until(Duration::from_secs(60), "the master answers", || async {
        client.query_prefix("/").await.is_ok()
    })
    .await;
    pinball_ok(
        &config,
        &[&["import", "-f"], &["util", "-f", "-w", "s", "start"]],
        d,
    )
    .await;
    let url = format!("sqlite://{}", d.join("pinball.db").display());
    let store = storage::open(&url).unwrap();
    wait_until(
        Duration::from_secs(60),
        "the instance is summarised",
        || async {
            let (page, _) = store.summaries("default", "s", 0, 10).await.unwrap();
            !page.is_empty()
        },
    )
    .await;
    let (page, total) = store.summaries("default", "s", 0, 10).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(page[0].status, "FAILURE", "{page:?}");
    let archived = store
        .read("default", Table::Archived, &page[0].prefix)
        .await
        .unwrap();
    assert!(!archived.is_empty(), "summarised from its archived tokens");
    let data: serde_json::Value = serde_json::from_str(&page[0].data).unwrap();
    assert_eq!(data["jobs"], 2);
    assert_eq!(data["failed_jobs"], 1);
    assert!(
        store.archive_queue("default", 10).await.unwrap().is_empty(),
        "what was summarised left the queue"
    );
}
