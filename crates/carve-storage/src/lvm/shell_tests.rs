//! [`LvmShell`] against a scripted stand-in for `lvm`'s shell that answers as LVM 2.03.16 does
//! under the `lvmdbusd` profile (the documents below are the lab guest's, trimmed); the real
//! shell is exercised by the guest tier, through the controller.

use super::*;
use csi_common::command::{Expectation, ScriptedRunner};
use std::path::{Path, PathBuf};

/// A stand-in shell: one line per command, answers on stdout; it counts its starts in `starts`
/// and records each line it reads in `lines`.
const FAKE: &str = r#"#!/bin/bash
echo start >> "$DIR/starts"
echo "$HOME" > "$DIR/home"
[ "$LVM_COMMAND_PROFILE" = lvmdbusd ] || { echo "  no profile" >&2; exit 5; }
status() {
  printf '  {\n      "log": [\n          {"log_seq_num":"4", "log_type":"status", "log_context":"shell", "log_object_type":"cmd", "log_object_name":"x", "log_message":"%s", "log_errno":"0", "log_ret_code":"%s"}\n      ]\n  }\n' "$1" "$2"
}
while IFS= read -r line; do
  echo "$line" >> "$DIR/lines"
  set -- $line
  case "$1" in
    version) echo "  LVM version:     2.03.16(2) (2022-05-18)"; status success 1 ;;
    lastlog) printf '  {\n      "log": [\n          {"log_seq_num":"1", "log_type":"error", "log_context":"processing", "log_object_type":"lv", "log_message":"Failed to find logical volume \\"vg/nope\\"", "log_ret_code":"0"},\n          {"log_seq_num":"2", "log_type":"warn", "log_context":"processing", "log_object_type":"lv", "log_message":"WARNING: a warning of the command", "log_ret_code":"0"},\n          {"log_seq_num":"3", "log_type":"print", "log_context":"processing", "log_object_type":"lv", "log_message":"  a printed line", "log_ret_code":"0"},\n          {"log_seq_num":"4", "log_type":"status", "log_context":"shell", "log_object_type":"cmd", "log_message":"failure", "log_ret_code":"5"}\n      ]\n  }\n' ;;
    lvs) printf '  {\n      "report": [\n          {\n              "lv": [\n                  {"lv_name":"a", "lv_size":"67108864", "lv_attr":"Vwi-a-tz--", "lv_tags":"t1", "pool_lv":"pool", "origin":"", "data_percent":"0.00", "metadata_percent":""}\n'; sleep 0.2
         printf '              ]\n          }\n      ]\n      ,\n      "log": [\n          {"log_type":"status", "log_context":"shell", "log_object_type":"cmd", "log_message":"success", "log_ret_code":"1"}\n      ]\n  }\n' ;;
    lvchange) case "$line" in *nope*) echo "  a warning on stderr" >&2; status failure 5 ;; *) status success 1 ;; esac ;;
    lvcreate) status success 1 ;;
    lvextend) sleep 30 ;;
    lvremove) exit 9 ;;
    lvrename) echo '  {"log": ]' ;;
  esac
done
"#;

struct Fake {
    dir: tempfile::TempDir,
    program: PathBuf,
}

impl Fake {
    fn new(script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("lvm");
        let script = script.replacen(
            "#!/bin/bash\n",
            &format!("#!/bin/bash\nDIR={}\n", dir.path().display()),
            1,
        );
        std::fs::write(&program, script).unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Self { dir, program }
    }

    fn shell(&self, inner: &Arc<ScriptedRunner>) -> LvmShell {
        LvmShell::new(Arc::clone(inner) as Arc<dyn CommandRunner>, &[])
            .with_program(self.program.display().to_string())
    }

    fn count(&self, file: &str) -> usize {
        read(&self.dir.path().join(file)).lines().count()
    }

    fn lines(&self) -> Vec<String> {
        read(&self.dir.path().join("lines"))
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn lvs() -> Cmd {
    super::super::argv::lvs("vg", Duration::from_secs(10))
}

#[tokio::test]
async fn a_report_comes_whole_and_the_shell_is_kept_for_the_next_command() {
    let fake = Fake::new(FAKE);
    let inner = Arc::new(ScriptedRunner::new());
    let shell = fake.shell(&inner);
    for _ in 0..3 {
        let out = shell.run(&lvs()).await.unwrap();
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stderr, "");
        // The answer, with its `log` beside the report, reads as `lvs`'s own output.
        let rows = super::super::report::parse_lvs(&out.stdout).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "a");
        assert!(
            out.command.starts_with("lvs --reportformat json"),
            "{}",
            out.command
        );
    }
    assert_eq!(fake.count("starts"), 1, "one shell for three commands");
    assert_eq!(
        read(&fake.dir.path().join("home")),
        "/dev/null\n",
        "no history file can be written"
    );
    assert_eq!(
        fake.lines()[0],
        "version",
        "a new shell answers `version` first"
    );
    assert_eq!(fake.lines().len(), 4);
    inner.finish();
}

#[tokio::test]
async fn a_failure_carries_its_exit_code_and_its_messages_as_stderr() {
    let fake = Fake::new(FAKE);
    let inner = Arc::new(ScriptedRunner::new());
    let shell = fake.shell(&inner);
    let cmd = Cmd::new("lvchange").args(["--addtag", "t", "--", "vg/nope"]);
    let out = shell.run(&cmd).await.unwrap();
    assert_eq!(out.code, Some(5));
    assert!(
        out.stderr.starts_with(
            "  Failed to find logical volume \"vg/nope\"\n  WARNING: a warning of the command\n"
        ),
        "{:?}",
        out.stderr
    );
    assert!(!out.stderr.contains("a printed line"), "{:?}", out.stderr);
    assert!(!out.success());
    assert!(fake.lines().contains(&"lastlog".to_string()));
    // The shell is still good after a failed command, and what it wrote on stderr after that
    // command's answer is not the next command's.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = Cmd::new("lvchange").args(["--addtag", "t", "--", "vg/a"]);
    let out = shell.run(&ok).await.unwrap();
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    assert_eq!(fake.count("starts"), 1);
    inner.finish();
}

#[tokio::test]
async fn a_shell_that_died_while_idle_is_not_given_a_command() {
    let fake = Fake::new(FAKE);
    let inner = Arc::new(ScriptedRunner::new());
    let shell = fake.shell(&inner);
    assert_eq!(shell.run(&lvs()).await.unwrap().code, Some(0));
    let pid = shell.idle.lock().unwrap()[0].child.id().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = shell.run(&lvs()).await.unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(fake.count("starts"), 2);
    inner.finish();
}

#[tokio::test]
async fn a_command_past_its_timeout_kills_the_shell_and_the_next_starts_another() {
    let fake = Fake::new(FAKE);
    let inner = Arc::new(ScriptedRunner::new());
    let shell = fake.shell(&inner);
    let slow = Cmd::new("lvextend")
        .args(["--size", "1b", "--", "vg/a"])
        .timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = shell.run(&slow).await.unwrap_err();
    assert!(matches!(err, CommandError::TimedOut { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(shell.run(&lvs()).await.unwrap().code, Some(0));
    assert_eq!(fake.count("starts"), 2, "the killed shell is not reused");
    inner.finish();
}

#[tokio::test]
async fn a_shell_that_dies_or_babbles_is_a_failure_of_unknown_outcome_and_is_replaced() {
    let fake = Fake::new(FAKE);
    let inner = Arc::new(ScriptedRunner::new());
    let shell = fake.shell(&inner);
    let dies = Cmd::new("lvremove").args(["--yes", "--", "vg/a"]);
    let out = shell.run(&dies).await.unwrap();
    assert_eq!(out.code, None);
    assert!(
        out.stderr.contains("LVM shell: the shell exited"),
        "{out:?}"
    );
    let babbles = Cmd::new("lvrename").args(["vg", "a", "b"]);
    let out = shell.run(&babbles).await.unwrap();
    assert_eq!(out.code, None, "{out:?}");
    assert!(out.stderr.contains("LVM shell:"), "{out:?}");
    assert_eq!(shell.run(&lvs()).await.unwrap().code, Some(0));
    assert_eq!(fake.count("starts"), 3);
    inner.finish();
}

#[tokio::test]
async fn without_a_shell_lvm_runs_as_processes_and_no_shell_is_tried_for_a_while() {
    // The stand-in refuses to start without the profile, as `lvm` does when the profile is
    // missing; here the program itself is missing the profile check's condition.
    let fake = Fake::new(&FAKE.replace("= lvmdbusd", "= no-such-profile"));
    let inner = Arc::new(ScriptedRunner::new());
    inner.expect(Expectation::of(&lvs()).stdout("{\"report\": []}"));
    inner.expect(Expectation::of(&lvs()).stdout("{\"report\": []}"));
    let shell = fake.shell(&inner);
    assert_eq!(shell.run(&lvs()).await.unwrap().stdout, "{\"report\": []}");
    assert_eq!(shell.run(&lvs()).await.unwrap().stdout, "{\"report\": []}");
    assert_eq!(fake.count("starts"), 1, "one try, then processes");
    assert!(
        fake.lines().is_empty(),
        "the real command never went to a shell"
    );
    inner.finish();
}

#[tokio::test]
async fn other_programs_and_commands_with_stdin_go_to_the_wrapped_runner() {
    let fake = Fake::new(FAKE);
    let inner = Arc::new(ScriptedRunner::new());
    let dmsetup = Cmd::new("dmsetup").args(["status", "vg-pool-tpool"]);
    let with_stdin = Cmd::new("lvs").stdin("y\n");
    inner.expect(Expectation::of(&dmsetup));
    inner.expect(Expectation::of(&with_stdin));
    let shell = fake.shell(&inner);
    shell.run(&dmsetup).await.unwrap();
    shell.run(&with_stdin).await.unwrap();
    assert_eq!(fake.count("starts"), 0);
    inner.finish();
}

#[tokio::test]
async fn a_quoted_argument_reaches_the_shell_as_one_word() {
    let fake = Fake::new(FAKE);
    let inner = Arc::new(ScriptedRunner::new());
    let shell = fake.shell(&inner);
    let cmd = Cmd::new("lvcreate").args([
        "--config",
        "backup{retain_min=30 retain_days=0}",
        "--yes",
        "--",
        "vg",
    ]);
    assert_eq!(shell.run(&cmd).await.unwrap().code, Some(0));
    assert_eq!(
        fake.lines()[1],
        "lvcreate --config \"backup{retain_min=30 retain_days=0}\" --yes -- vg"
    );
    inner.finish();
}

#[test]
fn only_what_the_shell_splits_back_exactly_becomes_a_line() {
    let line = |args: &[&str]| shell_line(&Cmd::new("lvs").args(args.iter().copied()));
    assert_eq!(line(&["--", "vg/lv"]).as_deref(), Some("lvs -- vg/lv"));
    assert_eq!(line(&["a b"]).as_deref(), Some("lvs \"a b\""));
    assert_eq!(line(&["a\"b c"]).as_deref(), Some("lvs 'a\"b c'"));
    assert_eq!(line(&[""]).as_deref(), Some("lvs \"\""));
    assert_eq!(line(&["#x"]).as_deref(), Some("lvs \"#x\""));
    assert_eq!(line(&["'x"]).as_deref(), Some("lvs \"'x\""));
    assert_eq!(
        line(&["a\"b"]).as_deref(),
        Some("lvs a\"b"),
        "a quote inside a word is kept"
    );
    // A newline would start a second command; a tab, a control or a non-ASCII character, or
    // both quotes in a spaced word, cannot be carried exactly.
    for bad in ["vg\nlvremove vg", "a\tb", "a\u{7}", "é", "'a\" b"] {
        assert_eq!(line(&[bad]), None, "{bad:?}");
    }
    assert_eq!(line(&["x"; MAX_ARGS]).map(|_| ()), Some(()));
    assert_eq!(line(&["x"; MAX_ARGS + 1]), None);
    assert_eq!(
        shell_line(&Cmd::new("/sbin/lvs")),
        None,
        "a path runs as given"
    );
    assert_eq!(
        shell_line(&Cmd::new("pvremove")),
        None,
        "not a command Carve runs"
    );
    assert_eq!(shell_line(&Cmd::new("lvs").secret_arg("s")), None);
}

#[test]
fn the_status_row_gives_the_exit_code_a_process_would_have() {
    let answer = |code: &str| {
        format!(
            "  {{\"log\": [{{\"log_type\":\"status\", \"log_context\":\"shell\", \
             \"log_object_type\":\"cmd\", \"log_ret_code\":\"{code}\"}}]}}\n"
        )
    };
    assert_eq!(status_code(&answer("1")), Some(0));
    assert_eq!(status_code(&answer("5")), Some(5));
    assert_eq!(status_code(&answer("3")), Some(3));
    assert_eq!(status_code(&answer("x")), None);
    assert_eq!(status_code("  {\"log\": []}\n"), None);
    assert_eq!(status_code("  {\"report\": []}\n"), None);
    assert_eq!(document_span(b"  {\"log\": [").unwrap(), None);
    assert_eq!(
        document_span(b"  LVM version: 2\n  {\"log\": []}\n").unwrap(),
        Some(19..30)
    );
    assert!(document_span(b"  {\"log\": ]").is_err());
    assert_eq!(document_span(b"  LVM version: {2}\n").unwrap(), None);
    // A readline build's prompts, and its echo of a line holding a brace, come before it.
    let text = b"lvm> lvcreate --config 'a{b}'\nlvm> lvm>  {\"log\": []}\nlvm> ";
    let span = document_span(text).unwrap().unwrap();
    assert_eq!(&text[span], b"{\"log\": []}");
}

#[test]
fn an_error_quotes_at_most_a_kibibyte_of_an_answer() {
    let quoted = excerpt(&[b'x'; 5000]);
    assert!(quoted.starts_with(&"x".repeat(EXCERPT)), "{quoted}");
    assert!(quoted.ends_with("… (5000 bytes in all)"), "{quoted}");
    assert_eq!(excerpt(b"short"), "short");
}

/// [`FAKE`] as a readline build of `lvm` answers on a pipe: a prompt before every line, and,
/// with `echo`, the line itself after it.
fn readline_build(echo: bool) -> String {
    let read = "while IFS= read -r line; do\n";
    let echoed = if echo { "  echo \"$line\"\n" } else { "" };
    FAKE.replacen(read, &format!("printf 'lvm> '\n{read}{echoed}"), 1)
        .replacen("\ndone\n", "\n  printf 'lvm> '\ndone\n", 1)
}

#[tokio::test]
async fn a_readline_build_s_prompt_and_echo_are_not_part_of_the_answer() {
    for echo in [false, true] {
        let fake = Fake::new(&readline_build(echo));
        let inner = Arc::new(ScriptedRunner::new());
        let shell = fake.shell(&inner);
        let out = shell.run(&lvs()).await.unwrap();
        assert_eq!(out.code, Some(0), "{out:?}");
        let rows = super::super::report::parse_lvs(&out.stdout).unwrap();
        assert_eq!(rows[0].name, "a", "echo {echo}");
        let create = Cmd::new("lvcreate").args(["--config", "backup{retain_min=30}", "--", "vg"]);
        assert_eq!(shell.run(&create).await.unwrap().code, Some(0));
        let failing = Cmd::new("lvchange").args(["--addtag", "t", "--", "vg/nope"]);
        let out = shell.run(&failing).await.unwrap();
        assert_eq!(out.code, Some(5));
        assert!(out.stderr.starts_with("  Failed to find"), "{out:?}");
        assert_eq!(fake.count("starts"), 1, "echo {echo}");
        inner.finish();
    }
}

#[tokio::test]
async fn a_failure_whose_log_cannot_be_read_keeps_its_code_and_its_shell_is_replaced() {
    let fake = Fake::new(&FAKE.replacen("lastlog) printf", "lastlog) exit 3 ;; never) printf", 1));
    let inner = Arc::new(ScriptedRunner::new());
    let shell = fake.shell(&inner);
    let failing = Cmd::new("lvchange").args(["--addtag", "t", "--", "vg/nope"]);
    let out = shell.run(&failing).await.unwrap();
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(out.stderr.contains("no log of the failure"), "{out:?}");
    assert_eq!(shell.run(&lvs()).await.unwrap().code, Some(0));
    assert_eq!(fake.count("starts"), 2);
    inner.finish();
}
