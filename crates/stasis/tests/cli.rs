//! Command-line behaviour of `stasis` that needs no image.

mod common;

use std::process::Command;

use common::*;

#[test]
fn help_lists_subcommands() {
    let output = Command::new(STASIS)
        .arg("--help")
        .output()
        .unwrap_or_else(|error| panic!("cannot run {STASIS}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stasis --help failed ({}):\n{stdout}",
        output.status
    );
    for subcommand in ["dump", "restore", "demo"] {
        assert!(
            stdout.contains(subcommand),
            "stasis --help does not list {subcommand}:\n{stdout}"
        );
    }
}

#[test]
fn demo_runs_successfully() {
    let Some(env) = TestEnv::new("demo_runs_successfully") else {
        return;
    };
    let run = env.stasis(&["demo"]);
    assert!(run.success(), "stasis demo failed:\n{run}");
}
