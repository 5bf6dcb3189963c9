//! WAL checkpoints on a thread of their own, off the writer's commit path.
//!
//! A checkpoint copies the pages committed to the WAL back into the
//! database file and syncs that file. Left to SQLite's default (every 1,000
//! WAL pages, run inside the commit that crossed the mark), it runs on the
//! writer thread between a batch's `COMMIT` and the replies that batch
//! acknowledges, so every request queued then waits for it too: a few
//! hundred page copies and an fsync of the database file, several times the
//! cost of a batch. Here the writer's commit only signals this thread when
//! the WAL has grown past [`CHECKPOINT_AFTER_PAGES`], and this thread runs a
//! `PASSIVE` checkpoint on its own connection, which never waits for the
//! writer nor holds it up: the writer goes on appending to the WAL, and a
//! later commit restarts the WAL from its start once every frame is back in
//! the file.
//!
//! If this thread falls behind (it cannot copy frames a reader still needs,
//! or it is not scheduled), the writer checkpoints in its commit again once
//! the WAL reaches [`WRITER_CHECKPOINT_PAGES`], as SQLite's default would:
//! the WAL, and the time readers spend searching it, stay bounded.
//!
//! Durability does not change: each commit is synced to the WAL before it is
//! acknowledged, whoever copies it into the file later.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode};

use super::super::StoreError;

/// WAL size (pages) past which a commit asks for a checkpoint: SQLite's own
/// default mark.
pub(super) const CHECKPOINT_AFTER_PAGES: i32 = 1_000;

/// WAL size (pages) past which the writer checkpoints in its commit itself.
pub(super) const WRITER_CHECKPOINT_PAGES: i32 = 10 * CHECKPOINT_AFTER_PAGES;

/// How many checkpoints ran, and where (what the tests look at).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct CheckpointStats {
    /// Checkpoints the checkpoint thread ran.
    background: u64,
    /// Checkpoints the writer ran in a commit (the WAL outgrew
    /// [`WRITER_CHECKPOINT_PAGES`]).
    in_commit: u64,
}

#[derive(Debug, Default)]
struct Counters {
    background: AtomicU64,
    in_commit: AtomicU64,
}

/// The checkpoint thread started by [`Checkpoints::start`], by the counts
/// of what it and the writer's hook did. The thread ends when the writer's
/// connection, whose hook holds the thread's signal, is closed.
#[derive(Debug, Clone)]
pub(super) struct Checkpoints {
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only the tests read the counts")
    )]
    counters: Arc<Counters>,
}

impl Checkpoints {
    /// Starts the checkpoint thread on `own` (a connection to the same
    /// database, used for nothing else) and hooks `writer`'s commits to it.
    /// The handle only counts (for the tests): dropping it leaves the
    /// thread running.
    pub(super) fn start(writer: &mut Connection, own: Connection) -> Result<Self, StoreError> {
        // One pending signal is enough: a checkpoint copies every frame
        // committed before it starts.
        let (wake, signals) = mpsc::sync_channel::<()>(1);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("sqrl-db-checkpoint".to_owned())
            .spawn(move || run(&own, &signals, &thread_counters))
            .map_err(|e| StoreError::Open(format!("starting the checkpoint thread: {e}")))?;
        let hook_counters = Arc::clone(&counters);
        // Replaces SQLite's own checkpoint-on-commit hook (the
        // `wal_autocheckpoint` setting is itself a WAL hook). The hook runs
        // after the commit, and what it returns becomes the result of the
        // `COMMIT` statement: it must never fail, or a batch already on disk
        // would be reported lost.
        writer.wal_hook(Some(move |wal: &mut Wal, pages: i32| {
            if pages >= WRITER_CHECKPOINT_PAGES {
                // Busy when the thread is checkpointing at this moment:
                // then it is doing the work.
                if wal.checkpoint_v2(CheckpointMode::PASSIVE).is_ok() {
                    hook_counters.in_commit.fetch_add(1, Ordering::Relaxed);
                }
            } else if pages >= CHECKPOINT_AFTER_PAGES {
                // Full: a signal is already pending. Disconnected: the
                // thread is gone, and the mark above still bounds the WAL.
                let _ = wake.try_send(());
            }
            Ok(())
        }))?;
        Ok(Self { counters })
    }

    #[cfg(test)]
    fn stats(&self) -> CheckpointStats {
        CheckpointStats {
            background: self.counters.background.load(Ordering::Relaxed),
            in_commit: self.counters.in_commit.load(Ordering::Relaxed),
        }
    }
}

/// The checkpoint thread: one `PASSIVE` checkpoint per signal, until the
/// writer's connection (and with it the hook holding the sender) is gone.
fn run(conn: &Connection, signals: &mpsc::Receiver<()>, counters: &Counters) {
    while signals.recv().is_ok() {
        match conn.wal_checkpoint_v2(Some(c"main"), CheckpointMode::PASSIVE) {
            Ok(_) => {
                counters.background.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is checkpointing in its commit at this moment.
            Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {}
            // The writer's mark still bounds the WAL; the next signal tries
            // again.
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::open_connection;
    use super::*;

    /// Page size of the test databases (SQLite's default).
    const PAGE: usize = 4096;

    /// A writer connection with the checkpoint thread started on it, and
    /// the database's directory.
    fn database() -> (Connection, Checkpoints, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let mut writer = open_connection(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE pages (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            .unwrap();
        let checkpoints = Checkpoints::start(&mut writer, open_connection(&path).unwrap()).unwrap();
        (writer, checkpoints, dir)
    }

    /// Commits rows of about a page each, `per_commit` to a commit, until
    /// `pages` pages have been written.
    fn write_pages(writer: &Connection, pages: usize, per_commit: usize) {
        let row = vec![7u8; PAGE - 200];
        for _ in 0..pages.div_ceil(per_commit) {
            let tx = writer.unchecked_transaction().unwrap();
            for _ in 0..per_commit {
                tx.execute("INSERT INTO pages (data) VALUES (?1)", [&row])
                    .unwrap();
            }
            tx.commit().unwrap();
        }
    }

    fn database_bytes(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("wal.db")).unwrap().len()
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_thread_copies_the_wal_into_the_file_and_commits_never_do() {
        let (writer, checkpoints, dir) = database();
        let before = database_bytes(&dir);
        // Past the mark, but far below the writer's own: only the thread
        // may checkpoint.
        let pages = usize::try_from(CHECKPOINT_AFTER_PAGES).unwrap() * 3 / 2;
        write_pages(&writer, pages, 50);
        wait_for("a checkpoint on the thread", || {
            checkpoints.stats().background >= 1
        });
        // The rows are in the database file itself now, not only in the WAL.
        let grown = database_bytes(&dir) - before;
        assert!(
            grown >= u64::try_from(CHECKPOINT_AFTER_PAGES).unwrap() * PAGE as u64,
            "the file grew by {grown} bytes"
        );
        assert_eq!(checkpoints.stats().in_commit, 0, "no commit checkpointed");
        // Well below the mark a commit asks for nothing.
        let (small, quiet, _dir) = database();
        write_pages(&small, 100, 10);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(quiet.stats(), CheckpointStats::default());
    }

    #[test]
    fn the_writer_checkpoints_itself_once_the_wal_outgrows_its_mark() {
        let (writer, checkpoints, dir) = database();
        write_pages(&writer, 10, 10);
        // A reader in the middle of a read keeps every frame committed
        // after its snapshot in the WAL: no checkpoint can copy them, and
        // the WAL can only grow.
        let reader = open_connection(&dir.path().join("wal.db")).unwrap();
        let snapshot = reader.unchecked_transaction().unwrap();
        let rows: i64 = snapshot
            .query_row("SELECT count(*) FROM pages", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 10);
        let pages = usize::try_from(WRITER_CHECKPOINT_PAGES).unwrap() + 500;
        write_pages(&writer, pages, 500);
        assert!(
            checkpoints.stats().in_commit >= 1,
            "the writer checkpointed: {:?}",
            checkpoints.stats()
        );
        drop(snapshot);
    }
}
