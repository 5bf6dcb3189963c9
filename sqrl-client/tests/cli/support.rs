//! Running the built `sqrl` binary against a temporary configuration directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tempfile::TempDir;

/// The password every test identity uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// Published vectors, shared with the rest of the project.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors")
}

/// A temporary `SQRL_HOME` plus scratch files.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        env.write("password", format!("{PASSWORD}\n"));
        env
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// The stored bytes of a named identity.
    pub fn identity_bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.home().join("identities").join(format!("{name}.sqrl"))).unwrap()
    }

    /// A `sqrl` command with this home, a 1 ms EnScrypt budget (one iteration) and
    /// no inherited `SQRL_*` settings.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sqrl"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SQRL_") {
                command.env_remove(&key);
            }
        }
        command
            .env("SQRL_HOME", self.home())
            .env("SQRL_ENSCRYPT_MS", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command().args(args).output().unwrap())
    }

    /// Runs with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        Run(child.wait_with_output().unwrap())
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Creates an identity; returns its rescue code as written to a file.
    pub fn create(&self, name: &str) -> String {
        let code_file = format!("{name}.rescue");
        self.run(&[
            "identity",
            "create",
            name,
            "--password-file",
            "password",
            "--rescue-code-out",
            &code_file,
        ])
        .success();
        String::from_utf8(self.read(&code_file))
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// A finished `sqrl` process.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn success(self) -> Self {
        assert!(
            self.0.status.success(),
            "sqrl failed ({:?})\nstdout: {}\nstderr: {}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts the exit code and that the error is one line on stderr.
    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "stdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        let error_lines: Vec<&str> = self
            .0
            .stderr
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"sqrl: error: "))
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        assert_eq!(error_lines.len(), 1, "stderr: {}", self.stderr());
        self
    }

    pub fn error_line(&self) -> String {
        self.stderr()
            .lines()
            .find(|l| l.starts_with("sqrl: error: "))
            .unwrap_or_default()
            .to_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        let line = self.stdout();
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}
