//! Group commit for the writes on the push path (upload sessions, blob links,
//! manifests). SQLite lets one writer in at a time and each durable commit waits for
//! fsync, so concurrent pushes committing one by one queue on the lock (SQLite's busy
//! handler sleeps, which is what made push latency spiky) and pay one fsync each.
//! Here one task owns a connection, takes every write queued while the previous
//! commit was on its way to disk, runs each in its own savepoint, commits them
//! together, and only then answers each caller: one fsync for the batch, and a write
//! that fails rolls back alone. No crate offers this for sqlx, hence by hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::{AnyConnection, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::{Engine, MetadataError, Result};

/// Writes taken into one transaction at most.
const MAX_BATCH: usize = 256;
/// Writes waiting at most; beyond, writers wait to queue, so an overload slows pushes
/// down instead of growing memory.
const MAX_QUEUED: usize = 4096;

pub(crate) type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// A queued write: run it inside the batch's transaction, or fail it unrun.
trait QueuedWrite: Send {
    /// Runs the write; the answer is held until the batch's commit is known.
    fn run<'c>(self: Box<Self>, conn: &'c mut AnyConnection) -> BoxFuture<'c, Ran>;
    fn fail(self: Box<Self>, error: Arc<sqlx::Error>);
}

/// A write that ran: whether it succeeded, and how to answer its caller once the
/// transaction's fate is known.
struct Ran {
    ok: bool,
    answer: Box<dyn FnOnce(Option<Arc<sqlx::Error>>) + Send>,
}

struct Pending<F, T> {
    write: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> QueuedWrite for Pending<F, T>
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    T: Send + 'static,
{
    fn run<'c>(self: Box<Self>, conn: &'c mut AnyConnection) -> BoxFuture<'c, Ran> {
        let Pending { write, reply } = *self;
        Box::pin(async move {
            let result = write(conn).await;
            let ok = result.is_ok();
            let answer = move |commit_error: Option<Arc<sqlx::Error>>| {
                let _ = reply.send(match commit_error {
                    Some(e) if ok => Err(MetadataError::CommitFailed(e)),
                    _ => result,
                });
            };
            Ran { ok, answer: Box::new(answer) }
        })
    }

    fn fail(self: Box<Self>, error: Arc<sqlx::Error>) {
        let _ = self.reply.send(Err(MetadataError::CommitFailed(error)));
    }
}

/// The handle writers queue through; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn QueuedWrite>>,
    /// Asks the task to finish what is queued, close its connection and say so.
    stop: Arc<std::sync::Mutex<Option<oneshot::Sender<oneshot::Sender<()>>>>>,
}

impl Writer {
    /// Starts the task writing through `conn`, which ends when the last handle is
    /// dropped.
    pub(crate) fn start(conn: AnyConnection, engine: Engine) -> Writer {
        let (queue, writes) = mpsc::channel(MAX_QUEUED);
        let (stop, stop_requests) = oneshot::channel();
        tokio::spawn(run(conn, engine, writes, stop_requests));
        Writer { queue, stop: Arc::new(std::sync::Mutex::new(Some(stop))) }
    }

    /// Commits what is queued, refuses later writes (`Stopped`) and closes the
    /// connection, so that SQLite can checkpoint its log when the last one closes.
    pub(crate) async fn close(&self) {
        let stop = self.stop.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(stop) = stop {
            let (done, closed) = oneshot::channel();
            if stop.send(done).is_ok() {
                let _ = closed.await;
            }
        }
    }

    /// Runs `write` in a transaction shared with other queued writes; answers after the
    /// commit is durable. When `write` fails, what it changed is rolled back and the
    /// others commit without it.
    pub(crate) async fn write<F, T>(&self, write: F) -> Result<T>
    where
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Box::new(Pending { write, reply }))
            .await
            .map_err(|_| MetadataError::Stopped)?;
        answer.await.map_err(|_| MetadataError::Stopped)?
    }
}

async fn run(
    mut conn: AnyConnection,
    engine: Engine,
    mut writes: mpsc::Receiver<Box<dyn QueuedWrite>>,
    mut stop: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = None;
    loop {
        tokio::select! {
            received = writes.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    break; // every handle is gone, or stopping and all that was queued is done
                }
                commit_batch(&mut conn, engine, batch.drain(..)).await;
            }
            request = &mut stop, if stopping.is_none() => {
                writes.close(); // what is queued still arrives; nothing more can be sent
                stopping = Some(request.ok());
            }
        }
    }
    let _ = conn.close().await;
    if let Some(Some(done)) = stopping {
        let _ = done.send(());
    }
}

async fn commit_batch(
    conn: &mut AnyConnection,
    engine: Engine,
    batch: impl Iterator<Item = Box<dyn QueuedWrite>>,
) {
    // Each write runs in a savepoint of its own. On PostgreSQL every statement is a
    // round trip under the write lock, so transaction control shares them: the
    // transaction begins with the first savepoint, and each later savepoint replaces
    // the one before.
    if let Err(e) = exec(conn, engine.begin_write_batch()).await {
        let e = Arc::new(e);
        batch.for_each(|w| w.fail(Arc::clone(&e)));
        return;
    }
    let mut answers = Vec::new();
    let mut failed = None;
    let mut batch = batch.peekable();
    while let Some(write) = batch.next() {
        if let Some(e) = &failed {
            write.fail(Arc::clone(e));
            continue;
        }
        let ran = write.run(conn).await;
        answers.push(ran.answer);
        let rolled_back = if ran.ok { Ok(()) } else { exec(conn, "ROLLBACK TO write").await };
        let next = match batch.peek() {
            Some(_) => exec(conn, "RELEASE write; SAVEPOINT write").await,
            None => Ok(()),
        };
        if let Err(e) = rolled_back.and(next) {
            failed = Some(Arc::new(e));
        }
    }
    let outcome = match failed {
        Some(e) => Err(e),
        None => exec(conn, "COMMIT").await.map_err(Arc::new),
    };
    let commit_error = match outcome {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, "committing a batch of writes failed");
            let _ = exec(conn, "ROLLBACK").await;
            Some(e)
        }
    };
    for answer in answers {
        answer(commit_error.clone());
    }
}

/// Runs transaction-control statements, several in one round trip (a simple query).
async fn exec(conn: &mut AnyConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(drop)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    async fn writer(dir: &tempfile::TempDir) -> (Writer, AnyConnection) {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("db").display());
        let mut reader = AnyConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .execute(&mut reader)
            .await
            .unwrap();
        let conn = AnyConnection::connect(&url).await.unwrap();
        (Writer::start(conn, Engine::Sqlite), reader)
    }

    fn insert(
        v: i64,
    ) -> impl for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<()>> + Send + 'static
    {
        move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (v) VALUES ($1)").bind(v).execute(&mut *conn).await?;
                Ok(())
            })
        }
    }

    /// Writes a row, then fails on the unique constraint.
    fn failing(conn: &mut AnyConnection) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO t (v) VALUES (100)").execute(&mut *conn).await?;
            sqlx::query("INSERT INTO t (v) VALUES (1)").execute(&mut *conn).await?;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, mut reader) = writer(&dir).await;
        // One poll of `join!` queues all three before the writer task (on this
        // current-thread runtime) runs, so they share a transaction.
        let (a, b, c) =
            tokio::join!(writer.write(insert(1)), writer.write(failing), writer.write(insert(2)));
        assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
        assert!(matches!(b, Err(MetadataError::Database(_))), "{b:?}");
        let rows = sqlx::query("SELECT v FROM t ORDER BY v").fetch_all(&mut reader).await.unwrap();
        let values: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(values, [1, 2]);
    }

    #[tokio::test]
    async fn closing_commits_what_is_queued_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, mut reader) = writer(&dir).await;
        let (queued, ()) = tokio::join!(writer.write(insert(1)), writer.close());
        queued.unwrap();
        assert!(matches!(writer.write(insert(2)).await, Err(MetadataError::Stopped)));
        let count: i64 =
            sqlx::query("SELECT count(*) FROM t").fetch_one(&mut reader).await.unwrap().get(0);
        assert_eq!(count, 1);
    }

    #[tokio::test]
    async fn many_concurrent_writes_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, mut reader) = writer(&dir).await;
        let writes: Vec<_> = (0..500)
            .map(|v| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.write(insert(v)).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        let count: i64 =
            sqlx::query("SELECT count(*) FROM t").fetch_one(&mut reader).await.unwrap().get(0);
        assert_eq!(count, 500);
    }
}
