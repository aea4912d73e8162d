use super::*;

#[test]
fn an_open_master_lets_anyone_do_everything() {
    let c = Access::open().authenticate(&HeaderMap::new()).unwrap();
    assert_eq!(c.role, Role::Operator);
    assert!(may_write(&c, "/definition/workflow/wf").is_ok());
}

#[test]
fn a_worker_may_not_write_definitions_or_wide_signals() {
    let worker = Caller {
        name: "w".into(),
        role: Role::Worker,
        authenticated: true,
        binding: None,
    };
    assert!(may_write(&worker, "/workflow/wf/1/job/runnable/a").is_ok());
    assert!(may_write(&worker, "/workflow/wf/1/__SIGNAL__/ABORT").is_ok());
    assert!(may_write(&worker, "/workflow/__SIGNAL__/EXIT").is_err());
    assert!(may_write(&worker, "/definition/workflow/wf").is_err());
}
