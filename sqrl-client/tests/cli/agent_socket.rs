//! The agent's private socket and what keeps its unlocked keys to itself: the
//! socket's and its directory's modes, the refusal of another user's process,
//! no core dumps, locked memory, and the idle lock.
#![cfg(target_os = "linux")]

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqrl_client::ExitCode;

use crate::agent::AgentProcess;
use crate::memory_site::MemorySite;
use crate::support::Env;

/// The line of `/proc/<pid>/<file>` that starts with `label`.
fn proc_line(pid: u32, file: &str, label: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find(|line| line.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in /proc/{pid}/{file}:\n{text}"))
        .to_owned()
}

/// The first JSON line an agent started with `--json` prints.
fn started(child: &mut Child) -> serde_json::Value {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("agent did not start ({e}): {line:?}"))
}

fn ask(socket: &Path, request: &str) -> serde_json::Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn the_agent_is_not_dumpable_has_no_core_and_a_private_socket() {
    let env = Env::with_identity("me");
    let agent = AgentProcess::start(&env, &[]);
    let pid = agent.child.id();

    // Core dumps: none, soft or hard.
    let limits = proc_line(pid, "limits", "Max core file size");
    let numbers: Vec<&str> = limits.split_whitespace().skip(4).take(2).collect();
    assert_eq!(numbers, ["0", "0"], "{limits}");

    // Locked memory: all of it where the limit allows, which root's does.
    let locked_kb: u64 = proc_line(pid, "status", "VmLck:")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    if nix::unistd::geteuid().is_root() {
        assert!(locked_kb > 0, "VmLck {locked_kb} kB");
    }

    // The socket: mode 0600, in a directory of mode 0700, both the user's.
    let socket = env.agent_socket();
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    let dir = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700);

    // The answer holds one site's key and never the master key's name or bytes.
    let status = ask(&socket, r#"{"op":"status"}"#);
    assert_eq!(status["unlocked"], true, "{status}");
    assert_eq!(status["pid"], pid);
}

#[test]
fn a_directory_open_to_others_stops_the_agent_before_the_password() {
    let env = Env::with_identity("me");
    let dir = env.home().join("agent");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    env.sqrl(&["agent", "--port", "0"])
        .password()
        .run()
        .fails_saying(ExitCode::Failure, "is not private");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().mode() & 0o777,
        0o777,
        "left as the user set it"
    );
}

/// Hands the whole tree to `uid` (the test runs as root).
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

const NOBODY: u32 = 65534;

#[test]
fn a_process_of_another_user_is_refused_even_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test starts the agent as another user (nobody), which needs root; CI runs as root"
    );
    let env = Env::with_identity("me");
    // The agent runs as nobody, from a copy of the binary nobody can run.
    let binary: PathBuf = env.path("sqrl");
    std::fs::copy(env!("CARGO_BIN_EXE_sqrl"), &binary).unwrap();
    chown_tree(env.dir.path(), NOBODY);
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(&binary);
    env.configure(&mut command);
    let mut child = command
        .args([
            "agent",
            "--port",
            "0",
            "--json",
            "--password-file",
            "password",
        ])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = started(&mut child);
    let pid = child.id();
    let socket = PathBuf::from(started["socket"].as_str().unwrap());

    // Root passes the file modes, so only the agent's uid check stands
    // between root and the keys: it refuses.
    let answer = ask(
        &socket,
        r#"{"op":"site_keys","identity":"me","store":"","site":"example.com"}"#,
    );
    assert_eq!(answer["error"], "refused", "{answer}");
    assert!(answer.get("seed").is_none());
    // And the client refuses to take keys from another user's agent.
    env.run(&["agent", "status"])
        .fails_saying(ExitCode::Failure, "belongs to another user");

    // Not dumpable: the kernel gives its /proc files to root, not to nobody.
    let status = std::fs::metadata(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        status.uid(),
        0,
        "/proc/{pid}/status belongs to uid {}",
        status.uid()
    );
    let uid_line = proc_line(pid, "status", "Uid:");
    assert!(uid_line.contains(&NOBODY.to_string()), "{uid_line}");

    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_idle_agent_locks_itself_and_logins_need_the_password_again() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let _agent = AgentProcess::start(&env, &["--idle-timeout", "1"]);
    env.sqrl(&["login", &site.url(), "--yes", "--json"])
        .run()
        .success()
        .says("Unlocked by the running sqrl agent");
    let start = Instant::now();
    loop {
        let status = env.run(&["agent", "status", "--json"]).success().json();
        if status["unlocked"] == false {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.sqrl(&["login", &site.url(), "--yes"])
        .run()
        .fails_saying(ExitCode::Usage, "cannot ask for the password")
        .says("The sqrl agent is locked");
}

#[test]
fn agent_commands_without_an_agent_say_how_to_start_one() {
    let env = Env::with_identity("me");
    env.run(&["agent", "lock"])
        .fails_saying(ExitCode::Failure, "no agent is running");
}
