//! The agent's private socket: how `sqrl login` (and `disable`, `enable`,
//! `remove`, `identity show --site`) have a running `sqrl agent` sign for them
//! instead of asking for the password, and how `sqrl agent lock` and `status`
//! reach it. Like ssh-agent's:
//!
//! * a Unix socket at `$SQRL_AGENT_SOCKET`, else `$XDG_RUNTIME_DIR/sqrl/agent.sock`,
//!   else `<config dir>/agent/agent.sock`, in a directory of mode 0700 owned by
//!   the user (checked, never loosened), the socket itself mode 0600;
//! * each connection's peer credentials (`SO_PEERCRED`) checked: a process of
//!   another user (root included, who passes any file mode) gets a refusal;
//! * one JSON line asked, one answered, per connection.
//!
//! Like ssh-agent, the agent never hands out a private key: a client sends
//! what is to be signed and gets signatures and public keys back
//! ([`super::signing`] lists the requests, [`super::remote`] is the client).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::signing;
use crate::error::{Error, Result};
use crate::identity::Unlocked;
use crate::store::Store;

/// Longest request or answer line: a message to sign is a `client=` value and
/// a `server=` value (at most 4 + 8 KiB), in base64url inside JSON.
const MAX_LINE: u64 = 32 * 1024;
/// How long either side waits for the other's line.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the agent's socket is (see the module documentation).
pub fn socket_path(store: &Store) -> PathBuf {
    if let Some(path) = std::env::var_os("SQRL_AGENT_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&runtime).join("sqrl").join("agent.sock");
    }
    store.root().join("agent").join("agent.sock")
}

/// The uid this process runs as.
pub fn my_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The uid of the process at the other end of a Unix stream.
pub fn peer_uid(stream: &UnixStream) -> Result<u32> {
    getsockopt(stream, PeerCredentials)
        .map(|credentials| credentials.uid())
        .map_err(|e| Error::Agent(format!("reading the agent socket's peer credentials: {e}")))
}

/// Whether a connection from `peer` may use an agent running as `owner`: only
/// the same user may (root gets no exception: it would pass any file mode).
pub fn peer_allowed(peer: u32, owner: u32) -> bool {
    peer == owner
}

/// Makes sure `dir` exists, belongs to this user and is closed to others
/// (mode 0700), creating it if needed; an existing directory that is open to
/// others is refused rather than changed, as its owner chose that mode.
pub fn private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => {}
        Err(source) => {
            return Err(Error::WriteFile {
                path: dir.to_owned(),
                source,
            });
        }
    }
    let metadata = std::fs::metadata(dir).map_err(|source| Error::ReadFile {
        path: dir.to_owned(),
        source,
    })?;
    if metadata.uid() != my_uid() || metadata.mode() & 0o077 != 0 {
        return Err(Error::Agent(format!(
            "the agent's directory {} is not private (it must belong to you with mode 0700); \
             fix it with `chmod 700`, or choose another place with SQRL_AGENT_SOCKET",
            dir.display()
        )));
    }
    Ok(())
}

/// Binds the agent's socket: a private directory, a stale socket (no agent
/// answers on it) replaced, a live one refused, the new socket mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener> {
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir)?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(Error::Agent(format!(
                "an agent is already running on {}; stop it first, or use `sqrl agent status`",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|source| Error::WriteFile {
            path: path.to_owned(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| Error::WriteFile {
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        Error::WriteFile {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(listener)
}

/// Reads one line (at most [`MAX_LINE`] bytes) into a buffer wiped on drop.
fn read_line(stream: &UnixStream) -> std::io::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    BufReader::new(stream.take(MAX_LINE)).read_line(&mut line)?;
    Ok(line)
}

fn write_line(mut stream: &UnixStream, value: &Value) -> std::io::Result<()> {
    let text = Zeroizing::new(format!("{value}\n"));
    stream.write_all(text.as_bytes())?;
    stream.flush()
}

/// What the serving side of the socket can do; [`super::AgentService`] is it.
pub trait KeyHolder {
    /// Runs `f` on the unlocked identity if it is held for `store`/`identity`
    /// and not idle too long (counting as use); `None` when locked.
    fn with_unlocked(
        &self,
        f: &mut dyn FnMut(&Unlocked) -> Zeroizing<String>,
    ) -> Option<Zeroizing<String>>;
    /// The identity's name.
    fn identity(&self) -> &str;
    /// The store the identity came from.
    fn store_root(&self) -> &Path;
    /// Forgets the unlocked identity (the keys are wiped); whether it was held.
    fn lock(&self) -> bool;
    /// Seconds until the idle lock, if unlocked.
    fn idle_seconds_left(&self) -> Option<u64>;
}

/// Serves one connection: checks the peer's uid, reads one request, answers.
pub fn serve_connection(stream: &UnixStream, holder: &dyn KeyHolder) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let owner = my_uid();
    match peer_uid(stream) {
        Ok(peer) if peer_allowed(peer, owner) => {}
        Ok(peer) => {
            super::log(&format!("refused a connection from uid {peer}"));
            let _ = write_line(
                stream,
                &json!({"error": "refused", "message": "this agent serves only its own user"}),
            );
            return;
        }
        Err(_) => return,
    }
    let Ok(line) = read_line(stream) else { return };
    let answer = match serde_json::from_str::<Value>(&line) {
        Ok(request) => answer(&request, holder),
        Err(_) => plain(&json!({"error": "bad_request"})),
    };
    let mut stream = stream;
    let _ = stream
        .write_all(answer.as_bytes())
        .and_then(|()| stream.write_all(b"\n"))
        .and_then(|()| stream.flush());
}

/// A JSON answer line, in a buffer wiped on drop.
pub(super) fn plain(value: &Value) -> Zeroizing<String> {
    Zeroizing::new(value.to_string())
}

fn answer(request: &Value, holder: &dyn KeyHolder) -> Zeroizing<String> {
    let op = request["op"].as_str().unwrap_or_default();
    match op {
        "lock" => {
            let was = holder.lock();
            if was {
                super::log("locked on request: the identity was wiped from memory");
            }
            plain(&json!({"locked": true, "was_unlocked": was}))
        }
        "status" => plain(&json!({
            "identity": holder.identity(),
            "unlocked": holder.idle_seconds_left().is_some(),
            "idle_seconds_left": holder.idle_seconds_left(),
            "pid": std::process::id(),
        })),
        op if signing::OPS.contains(&op) => {
            let same_store = request["store"]
                .as_str()
                .is_some_and(|store| Path::new(store) == holder.store_root());
            if request["identity"].as_str() != Some(holder.identity()) || !same_store {
                return plain(&json!({"error": "other_identity", "identity": holder.identity()}));
            }
            holder
                .with_unlocked(&mut |unlocked: &Unlocked| signing::answer(op, request, unlocked))
                .unwrap_or_else(|| plain(&json!({"error": "locked"})))
        }
        _ => plain(&json!({"error": "bad_request"})),
    }
}

/// Sends one request to the agent at `path`; `Ok(None)` if no agent listens there.
pub fn request(path: &Path, request: &Value) -> Result<Option<Zeroizing<String>>> {
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::Agent(format!(
                "could not reach the agent at {}: {e}",
                path.display()
            )));
        }
    };
    // An agent of another user would see what is signed, and could answer
    // with keys of its choosing.
    let peer = peer_uid(&stream)?;
    if !peer_allowed(peer, my_uid()) {
        return Err(Error::Agent(format!(
            "the agent socket {} belongs to another user (uid {peer}); not using it",
            path.display()
        )));
    }
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    write_line(&stream, request)
        .and_then(|()| read_line(&stream))
        .map(Some)
        .map_err(|e| {
            Error::Agent(format!(
                "the agent at {} did not answer: {e}",
                path.display()
            ))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_user_is_served() {
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        // Root passes file modes, but not this check.
        assert!(!peer_allowed(0, 1000));
        assert!(!peer_allowed(65534, 0));
    }

    #[test]
    fn a_directory_open_to_others_is_refused_not_changed() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(private_dir(&open), Err(Error::Agent(_))));
        let mode = std::fs::metadata(&open).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o755);
        let fresh = dir.path().join("fresh/agent");
        private_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn the_socket_is_private_and_a_live_one_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent/agent.sock");
        let listener = bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(matches!(bind(&path), Err(Error::Agent(_))));
        drop(listener);
        // Stale now: replaced.
        bind(&path).unwrap();
    }
}
