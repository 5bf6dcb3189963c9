//! The single SQLite writer, with group commit.
//!
//! SQLite admits one writer at a time, and with `synchronous=FULL` every
//! commit that changes the database file waits for an fsync of the WAL. So
//! all writes (and every read of the logins in flight, which live in this
//! connection's memory) go to one thread that owns the writer connection,
//! and whatever is queued when it comes round runs as one batch: one
//! `BEGIN IMMEDIATE` transaction, each job in its own savepoint (a job that
//! fails, or asks to roll back, undoes its own writes and nobody else's), one
//! `COMMIT`, so at most one fsync for the whole batch, and none for a batch
//! that only touched memory.
//!
//! A job's result is handed back only once that `COMMIT` has returned:
//! nothing is acknowledged before it is synced. Jobs in a batch run one after
//! the other, each seeing the writes of those before it, exactly as if each
//! had its own transaction. Alone, a request pays one fsync as before; under
//! load, many share one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::super::StoreError;

/// Most jobs committed together (bounds the latency a batch adds).
const MAX_BATCH: usize = 64;

/// What a write job's work asks for.
#[derive(Debug)]
pub(super) enum Written<T> {
    /// Keep the job's writes; `T` is returned once the batch is committed.
    Commit(T),
    /// Undo the job's writes (a conflict found half-way); `T` is returned.
    Rollback(T),
}

/// A queued job, type-erased for the queue.
trait Job: Send {
    /// Runs the work; returns whether its writes are kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Hands back the result once the batch's fate is known (`committed` is
    /// the error text when the batch could not be committed).
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<Written<T>, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<Written<T>, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panicking job must not take the writer (and every later write)
        // down with it: it fails alone and its writes are rolled back.
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Task("write job panicked".to_owned())));
        let keep = matches!(result, Ok(Written::Commit(_)));
        self.result = Some(result);
        keep
    }

    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let result = match self.result {
            Some(Ok(Written::Commit(value))) => committed
                .map(|()| value)
                .map_err(|error| StoreError::Task(format!("commit failed: {error}"))),
            Some(Ok(Written::Rollback(value))) => Ok(value),
            Some(Err(error)) => Err(error),
            None => Err(StoreError::Task(format!(
                "write not run: {}",
                committed.err().unwrap_or("batch failed")
            ))),
        };
        // The caller may have gone (request cancelled): nothing to do.
        let _ = self.reply.send(result);
    }
}

/// How the writer has batched so far: with `jobs` well above `batches`,
/// requests are sharing commits (and fsyncs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchStats {
    /// Transactions the writer has run (committed or not).
    pub batches: u64,
    /// Jobs those transactions held.
    pub jobs: u64,
    /// The most jobs one transaction held.
    pub largest: u64,
}

/// The counters behind [`BatchStats`], shared with the writer thread.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    jobs: AtomicU64,
    largest: AtomicU64,
}

impl Counters {
    fn record(&self, size: usize) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }

    fn snapshot(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            jobs: self.jobs.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
        }
    }
}

/// The handle on the writer thread. Dropping every handle stops the thread
/// once the queue is empty (and closes the connection).
#[derive(Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread with the connection it owns from now on.
    /// `lost` runs on the writer thread after a batch that could not be
    /// committed, before the next batch starts.
    pub(super) fn start(
        conn: Connection,
        lost: impl Fn() + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("sqrl-db-writer".to_owned())
            .spawn(move || run(&conn, &queue, &thread_counters, &lost))
            .map_err(|e| StoreError::Open(format!("starting the writer thread: {e}")))?;
        Ok(Self { jobs, counters })
    }

    /// How the writer has batched since it started.
    pub(crate) fn stats(&self) -> BatchStats {
        self.counters.snapshot()
    }

    /// Queues `work` and waits until its batch is committed.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Written<T>, StoreError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job = Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Task("the database writer has stopped".to_owned()))?;
        result
            .await
            .map_err(|_| StoreError::Task("the database writer dropped a write".to_owned()))?
    }
}

/// The writer thread: batches until every handle is gone.
fn run(
    conn: &Connection,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    counters: &Counters,
    lost: &dyn Fn(),
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        let drain = |batch: &mut Vec<Box<dyn Job>>| {
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        };
        drain(&mut batch);
        if batch.len() < MAX_BATCH {
            // The thread that queued the first job may be waiting for this
            // core (one core, or all busy) with more to queue: let it, so
            // that they share this batch's sync. With a core free, this
            // returns at once.
            std::thread::yield_now();
            drain(&mut batch);
        }
        counters.record(batch.len());
        let committed = run_batch(conn, &mut batch);
        if committed.is_err() {
            lost();
        }
        let committed = committed.as_ref().copied().map_err(String::as_str);
        for job in batch {
            job.finish(committed);
        }
    }
}

/// Runs a batch in one transaction. `Err` (with the reason) when it could
/// not be committed: then nothing of it is kept.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    let statement = |sql: &str| -> Result<(), String> {
        conn.prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    statement("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        let outcome = statement("SAVEPOINT job").and_then(|()| {
            if job.run(conn) {
                statement("RELEASE job")
            } else {
                statement("ROLLBACK TO job").and_then(|()| statement("RELEASE job"))
            }
        });
        if let Err(error) = outcome {
            // The transaction is in an unknown state: give it all up.
            let _ = statement("ROLLBACK");
            return Err(error);
        }
    }
    if let Err(error) = statement("COMMIT") {
        let _ = statement("ROLLBACK");
        return Err(error);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        writer_reporting_lost(|| {})
    }

    fn writer_reporting_lost(lost: impl Fn() + Send + 'static) -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        (Writer::start(conn, lost).unwrap(), dir)
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> {
        move |conn| {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(())
        }
    }

    fn stored(dir: &tempfile::TempDir) -> Vec<i64> {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let mut statement = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn a_job_that_fails_undoes_only_its_own_writes() {
        let (writer, dir) = writer();
        // Queued together, so that they share batches.
        let results = futures_util::future::join_all((0..40).map(|v| {
            let writer = &writer;
            async move {
                match v % 4 {
                    0 => {
                        writer
                            .write(move |c| insert(v)(c).map(Written::Commit))
                            .await
                    }
                    1 => {
                        writer
                            .write(move |c| insert(v)(c).map(|()| Written::Rollback(())))
                            .await
                    }
                    // Writes, then fails (a duplicate key): rolled back.
                    2 => {
                        writer
                            .write(move |c| {
                                insert(v)(c)?;
                                insert(v)(c).map(Written::Commit)
                            })
                            .await
                    }
                    _ => {
                        writer
                            .write(move |c| -> Result<Written<()>, StoreError> {
                                insert(v)(c)?;
                                panic!("job {v} fails")
                            })
                            .await
                    }
                }
            }
        }))
        .await;
        for (v, result) in results.iter().enumerate() {
            assert_eq!(result.is_ok(), v % 4 < 2, "job {v}: {result:?}");
        }
        let expected: Vec<i64> = (0..40).filter(|v| v % 4 == 0).collect();
        assert_eq!(stored(&dir), expected);
        // The writer still works after a panicking job.
        writer
            .write(|c| insert(100)(c).map(Written::Commit))
            .await
            .unwrap();
        assert!(stored(&dir).contains(&100));
    }

    #[tokio::test]
    async fn a_batch_that_cannot_commit_is_reported_lost_before_the_next_runs() {
        let lost = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&lost);
        let (writer, dir) = writer_reporting_lost(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        writer
            .write(|c| insert(1)(c).map(Written::Commit))
            .await
            .unwrap();
        assert_eq!(
            lost.load(Ordering::SeqCst),
            0,
            "a committed batch is not lost"
        );
        // A job that ends the batch's transaction under the writer: nothing
        // after it can be committed.
        let failed = writer
            .write(|c| {
                insert(2)(c)?;
                c.execute_batch("ROLLBACK")?;
                Ok(Written::Commit(()))
            })
            .await;
        assert!(failed.is_err(), "{failed:?}");
        assert_eq!(lost.load(Ordering::SeqCst), 1);
        writer
            .write(|c| insert(3)(c).map(Written::Commit))
            .await
            .unwrap();
        assert_eq!(lost.load(Ordering::SeqCst), 1);
        assert_eq!(stored(&dir), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_result_is_handed_back_after_its_commit() {
        let (writer, dir) = writer();
        writer
            .write(|c| insert(1)(c).map(Written::Commit))
            .await
            .unwrap();
        // Another connection sees it at once: the transaction was committed.
        assert_eq!(stored(&dir), vec![1]);
    }

    #[tokio::test]
    async fn jobs_queued_behind_a_running_batch_share_the_next_commit() {
        let (writer, dir) = writer();
        let writer = Arc::new(writer);
        // The first job holds the writer until the others are queued.
        let (started, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let writer = Arc::clone(&writer);
            async move {
                writer
                    .write(move |c| {
                        let _ = started.send(());
                        release_rx.recv().unwrap();
                        insert(0)(c).map(Written::Commit)
                    })
                    .await
            }
        });
        started_rx.await.unwrap();
        // `join_all` polls each write once, in order, before the release
        // runs, so all nine are queued while the first batch is held.
        type Waiting = std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>>>>;
        let mut waiting: Vec<Waiting> = (1..10)
            .map(|v| {
                let writer = Arc::clone(&writer);
                Box::pin(async move {
                    writer
                        .write(move |c| insert(v)(c).map(Written::Commit))
                        .await
                }) as Waiting
            })
            .collect();
        waiting.push(Box::pin(async move {
            release.send(()).unwrap();
            Ok(())
        }));
        for result in futures_util::future::join_all(waiting).await {
            result.unwrap();
        }
        first.await.unwrap().unwrap();
        assert_eq!(
            writer.stats(),
            BatchStats {
                batches: 2,
                jobs: 10,
                largest: 9
            }
        );
        assert_eq!(stored(&dir), (0..10).collect::<Vec<i64>>());
    }
}
