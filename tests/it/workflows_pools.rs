//! Worker pools: a job that names a pool runs only on workers that serve it, and workers that
//! serve other pools pass over it without holding anything up.

use std::time::Duration;

use crate::helpers::cluster;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_pool_job_runs_only_on_the_workers_of_its_pool() {
    // `big` and `beside` become runnable together; two idle default workers take `beside`
    // and pass over `big`, which waits until a worker of pool heavy comes.
    let c = cluster(
        "workflows:\n  w:\n    jobs:\n      a: {command: 'true'}\n      big: {command: 'echo heavy', pool: heavy, depends_on: [a]}\n      beside: {command: 'true', depends_on: [a]}\n      after: {command: 'true', depends_on: [big]}\n",
        2,
        600,
    )
    .await;
    let i = c.start("w").await;
    c.wait_for("w", &i, LONG, "beside has run", |ts| {
        ts.iter().any(|t| {
            t.name.ends_with("/beside")
                && t.data.as_deref().is_some_and(|d| d.contains("exit_code"))
        })
    })
    .await;
    let jobs = c.jobs("w", &i).await;
    let big = &jobs["big"];
    assert!(
        big.job.history.is_empty() && big.token.owner.is_none(),
        "no default worker took the heavy job: {:?}",
        big.job.history
    );
    let heavy = c.add_pool_workers(1, 7, &["heavy"]);
    c.wait_finished("w", &i, LONG).await;
    let jobs = c.jobs("w", &i).await;
    // Worker names are `<host>_<generation>_...`: the heavy workers are generation 7.
    let host = pinball::token::name::to_word(&pinball::config::host_name());
    let generation_of = |j: &str| {
        let h = &jobs[j].job.history;
        assert_eq!(h.len(), 1, "{j} ran once: {h:?}");
        assert_eq!(h[0].exit_code, Some(0), "{j}");
        let rest = h[0].worker.strip_prefix(&format!("{host}_")).unwrap();
        rest.split('_').next().unwrap().to_owned()
    };
    assert_eq!(generation_of("big"), "7", "big ran on the heavy worker");
    for j in ["a", "beside", "after"] {
        assert_eq!(generation_of(j), "1", "{j} ran on a default worker");
    }
    heavy.stop().await;
    c.stop().await;
}
