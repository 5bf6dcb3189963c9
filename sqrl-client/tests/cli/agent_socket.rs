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

use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::Sha256;
use sqrl_client::ExitCode;
use sqrl_core::base64url;
use sqrl_core::keys::{IdentityKey, IdentityMasterKey, Signature};
use sqrl_core::secret::Password;
use sqrl_core::storage::S4;
use sqrl_core::url::SiteKeyString;

use crate::agent::AgentProcess;
use crate::memory_site::{LOOPBACK, MemorySite};
use crate::support::{Env, PASSWORD};

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

/// One request line to the agent, and its answer line as sent.
fn ask_line(socket: &Path, request: &str) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    // An agent that refuses the peer answers and closes at once, without
    // reading: the request may then meet a closed socket (EPIPE). The
    // answer is still there to read, and any other failure shows in it.
    let _ = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(b"\n"));
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    line
}

fn ask(socket: &Path, request: &str) -> serde_json::Value {
    let line = ask_line(socket, request);
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
        r#"{"op":"sign","identity":"me","store":"","site":"example.com","key":"current","message":"AA"}"#,
    );
    assert_eq!(answer["error"], "refused", "{answer}");
    assert!(answer.get("signature").is_none());
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

/// The test identity's master key, unlocked here with its password.
fn master_key(env: &Env) -> IdentityMasterKey {
    let s4 = S4::parse(&env.identity_bytes("me")).unwrap();
    let unlocked = s4
        .unlock(&Password::new(PASSWORD.to_owned()), &mut |_, _| {})
        .unwrap();
    unlocked.master_key().clone()
}

/// A site key's private seed, `HMAC-SHA256(IMK, site)` (SPEC 4.3), computed
/// independently of the client.
fn site_seed(imk: &IdentityMasterKey, site: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(imk.as_bytes()).unwrap();
    mac.update(&SiteKeyString::new(site).to_bytes());
    mac.finalize().into_bytes().into()
}

/// Every way 32 secret bytes could show up in an answer.
fn encodings(bytes: &[u8; 32]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let standard = base64url::encode(bytes).replace('-', "+").replace('_', "/");
    vec![
        base64url::encode(bytes),
        standard,
        hex.clone(),
        hex.to_uppercase(),
    ]
}

#[test]
fn the_agent_signs_for_the_named_site_and_never_hands_out_a_private_key() {
    let env = Env::with_identity("me");
    // The public keys as the password path derives them, before any agent runs.
    let idk = IdentityKey::from_base64url(&env.idk("me", "example.com", "password")).unwrap();
    let other_idk = IdentityKey::from_base64url(&env.idk("me", "example.org", "password")).unwrap();
    let imk = master_key(&env);
    let secrets = [
        *imk.as_bytes(),
        site_seed(&imk, "example.com"),
        site_seed(&imk, "example.org"),
    ];
    let _agent = AgentProcess::start(&env, &[]);
    let socket = env.agent_socket();
    let store = env.home().to_string_lossy().into_owned();
    let mut answers = Vec::new();
    let mut ask_op = |op: &str, site: &str, fields: serde_json::Value| {
        let mut request = json!({"op": op, "identity": "me", "store": store, "site": site});
        for (name, value) in fields.as_object().unwrap() {
            request[name] = value.clone();
        }
        let line = ask_line(&socket, &request.to_string());
        answers.push(line.clone());
        serde_json::from_str::<serde_json::Value>(line.trim()).unwrap()
    };

    // The request that used to hand out the site's seed is gone.
    let old = ask_op("site_keys", "example.com", json!({}));
    assert_eq!(old["error"], "bad_request", "{old}");

    // The site's public keys, and nothing else.
    let site = ask_op("site", "example.com", json!({}));
    let mut fields: Vec<&String> = site.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["hard_lock", "idk", "ilk", "pidk", "sqrl_only"],
        "{site}"
    );
    assert_eq!(site["idk"], idk.to_base64url());
    assert_eq!(site["pidk"], json!([]));

    // A signature by the named site's key: it verifies with that site's idk
    // and no other, so the key was derived for the site the request named.
    let message = b"client-value-then-server-value";
    let encoded = base64url::encode(message);
    let signature = |answer: &serde_json::Value| {
        Signature::from_base64url(answer["signature"].as_str().unwrap(), "signature").unwrap()
    };
    let signed = ask_op(
        "sign",
        "example.com",
        json!({"key": "current", "message": encoded}),
    );
    assert_eq!(signed["public_key"], idk.to_base64url(), "{signed}");
    idk.verify(message, &signature(&signed)).unwrap();
    let elsewhere = ask_op(
        "sign",
        "example.org",
        json!({"key": "current", "message": encoded}),
    );
    other_idk.verify(message, &signature(&elsewhere)).unwrap();
    assert!(idk.verify(message, &signature(&elsewhere)).is_err());

    // The indexed secret for a sin: the one the site's key makes (SPEC 4.6).
    let index = ask_op(
        "index",
        "example.com",
        json!({"key": "current", "sin": "0"}),
    );
    let expected = imk
        .site_key(&SiteKeyString::new("example.com"))
        .indexed_secret("0");
    assert_eq!(index["ins"], expected.to_base64url(), "{index}");

    // No previous identity: nothing to sign with.
    let previous = ask_op(
        "sign",
        "example.com",
        json!({"key": "previous", "index": 0, "message": encoded}),
    );
    assert_eq!(previous["error"], "no_such_previous_identity", "{previous}");
    let suk = base64url::encode([9u8; 32]);
    let urs = ask_op(
        "sign_urs",
        "example.com",
        json!({"previous": 0, "suk": suk, "message": encoded}),
    );
    assert_eq!(urs["error"], "no_such_previous_identity", "{urs}");

    // No answer carries the master key or a site's seed, in any encoding.
    for answer in &answers {
        for secret in &secrets {
            for encoded in encodings(secret) {
                assert!(!answer.contains(&encoded), "{answer} holds a private key");
            }
        }
    }
}

#[test]
fn a_rekeyed_identity_moves_its_association_through_the_agent_with_its_secret() {
    // The site asks for an indexed secret, so the move needs `pins` from the
    // previous identity, `ins` from the current one and `urs` from the
    // previous IUK: all from the agent.
    let site = MemorySite::asking_for_secret("0");
    let env = Env::with_identity("me");
    let url = site.url();
    let old_key = IdentityKey::from_base64url(&env.idk("me", &url, "password")).unwrap();
    env.login(&url).run().success();
    assert!(site.server().kept_secret(&old_key, "0").is_some());
    env.rekey("me.rescue")
        .args(&["--rescue-code-out", "new-rescue"])
        .run()
        .success();
    let new_key = IdentityKey::from_base64url(&env.idk("me", &url, "password")).unwrap();

    let agent = AgentProcess::start(&env, &[]);
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let run = env
        .sqrl(&["login", &url, "--yes", "--json"])
        .run()
        .success()
        .says("Unlocked by the running sqrl agent");
    assert_eq!(run.json()["known"], "previous", "{}", run.stdout());
    assert!(site.server().is_superseded(&old_key));
    assert!(site.server().account(&new_key).is_some());
    drop(agent);

    // The secret the site now keeps is the one the password path derives.
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let again = env.login(&url).run().success().json();
    assert_eq!(again["known"], "current", "{again}");
}
