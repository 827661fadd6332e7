use std::{
    io::{self, Write},
    sync::{Arc, Mutex, PoisonError, TryLockError},
};

use super::{Sink, SinkError};
use crate::report::Report;

/// Writes each report as one JSON line (the schema in `docs/report-schema.md`) to any
/// [`Write`]r, one `write_all` and one `flush` per batch.
///
/// Reports are serialized on the reporter's worker; the write itself runs on tokio's blocking
/// pool ([`spawn_blocking`](tokio::task::spawn_blocking)), so a writer that blocks (a full
/// pipe, a slow disk, a terminal paused with Ctrl-S) never stalls a runtime thread, and on a
/// `current_thread` runtime never stalls the server. While one write is still blocked, later
/// batches fail at once (counted in [`ReporterStats::failed`](crate::report::ReporterStats))
/// instead of piling threads up behind it. A write error fails the batch.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::{JsonLinesSink, Reporter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (reporter, _guard) = Reporter::spawn(JsonLinesSink::new(std::io::stdout()));
/// # drop(reporter);
/// # }
/// ```
#[derive(Debug)]
pub struct JsonLinesSink<W> {
    writer: Arc<Mutex<W>>,
}

impl<W> JsonLinesSink<W> {
    /// A sink writing to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer: Arc::new(Mutex::new(writer)),
        }
    }

    /// Returns the writer, or the sink itself while a write that was cut short by the sink
    /// timeout is still blocked on it.
    ///
    /// # Errors
    ///
    /// `Err(self)` while such a write holds the writer.
    pub fn into_inner(self) -> Result<W, Self> {
        Arc::try_unwrap(self.writer)
            .map(|writer| writer.into_inner().unwrap_or_else(PoisonError::into_inner))
            .map_err(|writer| Self { writer })
    }
}

impl<W: Write + Send + 'static> Sink for JsonLinesSink<W> {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for report in batch {
            serde_json::to_writer(&mut buf, report).map_err(SinkError::new)?;
            buf.push(b'\n');
        }
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || write_all(&writer, &buf))
            .await
            .map_err(SinkError::new)?
            .map_err(SinkError::new)
    }
}

/// Writes `buf` and flushes, unless an earlier write still holds the writer.
fn write_all<W: Write>(writer: &Mutex<W>, buf: &[u8]) -> io::Result<()> {
    let mut writer = match writer.try_lock() {
        Ok(writer) => writer,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "an earlier batch's write is still blocked",
            ))
        }
    };
    writer.write_all(buf)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_still_blocked_fails_the_next_batch_at_once() {
        let writer = Mutex::new(Vec::new());
        let held = writer.lock().unwrap(); // an earlier write, still blocked
        let err = write_all(&writer, b"{}\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        write_all(&writer, b"{}\n").unwrap();
        assert_eq!(writer.into_inner().unwrap(), b"{}\n");
    }
}
