use std::{
    io::{self, Write},
    sync::{Mutex, PoisonError},
};

use super::{Sink, SinkError};
use crate::report::Report;

/// Writes each report as one JSON line (the schema in `docs/report-schema.md`) to any
/// [`Write`]r, one `write_all` and one `flush` per batch.
///
/// Writing is synchronous on the worker task, so give it a fast writer (stdout, a file, a
/// buffer). A write error fails the batch.
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
    writer: Mutex<W>,
}

impl<W> JsonLinesSink<W> {
    /// A sink writing to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer: Mutex::new(writer),
        }
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.writer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W: Write + Send + 'static> Sink for JsonLinesSink<W> {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.write_batch(batch).map_err(SinkError::new)
    }
}

impl<W: Write> JsonLinesSink<W> {
    fn write_batch(&self, batch: &[Report]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for report in batch {
            serde_json::to_writer(&mut buf, report)?;
            buf.push(b'\n');
        }
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.write_all(&buf)?;
        writer.flush()
    }
}
