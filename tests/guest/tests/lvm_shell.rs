//! Guest tier, the LVM shell (`carve_storage::lvm::LvmShell`, docs/kubernetes.md "LVM's
//! commands run in `lvm` shells"): against the real LVM 2.03, each command answers through a
//! shell with the exit code and the error text an `lvm` process gives (the controller maps those
//! texts to gRPC codes: a missing LV or VG, a name taken, no space), reports parse the same, and
//! an idle shell holds no LVM lock and no device open.

use carve_guest_tests::{Lab, assert_no_leaks, guest_test, run};
use carve_storage::lvm::LvmShell;
use csi_common::command::{Cmd, CommandRunner, Output, SystemRunner};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const LV: &str = "carve-shell-a";
const TIMEOUT: Duration = Duration::from_mins(2);

fn cmd(program: &str, args: &[&str]) -> Cmd {
    Cmd::new(program)
        .args(args.iter().copied())
        .timeout(TIMEOUT)
}

/// Runs `cmd` as a process and in the shell; both must give the same exit code and both
/// stderrs must hold `needle`.
async fn same_answer(shell: &LvmShell, cmd: &Cmd, needle: &str) -> (Output, Output) {
    let process = SystemRunner::new().run(cmd).await.unwrap();
    let in_shell = shell.run(cmd).await.unwrap();
    assert_eq!(
        in_shell.code,
        process.code,
        "{}: shell {in_shell:?}, process {process:?}",
        cmd.redacted()
    );
    for (how, out) in [("process", &process), ("shell", &in_shell)] {
        assert!(
            out.stderr.contains(needle),
            "{}: the {how}'s stderr lacks {needle:?}: {out:?}",
            cmd.redacted()
        );
    }
    (process, in_shell)
}

fn lv_names(json: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    doc["report"][0]["lv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["lv_name"].as_str().unwrap().to_string())
        .collect()
}

guest_test!(the_lvm_shell_answers_as_lvm_processes_do, async {
    let lab = Lab::from_env();
    let vg = lab.vg.as_str();
    // Where an `lvm` shell keeps its history (tools/lvm.c `_hist_file`): none may be written.
    let history = std::path::Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
        .join(".lvm_history");
    let _ = std::fs::remove_file(&history);
    let shell = LvmShell::new(Arc::new(SystemRunner::new()), &[]);
    let lv_path = format!("{vg}/{LV}");

    // Failures: the same code and message as a process.
    let missing = format!("{vg}/carve-shell-missing");
    let (_, out) = same_answer(
        &shell,
        &cmd(
            "lvs",
            &["--reportformat", "json", "-o", "lv_name", "--", &missing],
        ),
        "Failed to find logical volume",
    )
    .await;
    assert_eq!(out.code, Some(5));
    same_answer(
        &shell,
        &cmd("vgs", &["--", "carve-no-such-vg"]),
        "Volume group \"carve-no-such-vg\" not found",
    )
    .await;
    same_answer(
        &shell,
        &cmd(
            "lvcreate",
            &[
                "--yes",
                "--name",
                "carve-shell-huge",
                "--size",
                "1125899906842624b",
                "--",
                vg,
            ],
        ),
        "insufficient free space",
    )
    .await;

    // A change with a quoted `--config`, as the archive trim sends it, then its report.
    let create = cmd(
        "lvcreate",
        &[
            "--config",
            "backup{retain_min=100 retain_days=0}",
            "--yes",
            "--name",
            LV,
            "--size",
            "4194304b",
            "--addtag",
            "carve.shell=1",
            "--",
            vg,
        ],
    );
    let out = shell.run(&create).await.unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    same_answer(&shell, &create, "already exists").await;
    let report = cmd(
        "lvs",
        &[
            "--reportformat",
            "json",
            "-o",
            "lv_name,lv_tags",
            "--",
            &lv_path,
        ],
    );
    let (process, in_shell) = same_answer(&shell, &report, "").await;
    assert_eq!(lv_names(&in_shell.stdout), vec![LV.to_string()]);
    assert_eq!(lv_names(&process.stdout), lv_names(&in_shell.stdout));

    // An idle shell holds no lock and keeps no device open: a process changes the LV at once,
    // and device-mapper counts no opener.
    let started = Instant::now();
    let tag = SystemRunner::new()
        .run(&cmd(
            "lvchange",
            &["--addtag", "carve.by-hand=1", "--", &lv_path],
        ))
        .await
        .unwrap();
    assert_eq!(tag.code, Some(0), "{tag:?}");
    assert!(
        started.elapsed() < Duration::from_mins(1),
        "lvchange waited {:?} beside an idle shell",
        started.elapsed()
    );
    let open = run(
        "dmsetup",
        &[
            "info",
            "-c",
            "--noheadings",
            "-o",
            "open",
            &format!("{vg}-{}", LV.replace('-', "--")),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&open.stdout).trim(), "0");

    // The shell sees the process's change: each command reads the metadata afresh.
    let out = shell
        .run(&cmd(
            "lvs",
            &["--reportformat", "json", "-o", "lv_tags", "--", &lv_path],
        ))
        .await
        .unwrap();
    assert!(out.stdout.contains("carve.by-hand=1"), "{out:?}");

    let out = shell
        .run(&cmd("lvremove", &["--yes", "--", &lv_path]))
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        !history.exists(),
        "a shell wrote {} (volume names and tags)",
        history.display()
    );
    assert_no_leaks(&lab, None);
});
