//! Substitution that cannot inject: an upstream job's attribute reaches a downstream command as
//! data in every context where a placeholder is allowed, a placeholder inside quotes is refused
//! at import with the way to write it, and a stored definition that breaks the rule does not run.

use std::time::Duration;

use crate::helpers::*;

/// The values an attacker would hand downstream: command substitution, backquotes, a `;`.
fn hostile(proof: &str) -> [String; 3] {
    [
        format!("$(touch {proof})"),
        format!("`touch {proof}`"),
        format!("x; touch {proof}"),
    ]
}

#[tokio::test]
async fn an_upstream_value_is_data_in_every_allowed_context() {
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("proof");
    let proof = proof.to_str().unwrap();
    for value in hostile(proof) {
        // The upstream job prints the attribute; its own command is the author's, quoted as
        // the author likes.
        let emit = format!(
            "printf '%s\\n' 'PINBALL:EVENT_ATTR:x={}'",
            value.replace('\'', "")
        );
        let yaml = format!(
            "workflows:\n  w:\n    jobs:\n      up: {{command: {emit:?}}}\n      bare: {{command: 'echo Z=%(x)s', depends_on: [up]}}\n      subst: {{command: 'echo \"$(echo %(x)s)\"', depends_on: [up]}}\n      backq: {{command: 'echo `echo %(x)s`', depends_on: [up]}}\n      env: {{command: 'echo \"Z=$PINBALL_ATTR_x\"', depends_on: [up]}}\n"
        );
        let c = cluster(&yaml, 2, 3600).await;
        let i = c.start("w").await;
        c.wait_finished("w", &i, Duration::from_secs(30)).await;
        let jobs = c.jobs("w", &i).await;
        let out = |j: &str| c.log(&jobs[j].job.history[0], "stdout");
        assert_eq!(out("bare"), format!("Z={value}\n"), "{value}");
        assert_eq!(out("subst"), format!("{value}\n"), "{value}");
        assert_eq!(out("env"), format!("Z={value}\n"), "{value}");
        assert!(out("backq").contains("touch"), "{value}: {}", out("backq"));
        assert!(
            !std::path::Path::new(proof).exists(),
            "{value} was run as a command"
        );
        c.stop().await;
    }
}

#[tokio::test]
async fn a_placeholder_inside_quotes_is_refused_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let master = crate::helpers::master_with(dir.path(), "").await;
    for (command, quotes) in [
        (r#"echo "Z=%(x)s""#, "double quotes"),
        (r#"sh -c "echo %(x)s""#, "double quotes"),
        ("echo 'Z=%(x)s'", "single quotes"),
        // Every form the security review ran as code (issue 22, M1), each named for what it is.
        ("sh <<EOF\necho %(x)s\nEOF", "here-document"),
        (r#"sh -c "echo "%(x)s"#, "glued to a quote"),
        ("sh -c 'echo '%(x)s", "glued to a quote"),
        ("echo $(( %(x)s * 2 ))", "arithmetic"),
        ("[[ %(x)s -eq 1 ]]", "[[ ]] test"),
        ("let n=%(x)s", "`let`"),
        ("declare -i n=%(x)s", "`declare -i`"),
        ("typeset -i n=%(x)s", "`typeset -i`"),
        ("env A=1 sh -c %(x)s", "`sh -c`"),
        ("eval %(x)s", "`eval`"),
        ("su -c %(x)s", "`su`"),
        ("ssh host %(x)s", "`ssh`"),
        ("xargs %(x)s", "`xargs`"),
    ] {
        let defs = dir.path().join("defs.yaml");
        std::fs::write(
            &defs,
            format!("workflows:\n  quoted:\n    jobs:\n      j: {{command: {command:?}}}\n"),
        )
        .unwrap();
        let config = dir.path().join("import.yaml");
        std::fs::write(
            &config,
            format!(
                "master_port: {}\nparser_params:\n  workflows_config: {}\n",
                master.port,
                defs.display()
            ),
        )
        .unwrap();
        let out = pinball_out(
            &["-c", config.to_str().unwrap(), "import", "-f"],
            dir.path(),
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needed in [
            "defs.yaml",
            "quoted",
            "job j",
            quotes,
            "\"$PINBALL_ATTR_x\"",
        ] {
            assert!(stderr.contains(needed), "{command}: {needed} in {stderr}");
        }
    }
}

#[tokio::test]
async fn a_stored_command_that_breaks_the_rule_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("proof");
    let c = cluster(&one_job("w", "j: {command: 'echo ok'}"), 1, 3600).await;
    let i = c.start("w").await;
    c.wait_finished("w", &i, Duration::from_secs(30)).await;
    // A job as an older version stored it: a placeholder inside double quotes, with a hostile
    // value waiting in its triggering event.
    let hostile = format!("$(touch {})", proof.display());
    c.plant_runnable(("w", &i, "j"), "777", |data| {
        data["command"] = "sh -c \"echo %(x)s\"".into();
        data["events"] = serde_json::json!([{"creator": "up", "attributes": {"x": hostile}}]);
    })
    .await;
    let jobs = c
        .wait_for("w", "777", Duration::from_secs(30), "the job ran", |ts| {
            ts.iter().any(|t| {
                t.data
                    .as_deref()
                    .is_some_and(|d| d.contains("\"exit_code\":2"))
            })
        })
        .await;
    assert!(!jobs.is_empty());
    let r = &c.jobs("w", "777").await["j"].job.history[0];
    assert_eq!(r.exit_code, Some(2));
    let stderr = c.log(r, "stderr");
    assert!(stderr.contains("inside double quotes"), "{stderr}");
    assert!(!proof.exists(), "the hostile value was run");
    c.stop().await;
}
