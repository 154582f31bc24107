//! Checks of specific facts in the views of the fixed image, so that the
//! golden files are known to be right and not only unchanged.

mod common;

use common::*;
use serde_json::Value;
use stasis_inspect::{load, view, LoadedImage, Options, RestoreCheck, View};

fn json(image: &LoadedImage, view: View) -> Value {
    let text = view::json(image, view, &Options::default());
    serde_json::from_str(&text).expect("view JSON parses")
}

#[test]
fn intact_image_is_verified() {
    let (_temp, dir) = fixed_image("intact");
    let image = load(&dir).expect("load");
    assert!(!image.is_damaged());
    assert_eq!(image.restore_check, RestoreCheck::Passed);
    assert_eq!(image.files.len(), 6);
    assert!(image.unlisted.is_empty());

    let summary = json(&image, View::Summary);
    assert_eq!(summary["integrity"]["intact"], true);
    assert_eq!(summary["integrity"]["files_verified"], 6);
    assert_eq!(summary["created_utc"], "2023-11-14T22:13:20Z");
}

#[test]
fn envelope_fields_come_first() {
    let (_temp, dir) = fixed_image("envelope");
    let image = load(&dir).expect("load");
    let text = view::json(&image, View::Maps, &Options::default());
    assert!(
        text.starts_with("{\"schema_version\":1,\"view\":\"maps\",\"image\":"),
        "{text}"
    );
}

#[test]
fn cmdline_read_from_saved_pages() {
    let (_temp, dir) = fixed_image("cmdline");
    let image = load(&dir).expect("load");
    let cmdline = json(&image, View::Cmdline);
    let process = &cmdline["processes"][0];
    assert_eq!(process["strings"], serde_json::json!(ARGS));
    assert_eq!(process["complete"], true);
    assert_eq!(process["verified"], true);

    let summary = json(&image, View::Summary);
    assert_eq!(summary["processes"][0]["cmdline"], serde_json::json!(ARGS));
}

#[test]
fn env_reports_page_not_stored() {
    let (_temp, dir) = fixed_image("env");
    let image = load(&dir).expect("load");
    let env = json(&image, View::Env);
    let process = &env["processes"][0];
    assert_eq!(process["complete"], false);
    assert_eq!(process["strings"][0], ENV[0]);
    let missing = &process["missing"][0];
    assert_eq!(missing["start"], TOP_PAGE);
    assert_eq!(missing["reason"], "not stored");

    let text = view::text(&image, View::Env, &Options::default());
    assert!(
        text.contains("<24 bytes at 7ffd00020000 not stored>"),
        "{text}"
    );
}

#[test]
fn auxv_names_and_targets() {
    let (_temp, dir) = fixed_image("auxv");
    let image = load(&dir).expect("load");
    let auxv = json(&image, View::Auxv);
    let entries = auxv["processes"][0]["entries"].as_array().expect("entries");
    let find = |name: &str| {
        entries
            .iter()
            .find(|entry| entry["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {entries:?}"))
    };
    assert_eq!(find("AT_PAGESZ")["value"], 4096);
    assert_eq!(find("AT_EXECFN")["points_to"], "/usr/bin/sleeper");
    assert_eq!(
        find("AT_RANDOM")["points_to"],
        "000102030405060708090a0b0c0d0e0f"
    );
    assert_eq!(find("AT_PLATFORM")["target_missing"], true);
}

#[test]
fn fds_flags_decoded() {
    let (_temp, dir) = fixed_image("fds");
    let image = load(&dir).expect("load");
    let fds = json(&image, View::Fds);
    let list = fds["processes"][0]["fds"].as_array().expect("fds");
    assert_eq!(list[1]["flags_decoded"], "O_WRONLY|O_APPEND|O_LARGEFILE");
    assert_eq!(list[1]["position"], 1234);
    assert_eq!(list[3]["kind"], "directory");
    assert_eq!(
        list[3]["flags_decoded"],
        "O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_DIRECTORY"
    );
    assert_eq!(list[3]["cloexec"], true);
    assert_eq!(list[4]["deleted"], true);
    assert_eq!(list[4]["content_file"], "file-1");
    assert_eq!(list[0]["rdev"], "1:3");
    assert_eq!(
        list[9]["detail"],
        "CLOCK_MONOTONIC, expires in 0.250 s, every 1.000 s, 2 expirations not read"
    );
    assert_eq!(list[10]["detail"], "signals SIGUSR1|SIGTERM");
    assert_eq!(
        list[11]["detail"],
        "watches fd 8 (EPOLLIN), fd 9 (EPOLLIN|EPOLLET)"
    );
    assert_eq!(list[11]["file"]["Epoll"]["targets"][1]["fd"], 9);
}

#[test]
fn maps_count_stored_pages() {
    let (_temp, dir) = fixed_image("maps");
    let image = load(&dir).expect("load");
    let maps = json(&image, View::Maps);
    let mappings = maps["processes"][0]["mappings"].as_array().expect("maps");
    let stored: Vec<u64> = mappings
        .iter()
        .map(|m| m["pages_stored"].as_u64().expect("count"))
        .collect();
    assert_eq!(stored, vec![0, 1, 2, 1, 1, 0, 0]);
    assert_eq!(mappings[0]["perms"], "r-xp");
    assert_eq!(mappings[0]["dev"], "08:03");
    assert_eq!(mappings[4]["name"], "[stack]");
    assert_eq!(mappings[5]["saves_pages"], false);
}

#[test]
fn summary_memory_counts() {
    let (_temp, dir) = fixed_image("memory");
    let image = load(&dir).expect("load");
    let summary = json(&image, View::Summary);
    let memory = &summary["memory"];
    assert_eq!(memory["pages_anonymous_stored"], 4);
    assert_eq!(memory["pages_file_stored"], 1);
    assert_eq!(memory["bytes_stored"], 5 * PAGE);
    assert_eq!(memory["pages_skipped_untouched"], 40);
    assert_eq!(memory["pages_skipped_equal_to_file"], 3);
    assert_eq!(summary["fds"]["deleted"], 1);
}

#[test]
fn stats_bytes_add_up() {
    let (_temp, dir) = fixed_image("stats");
    let image = load(&dir).expect("load");
    let stats = json(&image, View::Stats);
    let total = stats["bytes"]["total"].as_u64().expect("total");
    let parts: u64 = stats["bytes"]["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|part| part["bytes"].as_u64().expect("bytes"))
        .sum();
    assert_eq!(parts, total);

    let on_disk: u64 = std::fs::read_dir(&dir)
        .expect("list image")
        .map(|entry| entry.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert_eq!(total, on_disk);
}

#[test]
fn regs_in_struct_order() {
    let (_temp, dir) = fixed_image("regs");
    let image = load(&dir).expect("load");
    let text = view::json(&image, View::Regs, &Options::default());
    let r15 = text.find("\"r15\"").expect("r15");
    let rip = text.find("\"rip\"").expect("rip");
    let gs = text.find("\"gs\"").expect("gs");
    assert!(r15 < rip, "{text}");
    assert!(rip < gs, "{text}");
    assert!(text.contains("\"rip\":\"0x0000000000401234\""), "{text}");
}

#[test]
fn pid_filter_selects_one_process() {
    let (_temp, dir) = fixed_image("pid");
    let image = load(&dir).expect("load");
    let options = Options {
        pid: Some(1),
        ..Options::default()
    };
    let text = view::json(&image, View::Maps, &options);
    let value: Value = serde_json::from_str(&text).expect("parse");
    assert_eq!(value["processes"], serde_json::json!([]));
}

#[test]
fn strings_from_image_are_escaped_in_text() {
    let temp = TempDir::new("escape");
    let dir = temp.path().join("image");
    let mut parts = parts();
    parts.process.comm = "evil\x1b[2J".to_string();
    write_image(&dir, &parts);

    let image = load(&dir).expect("load");
    for view_kind in [View::Summary, View::Tree, View::Regs] {
        let text = view::text(&image, view_kind, &Options::default());
        assert!(
            !text.contains('\x1b'),
            "{view_kind:?} lets ESC through: {text}"
        );
        assert!(text.contains("evil\\x1b[2J"), "{view_kind:?}: {text}");
    }
}

#[test]
fn zombie_wait_status_is_decoded() {
    let temp = TempDir::new("zombies");
    let dir = temp.path().join("image");
    let mut parts = parts();
    for (pid, status) in [(PID + 1, 3 << 8), (PID + 2, 9)] {
        let mut zombie = process();
        zombie.pid = pid;
        zombie.ppid = PID;
        zombie.threads.clear();
        zombie.zombie_exit_status = Some(status);
        parts.zombies.push(zombie);
        parts.manifest.processes.push(pid);
    }
    write_image(&dir, &parts);
    let image = load(&dir).expect("load");
    assert!(!image.is_damaged(), "{:?}", image.all_problems());

    let tree = view::text(&image, View::Tree, &Options::default());
    assert!(tree.contains("<zombie, exit code 3>"), "{tree}");
    assert!(tree.contains("<zombie, killed by signal 9>"), "{tree}");
    assert!(!tree.contains("768"), "raw wait status in the tree: {tree}");
    let summary = view::text(&image, View::Summary, &Options::default());
    assert!(
        summary.contains("zombie: ended with exit code 3 and not yet waited for"),
        "{summary}"
    );

    let tree = json(&image, View::Tree);
    let exited = &tree["processes"][1];
    assert_eq!(exited["pid"], PID + 1, "{tree}");
    assert_eq!(exited["zombie_exit_status"], 3 << 8);
    assert_eq!(exited["zombie_exit"]["exit_code"], 3);
    assert_eq!(exited["zombie_exit"]["signal"], Value::Null);
    assert_eq!(exited["zombie_exit"]["description"], "exit code 3");
    let killed = &tree["processes"][2];
    assert_eq!(killed["zombie_exit"]["exit_code"], Value::Null, "{tree}");
    assert_eq!(killed["zombie_exit"]["signal"], 9);
    assert_eq!(tree["processes"][0]["zombie_exit"], Value::Null);

    let summary = json(&image, View::Summary);
    assert_eq!(
        summary["processes"][1]["zombie_exit"]["exit_code"], 3,
        "{summary}"
    );
    assert_eq!(summary["processes"][2]["zombie_exit"]["signal"], 9);
}

#[test]
fn seal_file_is_expected_not_unlisted() {
    let (_temp, dir) = fixed_image("sealed");
    std::fs::write(dir.join("seal"), b"stasis-seal 1\n").expect("write seal");
    let image = load(&dir).expect("load");
    assert!(image.seal_file_present);
    assert!(image.unlisted.is_empty(), "{:?}", image.unlisted);

    let text = view::text(&image, View::Summary, &Options::default());
    assert!(
        text.contains("Seal       seal file present, not checked here"),
        "{text}"
    );
    assert!(text.contains("stasis verify"), "{text}");
    assert!(!text.contains("not in the manifest"), "{text}");
    let summary = json(&image, View::Summary);
    assert_eq!(summary["integrity"]["seal_file_present"], true);
    assert_eq!(
        summary["integrity"]["unlisted_files"],
        serde_json::json!([])
    );
}

#[test]
fn seal_directory_is_unlisted() {
    let (_temp, dir) = fixed_image("seal-dir");
    std::fs::create_dir(dir.join("seal")).expect("create directory");
    let image = load(&dir).expect("load");
    assert!(!image.seal_file_present);
    assert_eq!(image.unlisted, vec!["seal".to_string()]);
}

#[test]
fn shared_fd_table_names_owner() {
    let temp = TempDir::new("shared-table");
    let dir = temp.path().join("image");
    let mut parts = parts();
    let owner = PID - 1;
    parts.process.files_shared_with = Some(owner);
    parts.process.fs_shared_with = Some(owner);
    parts.fds.fds.clear();
    write_image(&dir, &parts);
    let image = load(&dir).expect("load");
    assert!(!image.is_damaged(), "{:?}", image.all_problems());

    let fds = view::text(&image, View::Fds, &Options::default());
    assert!(
        fds.contains(&format!("shares the fd table of process {owner}")),
        "{fds}"
    );
    let summary = view::text(&image, View::Summary, &Options::default());
    assert!(
        summary.contains(&format!("the fd table of process {owner}, listed there")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "(root, cwd and umask shared with process {owner})"
        )),
        "{summary}"
    );

    let fds = json(&image, View::Fds);
    assert_eq!(fds["processes"][0]["table_shared_with"], owner, "{fds}");
    let summary = json(&image, View::Summary);
    assert_eq!(summary["processes"][0]["files_shared_with"], owner);
    assert_eq!(summary["processes"][0]["fs_shared_with"], owner);
}
