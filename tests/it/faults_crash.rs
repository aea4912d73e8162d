//! A master process under concurrent write load is killed with SIGKILL. After a restart every
//! acknowledged write is there, no rejected write is, and new versions exceed all old ones.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinball::master::client::RetryPolicy;
use pinball::master::{HttpMasterClient, MasterClient, MasterError};
use pinball::token::*;

use crate::helpers::*;

/// What one writer knows about its own token when the master dies.
#[derive(Debug, Default, Clone)]
struct Ledger {
    acked: Option<Token>,
    in_flight: Option<String>,
    rejected: Vec<String>,
}

async fn writer(client: HttpMasterClient, id: usize, ledger: Arc<Mutex<Ledger>>) {
    let name = format!("/crash/{id}");
    let mut current: Option<Token> = None;
    for seq in 0.. {
        if seq % 5 == 4 && current.is_some() {
            // A write that must be refused: an insert of a name that exists.
            let data = format!("REJECTED {id}:{seq}");
            match client
                .modify(ModifyRequest::update(vec![Token::new(
                    &name,
                    Some(data.clone()),
                )]))
                .await
            {
                Err(MasterError::VersionConflict(_)) => ledger.lock().unwrap().rejected.push(data),
                Ok(_) => panic!("an insert of an existing name was accepted"),
                Err(_) => return,
            }
            continue;
        }
        let data = format!("{id}:{seq}");
        let token = Token {
            data: Some(data.clone()),
            ..current.clone().unwrap_or_else(|| Token::new(&name, None))
        };
        ledger.lock().unwrap().in_flight = Some(data);
        match client.modify(ModifyRequest::update(vec![token])).await {
            Ok(mut r) => {
                let stored = r.updates.remove(0);
                let mut l = ledger.lock().unwrap();
                l.acked = Some(stored.clone());
                l.in_flight = None;
                current = Some(stored);
            }
            Err(_) => return, // the master died mid-request: the outcome is unknown
        }
    }
}

async fn kill_under_load(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let name = unique_master("crash");
    let config = write_config(dir.path(), url, &name);
    let mut master = start_master_process(&config).await;
    let no_retry = RetryPolicy {
        attempts: 1,
        ..Default::default()
    };
    let client = HttpMasterClient::new("127.0.0.1", master.port, no_retry);
    let ledgers: Vec<_> = (0..16)
        .map(|_| Arc::new(Mutex::new(Ledger::default())))
        .collect();
    let tasks: Vec<_> = ledgers
        .iter()
        .enumerate()
        .map(|(i, l)| tokio::spawn(writer(client.clone(), i, l.clone())))
        .collect();
    // Kill it in the middle of the load: once every writer has had writes acknowledged and
    // refused.
    wait_until(
        Duration::from_secs(30),
        "every writer has written",
        || async {
            ledgers.iter().all(|l| {
                let l = l.lock().unwrap();
                l.acked.is_some() && l.rejected.len() >= 2
            })
        },
    )
    .await;
    master.child.start_kill().unwrap();
    master.child.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }

    let restarted = start_master_process(&config).await;
    let client = HttpMasterClient::new("127.0.0.1", restarted.port, RetryPolicy::default());
    let stored = client.query_prefix("/crash/").await.unwrap();
    let mut acked_writes = 0;
    let mut max_version = 0;
    for (id, ledger) in ledgers.iter().enumerate() {
        let l = ledger.lock().unwrap().clone();
        let Some(acked) = l.acked else { continue };
        acked_writes += 1;
        max_version = max_version.max(acked.version.unwrap());
        let t = stored
            .iter()
            .find(|t| t.name == format!("/crash/{id}"))
            .unwrap_or_else(|| panic!("{url}: /crash/{id} was acknowledged but is gone"));
        let data = t.data.clone().unwrap();
        assert!(
            t == &acked || Some(&data) == l.in_flight.as_ref(),
            "{url}: /crash/{id} holds {data:?}; the last acknowledged write was {:?} (in flight: {:?})",
            acked.data,
            l.in_flight
        );
        assert!(
            !l.rejected.contains(&data) && !data.starts_with("REJECTED"),
            "{url}: a rejected write was stored"
        );
        max_version = max_version.max(t.version.unwrap());
    }
    assert!(
        acked_writes >= 8,
        "{url}: the load ran ({acked_writes} writers got acknowledgements)"
    );
    let fresh = client
        .modify(ModifyRequest::update(vec![Token::new(
            "/crash/after",
            None,
        )]))
        .await
        .unwrap();
    assert!(
        fresh.updates[0].version.unwrap() > max_version,
        "{url}: versions continue above every old one"
    );
    drop(restarted);
}

#[tokio::test]
async fn a_master_killed_under_load_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    for url in backends(
        &dir,
        "a_master_killed_under_load_keeps_every_acknowledged_write",
    ) {
        kill_under_load(&url).await;
    }
}
