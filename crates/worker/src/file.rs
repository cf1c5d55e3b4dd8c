//! The embedded default: JSON Lines from files or standard input, hits and dead letters to
//! files, standard output or standard error. Same pipeline as Kafka, minus the commits.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use foundry_engine::Hit;
use serde_json::json;

use crate::delivery::{PartitionKey, Ticket};
use crate::pipeline::{DeadLetter, DeadLetterSink, HitSink, RawRecord, Source};
use crate::WorkerError;

/// Reads JSON Lines from files one after the other (`-` is standard input).
///
/// A reader thread feeds a bounded channel so that a batch is cut after the configured wait
/// even when standard input is a slow stream.
pub struct FileSource {
    lines: Receiver<Result<RawRecord, WorkerError>>,
}

impl FileSource {
    /// Opens every input now, so a missing file fails before anything is read.
    pub fn open(inputs: &[String], capacity: usize) -> Result<FileSource, WorkerError> {
        let mut readers: Vec<(String, Box<dyn Read + Send>)> = Vec::new();
        let inputs = if inputs.is_empty() {
            vec!["-".to_string()]
        } else {
            inputs.to_vec()
        };
        for path in &inputs {
            let reader: Box<dyn Read + Send> = if path == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(File::open(path).map_err(|e| WorkerError::Io(format!("{path}: {e}")))?)
            };
            readers.push((path.clone(), reader));
        }
        let (tx, rx) = sync_channel(capacity.max(1));
        std::thread::Builder::new()
            .name("foundry-file-reader".into())
            .spawn(move || {
                for (path, reader) in readers {
                    let key = PartitionKey {
                        topic: path.as_str().into(),
                        partition: 0,
                    };
                    let mut reader = BufReader::with_capacity(1 << 16, reader);
                    let mut offset = 0i64;
                    loop {
                        let mut buf = Vec::new();
                        match reader.read_until(b'\n', &mut buf) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) => {
                                let _ = tx.send(Err(WorkerError::Io(format!("{path}: {e}"))));
                                return;
                            }
                        }
                        let line = offset;
                        offset += 1;
                        while matches!(buf.last(), Some(b'\n' | b'\r')) {
                            buf.pop();
                        }
                        if buf.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let record = RawRecord::new(key.clone(), line, buf.into());
                        if tx.send(Ok(record)).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| WorkerError::Io(format!("cannot start the reader: {e}")))?;
        Ok(FileSource { lines: rx })
    }
}

impl Source for FileSource {
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Option<Vec<RawRecord>>, WorkerError> {
        let mut out = Vec::new();
        match self.lines.recv_timeout(wait) {
            Ok(first) => out.push(first?),
            Err(RecvTimeoutError::Timeout) => return Ok(Some(out)),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
        }
        while out.len() < max {
            match self.lines.try_recv() {
                Ok(next) => out.push(next?),
                Err(_) => break,
            }
        }
        Ok(Some(out))
    }

    fn hold(&mut self, wait: Duration) -> Result<(), WorkerError> {
        std::thread::sleep(wait.min(Duration::from_millis(20)));
        Ok(())
    }
}

/// Opens `-` (standard output), `stderr`, or a file (created or truncated).
pub fn open_output(
    target: Option<&str>,
    default_stderr: bool,
) -> Result<Box<dyn Write + Send>, WorkerError> {
    Ok(match target {
        None if default_stderr => Box::new(std::io::stderr()),
        None | Some("-") => Box::new(std::io::stdout()),
        Some("stderr") => Box::new(std::io::stderr()),
        Some(path) => {
            Box::new(File::create(path).map_err(|e| WorkerError::Io(format!("{path}: {e}")))?)
        }
    })
}

/// Writes outputs one JSON object a line; acknowledges them once flushed.
pub struct JsonLinesSink {
    out: BufWriter<Box<dyn Write + Send>>,
    unflushed: Vec<Arc<Ticket>>,
}

impl JsonLinesSink {
    /// A sink over `out`.
    pub fn new(out: Box<dyn Write + Send>) -> JsonLinesSink {
        JsonLinesSink {
            out: BufWriter::with_capacity(1 << 16, out),
            unflushed: Vec::new(),
        }
    }

    fn write_line(
        &mut self,
        value: &impl serde::Serialize,
        ack: Arc<Ticket>,
    ) -> Result<(), WorkerError> {
        serde_json::to_writer(&mut self.out, value).map_err(|e| WorkerError::Io(e.to_string()))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| WorkerError::Io(e.to_string()))?;
        self.unflushed.push(ack);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WorkerError> {
        self.out
            .flush()
            .map_err(|e| WorkerError::Io(format!("writing output: {e}")))?;
        for ack in self.unflushed.drain(..) {
            ack.done();
        }
        Ok(())
    }
}

impl HitSink for JsonLinesSink {
    fn send(
        &mut self,
        hit: &Hit,
        _key: Option<&[u8]>,
        ack: Arc<Ticket>,
    ) -> Result<(), WorkerError> {
        self.write_line(hit, ack)
    }

    fn end_batch(&mut self, _records: &[RawRecord]) -> Result<(), WorkerError> {
        self.flush()
    }
}

impl DeadLetterSink for JsonLinesSink {
    fn send(&mut self, letter: &DeadLetter<'_>, ack: Arc<Ticket>) -> Result<(), WorkerError> {
        let record = letter.record;
        let mut line = json!({
            "reason": letter.error.reason.as_str(),
            "detail": letter.error.detail,
            "source": record.key.topic.as_ref(),
            "offset": record.offset,
            "worker": letter.worker,
        });
        match std::str::from_utf8(&record.payload) {
            Ok(text) => line["record"] = json!(text),
            Err(_) => {
                line["record_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&record.payload))
            }
        }
        self.write_line(&line, ack)
    }

    fn end_batch(&mut self) -> Result<(), WorkerError> {
        self.flush()
    }
}
