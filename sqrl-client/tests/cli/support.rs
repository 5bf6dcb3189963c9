//! Running the built `sqrl` binary against a temporary configuration directory.
//!
//! [`Env`] is one user's machine (a `SQRL_HOME` plus scratch files); [`Sqrl`]
//! builds one command line on it, with the flags scripts pass spelled as
//! methods; [`Run`] is the finished process and its assertions.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use sqrl_client::ExitCode;
use tempfile::TempDir;

/// The password every test identity uses, kept in the file `password`.
pub const PASSWORD: &str = "correct horse battery staple";

/// Published vectors, as the repository keeps them (unchanged copies).
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/vectors/published")
}

/// A temporary `SQRL_HOME` plus scratch files.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    /// An empty home, and the file `password` holding [`PASSWORD`].
    pub fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        env.write("password", format!("{PASSWORD}\n"));
        env
    }

    /// A home holding one identity, `name`, the default (its rescue code is in
    /// the file `{name}.rescue`).
    pub fn with_identity(name: &str) -> Self {
        let env = Self::new();
        env.create(name);
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

    /// Where a named identity is stored.
    pub fn identity_path(&self, name: &str) -> PathBuf {
        self.home().join("identities").join(format!("{name}.sqrl"))
    }

    /// Whether a named identity is stored.
    pub fn has_identity(&self, name: &str) -> bool {
        self.identity_path(name).exists()
    }

    /// The stored bytes of a named identity.
    pub fn identity_bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.identity_path(name)).unwrap()
    }

    /// Sets this home, a 1 ms EnScrypt budget (one iteration) and the working
    /// directory on `command`, and removes inherited `SQRL_*` settings.
    pub fn configure(&self, command: &mut Command) {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SQRL_") {
                command.env_remove(&key);
            }
        }
        command
            .env("SQRL_HOME", self.home())
            .env("SQRL_ENSCRYPT_MS", "1")
            // The agent's socket defaults to the home (not a shared runtime dir).
            .env_remove("XDG_RUNTIME_DIR")
            .current_dir(self.dir.path());
    }

    /// Where this home's agent listens.
    pub fn agent_socket(&self) -> PathBuf {
        self.home().join("agent").join("agent.sock")
    }

    /// `sqrl args...`, to be completed and run.
    pub fn sqrl(&self, args: &[&str]) -> Sqrl<'_> {
        Sqrl {
            env: self,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            password_file: None,
            input: None,
            envs: Vec::new(),
        }
    }

    /// Runs `sqrl args...` as it is.
    pub fn run(&self, args: &[&str]) -> Run {
        self.sqrl(args).run()
    }

    /// Creates an identity; returns its rescue code, as written to `{name}.rescue`.
    pub fn create(&self, name: &str) -> String {
        let code_file = format!("{name}.rescue");
        self.sqrl(&["identity", "create", name])
            .password()
            .args(&["--rescue-code-out", &code_file])
            .run()
            .success();
        String::from_utf8(self.read(&code_file))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `sqrl login URL`, confirmed, with the password file and JSON output.
    pub fn login(&self, url: &str) -> Sqrl<'_> {
        self.site_command("login", url)
    }

    /// `sqrl COMMAND URL` (login, disable, enable, remove), confirmed, with the
    /// password file and JSON output.
    pub fn site_command(&self, command: &str, url: &str) -> Sqrl<'_> {
        self.sqrl(&[command, url]).yes().password().json()
    }

    /// `sqrl identity show -i IDENTITY --site SITE --password-file FILE --json`.
    pub fn show_site(&self, identity: &str, site: &str, password_file: &str) -> serde_json::Value {
        self.sqrl(&["identity", "show", "-i", identity, "--site", site])
            .password_file(password_file)
            .json()
            .run()
            .success()
            .json()
    }

    /// The public key (`idk`, base64url) of an identity at a site.
    pub fn idk(&self, identity: &str, site: &str, password_file: &str) -> String {
        self.show_site(identity, site, password_file)["idk"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `sqrl identity rekey`, authorised by the code in `rescue_file`, with the
    /// password file; the new code is shown unconfirmed unless the caller adds
    /// `--rescue-code-out`.
    pub fn rekey(&self, rescue_file: &str) -> Sqrl<'_> {
        self.sqrl(&["identity", "rekey"])
            .yes()
            .rescue_code_file(rescue_file)
            .password()
    }

    /// `sqrl identity import SOURCE --name NAME`.
    pub fn import(&self, source: &str, name: &str) -> Sqrl<'_> {
        self.sqrl(&["identity", "import", source, "--name", name])
    }

    /// `sqrl identity export -f FORMAT -o OUTPUT` of the default identity.
    pub fn export(&self, format: &str, output: &str) -> Run {
        self.run(&["identity", "export", "-f", format, "-o", output])
            .success()
    }
}

/// One `sqrl` command line, built up and then run.
#[must_use]
pub struct Sqrl<'e> {
    env: &'e Env,
    args: Vec<String>,
    password_file: Option<String>,
    input: Option<Vec<u8>>,
    envs: Vec<(String, String)>,
}

impl Sqrl<'_> {
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// `--password-file password` (the file holding [`PASSWORD`]).
    pub fn password(self) -> Self {
        self.password_file("password")
    }

    /// `--password-file FILE`, replacing any file chosen before.
    pub fn password_file(mut self, file: &str) -> Self {
        self.password_file = Some(file.to_owned());
        self
    }

    pub fn rescue_code_file(self, file: &str) -> Self {
        self.args(&["--rescue-code-file", file])
    }

    pub fn yes(self) -> Self {
        self.args(&["--yes"])
    }

    pub fn json(self) -> Self {
        self.args(&["--json"])
    }

    /// `-i NAME`.
    pub fn identity(self, name: &str) -> Self {
        self.args(&["-i", name])
    }

    /// Sets an environment variable (after the home's own settings).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Feeds `input` on standard input (otherwise it is empty).
    pub fn input(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.input = Some(input.into());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sqrl"));
        self.env.configure(&mut command);
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        command.args(&self.args);
        if let Some(file) = &self.password_file {
            command.args(["--password-file", file]);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    pub fn run(self) -> Run {
        let Some(input) = &self.input else {
            return Run(self.command().output().unwrap());
        };
        let mut child = self.command().stdin(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        Run(child.wait_with_output().unwrap())
    }

    /// Runs it and measures the CPU time (user + system) the process used,
    /// read from `/proc/<pid>/stat` once it has exited and before it is
    /// reaped (a zombie keeps its times), so other processes never count.
    #[cfg(target_os = "linux")]
    pub fn run_measuring_cpu(self) -> (Run, std::time::Duration) {
        let child = self.command().spawn().unwrap();
        let stat = format!("/proc/{}/stat", child.id());
        let start = std::time::Instant::now();
        let ticks = loop {
            let text = std::fs::read_to_string(&stat).unwrap();
            // After the command name in parentheses: state, then 10 fields,
            // then utime and stime (fields 14 and 15 of proc(5)).
            let fields: Vec<&str> = text[text.rfind(')').unwrap() + 2..]
                .split_whitespace()
                .collect();
            if fields[0] == "Z" {
                let utime: u64 = fields[11].parse().unwrap();
                let stime: u64 = fields[12].parse().unwrap();
                break utime + stime;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "sqrl did not exit"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        let output = child.wait_with_output().unwrap();
        let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap();
        let cpu = std::time::Duration::from_secs_f64(ticks as f64 / per_second as f64);
        (Run(output), cpu)
    }

    /// Starts it with its output piped, for a long-running command.
    pub fn spawn(self) -> Child {
        self.command().spawn().unwrap()
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
    pub fn fails_with(self, exit: ExitCode) -> Self {
        assert_eq!(
            self.code(),
            i32::from(exit.code()),
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

    /// [`Run::fails_with`], and the error line mentions `text`.
    pub fn fails_saying(self, exit: ExitCode, text: &str) -> Self {
        let run = self.fails_with(exit);
        let line = run.error_line();
        assert!(line.contains(text), "{text:?} not in {line:?}");
        run
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

    /// The machine-readable reason in a refused command's `--json` error: its
    /// failure code, TIF bits and TIF flag names (checked to name those bits).
    pub fn refusal(&self) -> (String, u32, Vec<String>) {
        let value = self.json();
        let code = value["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {value}"));
        let hex = value["tif"]
            .as_str()
            .unwrap_or_else(|| panic!("no tif: {value}"));
        let tif = u32::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{e}: {value}"));
        let flags: Vec<String> = value["tif_flags"]
            .as_array()
            .unwrap_or_else(|| panic!("no tif_flags: {value}"))
            .iter()
            .map(|flag| flag.as_str().unwrap().to_owned())
            .collect();
        let named =
            sqrl_client::refusal::tif_flag_names(sqrl_core::msg::Tif::from_bits_retain(tif));
        assert_eq!(flags, named, "{value}");
        (code.to_owned(), tif, flags)
    }

    /// Asserts that stderr mentions `text`.
    pub fn says(self, text: &str) -> Self {
        assert!(
            self.stderr().contains(text),
            "{text:?} not in stderr:\n{}",
            self.stderr()
        );
        self
    }
}
