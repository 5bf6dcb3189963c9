//! The real login service, started in-process on `127.0.0.1:0` with a
//! temporary SQLite database, for every test binary of this crate that needs
//! a site (include it with `#[path = "../common/in_process_server.rs"] mod ...;`).

use std::path::Path;

use sqrl_server::RunningServer;
use sqrl_server::config::Config;
use tempfile::TempDir;

/// A running service; shut down when dropped.
pub struct InProcessServer {
    runtime: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    /// Holds the database until the server drops.
    _dir: TempDir,
}

impl InProcessServer {
    /// Starts the service with the tests' configuration, changed by
    /// `configure` (which also gets the database's directory).
    pub fn start(configure: impl FnOnce(&mut Config, &Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path().join("sqrl.db"));
        configure(&mut config, dir.path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(sqrl_server::start(config)).unwrap();
        Self {
            runtime,
            server: Some(server),
            _dir: dir,
        }
    }

    /// The running service.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.server().base_url()
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}
