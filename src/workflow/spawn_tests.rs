use super::*;
use tokio::io::AsyncReadExt;

fn sh(script: &str) -> SpawnSpec<'_> {
    SpawnSpec {
        script,
        env: vec![(OsStr::new("ONLY"), OsStr::new("this"))],
        user: None,
        stdin_piped: false,
    }
}

#[tokio::test]
async fn the_shell_runs_in_its_own_group_with_exactly_its_environment() {
    let mut child = spawn(&sh(
        "echo $ONLY $HOME; echo err >&2; ps -o pgid= -p $$; exit 3",
    ))
    .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(3));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("this"), "nothing but its environment");
    assert_eq!(
        lines.next().map(str::trim),
        Some(child.id().to_string().as_str())
    );
    assert_eq!(err, "err\n");
}

#[tokio::test]
async fn a_command_the_kernel_cannot_take_is_an_error_not_a_child() {
    assert!(spawn(&sh("echo \0")).is_err());
}

/// The shell gets SIGKILL when the thread that started it ends, as when its worker dies
/// (however it dies): no exec of a helper is needed for that any more.
#[test]
fn the_shell_dies_with_the_thread_that_started_it() {
    let pid = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let child = spawn(&sh("sleep 30")).unwrap();
            let pid = child.pid;
            // Not killed by its drop: only the kernel may end it.
            std::mem::forget(child);
            pid
        })
    })
    .join()
    .unwrap();
    let mut status = 0;
    // SAFETY: waitpid on this process's own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    assert_eq!(ExitStatus::from_raw(status).signal(), Some(libc::SIGKILL));
}
