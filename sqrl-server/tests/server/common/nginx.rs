//! A real nginx from Debian (`.ci/install-server-tools`) running a site
//! configuration as a test gives it: its own process, pid, logs and
//! temporary files in a private directory, never the system service.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The nginx binary, on the PATH or where Debian puts it.
pub fn binary() -> PathBuf {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
        .expect("nginx not found: run .ci/install-server-tools")
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The line a main configuration needs to run as the test's user: as root,
/// nginx's workers would drop to `nobody`, who cannot use the test's private
/// directory.
pub fn user_directive() -> &'static str {
    if is_root() { "user root;" } else { "" }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// An nginx process serving `http`-level configuration (`upstream`, `map`,
/// `server` blocks, as an operator puts in `/etc/nginx/conf.d/`).
pub struct Nginx {
    process: Child,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx with `site` and waits until `127.0.0.1:port` answers.
    pub fn start(site: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        std::fs::write(dir.path().join("site.conf"), site).unwrap();
        let user = user_directive();
        let main = format!(
            "{user}\nworker_processes 1;\ndaemon off;\npid {root}/nginx.pid;\n\
             error_log {root}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n    access_log {root}/access.log;\n\
             client_body_temp_path {root}/body;\n    proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi;\n    uwsgi_temp_path {root}/uwsgi;\n\
             scgi_temp_path {root}/scgi;\n    include {root}/site.conf;\n}}\n"
        );
        Self::start_main(dir, &main, port)
    }

    /// Starts nginx with a whole main configuration (`nginx.conf`, its
    /// files under `dir`), checked first with `nginx -t`, and waits until
    /// `127.0.0.1:port` accepts connections.
    pub fn start_main(dir: TempDir, main: &str, port: u16) -> Self {
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, main).unwrap();
        let check = Command::new(binary())
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx refuses the configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let process = Command::new(binary())
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { process, dir }
    }

    /// nginx's error log so far (for a failure's message).
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
