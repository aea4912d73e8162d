//! One master per database (issue 23, F1), with real processes: a second `pinball -m master` on
//! the same SQLite file and master name stops at start with the first one's address, and the
//! first serves on; another master name on the same file is a master of its own.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_second_master_on_one_sqlite_file_stops_and_says_who_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pinball.db").display());
    let config = write_config(dir.path(), &url, "default");
    let first = start_master_process(&config).await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        pinball_out(
            &["-c", config.to_str().unwrap(), "-m", "master"],
            dir.path(),
        ),
    )
    .await
    .expect("the second master stops at once");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("master default is already served by")
            && err.contains(&format!(":{}", first.port)),
        "{err}"
    );
    // The first still serves.
    let (status, _) = ready(first.port).await;
    assert_eq!(status, 200);
    // A master of another name on the same file is not held up.
    let other = write_config(dir.path(), &url, "other");
    let second = start_master_process(&other).await;
    assert_eq!(ready(second.port).await.0, 200);
    // Once the first is gone, a master of its name starts again.
    drop(first);
    wait_until(
        Duration::from_secs(30),
        "a new master takes the file",
        || async {
            let mut child = spawn_pinball(
                &["-c", config.to_str().unwrap(), "-m", "master"],
                dir.path(),
            );
            let stopped = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let started = stopped.is_err();
            let _ = child.kill().await;
            started
        },
    )
    .await;
}
