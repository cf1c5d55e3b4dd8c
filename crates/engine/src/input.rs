//! Reading events from files: JSON Lines (CRLF too), JSON documents holding one or several
//! objects (or an array of them), and Windows EVTX through the `evtx` crate.
//!
//! Each record carries its 0-based offset in the input (line for JSON Lines, object for
//! JSON, record for EVTX) and the 1-based line where it starts, so a bad record can be
//! reported by file and line while the rest of the input goes on.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use crate::decode::{decode_event, DeadLetterReason, DecodeError};

/// One record of an input.
#[derive(Debug)]
pub struct Record {
    /// 0-based index of the record in its input.
    pub offset: u64,
    /// 1-based line (JSON inputs) where the record starts; 0 for EVTX.
    pub line: u64,
    /// The event, or why it is unusable.
    pub event: Result<Value, DecodeError>,
}

/// The largest record read from a file (64 MiB).
pub const MAX_FILE_RECORD: usize = 64 << 20;

/// What kind of input a path holds, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object per line.
    JsonLines,
    /// One or several JSON objects, or an array of them.
    Json,
    /// Windows XML event log.
    Evtx,
}

impl InputFormat {
    /// Chooses by extension: `.evtx`, `.json`, anything else is JSON Lines.
    pub fn for_path(path: &str) -> InputFormat {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".evtx") {
            InputFormat::Evtx
        } else if lower.ends_with(".json") {
            InputFormat::Json
        } else {
            InputFormat::JsonLines
        }
    }
}

/// The extensions of the event files [`event_files`] collects.
pub const EVENT_FILE_EXTENSIONS: &[&str] = &["jsonl", "ndjson", "json", "evtx"];

/// The event files in a folder and its subfolders, in path order (hidden entries skipped).
pub fn event_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    crate::builder::files_under(dir, EVENT_FILE_EXTENSIONS)
}

/// Opens an input (`-` is standard input, read as JSON Lines) as an iterator of records.
pub fn read_records(path: &str) -> std::io::Result<Box<dyn Iterator<Item = Record> + Send>> {
    if path == "-" {
        return Ok(Box::new(JsonLines::new(Box::new(std::io::stdin()))));
    }
    // Linux opens a folder like a file and fails only on read.
    if Path::new(path).is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a folder, not an event file",
        ));
    }
    match InputFormat::for_path(path) {
        InputFormat::JsonLines => Ok(Box::new(JsonLines::new(Box::new(File::open(path)?)))),
        InputFormat::Json => {
            let mut text = Vec::new();
            File::open(path)?.read_to_end(&mut text)?;
            Ok(Box::new(json_documents(&text).into_iter()))
        }
        InputFormat::Evtx => evtx_records(Path::new(path)),
    }
}

/// JSON Lines from any reader; blank lines are skipped but still counted.
pub struct JsonLines {
    reader: BufReader<Box<dyn Read + Send>>,
    line: u64,
    buf: Vec<u8>,
    /// Set after a read error: the reader would fail the same way forever.
    failed: bool,
}

impl JsonLines {
    /// Reads JSON Lines from `reader`.
    pub fn new(reader: Box<dyn Read + Send>) -> JsonLines {
        JsonLines {
            reader: BufReader::with_capacity(1 << 16, reader),
            line: 0,
            buf: Vec::new(),
            failed: false,
        }
    }
}

impl Iterator for JsonLines {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let (offset, line) = self.next_line()?;
        Some(Record {
            offset,
            line: offset + 1,
            event: line.and_then(|bytes| decode_event(bytes, MAX_FILE_RECORD)),
        })
    }
}

/// An event as read: parsed, or the text of a JSON Lines record, decoded when evaluated
/// ([`RuleSet::evaluate_input`](crate::RuleSet::evaluate_input)).
#[derive(Debug)]
pub enum EventInput {
    /// A parsed JSON object (JSON and EVTX inputs).
    Tree(Value),
    /// The bytes of one record.
    Text(Vec<u8>),
}

/// One record of an input, not yet decoded when the input is JSON Lines.
#[derive(Debug)]
pub struct InputRecord {
    /// 0-based index of the record in its input.
    pub offset: u64,
    /// 1-based line (JSON inputs) where the record starts; 0 for EVTX.
    pub line: u64,
    /// The event, or why it could not be read.
    pub event: Result<EventInput, DecodeError>,
}

/// Opens an input like [`read_records`], leaving JSON Lines records undecoded, so the rule
/// set decodes them straight into what its rules read.
pub fn read_inputs(path: &str) -> std::io::Result<Box<dyn Iterator<Item = InputRecord> + Send>> {
    let lines = |reader: Box<dyn Read + Send>| -> Box<dyn Iterator<Item = InputRecord> + Send> {
        let mut lines = JsonLines::new(reader);
        Box::new(std::iter::from_fn(move || {
            let (offset, line) = lines.next_line()?;
            Some(InputRecord {
                offset,
                line: offset + 1,
                event: line.map(|bytes| EventInput::Text(bytes.to_vec())),
            })
        }))
    };
    if path == "-" {
        return Ok(lines(Box::new(std::io::stdin())));
    }
    if !Path::new(path).is_dir() && InputFormat::for_path(path) == InputFormat::JsonLines {
        return Ok(lines(Box::new(File::open(path)?)));
    }
    Ok(Box::new(read_records(path)?.map(|r| InputRecord {
        offset: r.offset,
        line: r.line,
        event: r.event.map(EventInput::Tree),
    })))
}

impl JsonLines {
    /// The next line holding a record, with its 0-based number: its bytes without the line
    /// end, or why it cannot be read.
    fn next_line(&mut self) -> Option<(u64, Result<&[u8], DecodeError>)> {
        let (offset, len) = self.next_line_len()?;
        Some((offset, len.map(|n| &self.buf[..n])))
    }

    /// [`JsonLines::next_line`], with the record as the length of its bytes in `buf`.
    fn next_line_len(&mut self) -> Option<(u64, Result<usize, DecodeError>)> {
        loop {
            if self.failed {
                return None;
            }
            self.buf.clear();
            // Bounded: a stream with no newline (`/dev/zero`, a binary file) must not be
            // gathered into memory before its size is checked. Room for the CR and LF.
            let limit = MAX_FILE_RECORD as u64 + 2;
            let read = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .and_then(|n| {
                    let overlong = n as u64 == limit && self.buf.last() != Some(&b'\n');
                    if overlong {
                        skip_line(&mut self.reader)?;
                    }
                    Ok((n, overlong))
                });
            match read {
                Ok((0, _)) => return None,
                Ok((_, false)) => {}
                Ok((_, true)) => {
                    return Some((
                        self.take_line(),
                        Err(DecodeError {
                            reason: DeadLetterReason::TooLarge,
                            detail: format!("the line is longer than {MAX_FILE_RECORD} bytes"),
                        }),
                    ));
                }
                Err(e) => {
                    self.failed = true;
                    return Some((
                        self.take_line(),
                        Err(DecodeError {
                            reason: DeadLetterReason::NotJson,
                            detail: format!("read error: {e}; the rest of the input is skipped"),
                        }),
                    ));
                }
            }
            let mut bytes = self.buf.as_slice();
            while let Some((last, rest)) = bytes.split_last() {
                if matches!(last, b'\n' | b'\r') {
                    bytes = rest;
                } else {
                    break;
                }
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                self.line += 1; // a blank line is no record but keeps its number
                continue;
            }
            let len = bytes.len();
            return Some((self.take_line(), Ok(len)));
        }
    }

    /// The current line's number; moves on to the next line.
    fn take_line(&mut self) -> u64 {
        self.line += 1;
        self.line - 1
    }
}

/// Consumes the rest of a line without keeping it.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

/// Splits a JSON text into records: a top-level array gives one record per element, and
/// several concatenated objects give one each.
pub fn json_documents(bytes: &[u8]) -> Vec<Record> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return vec![Record {
                offset: 0,
                line: 1,
                event: Err(DecodeError {
                    reason: DeadLetterReason::NotUtf8,
                    detail: format!("invalid utf-8 at byte {}", e.valid_up_to()),
                }),
            }]
        }
    };
    // A byte order mark is not JSON, but Windows tools write one; it carries no data.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Lines are counted from where the previous document started, not from the top of the
    // text each time: a file of many small objects would otherwise take quadratic time.
    let (mut counted_to, mut line) = (0usize, 1u64);
    let mut line_of = |byte: usize| {
        line += text.as_bytes()[counted_to..byte]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        counted_to = byte;
        line
    };
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        let start = start + text[start..].len() - text[start..].trim_start().len();
        match stream.next() {
            None => break,
            Some(Ok(Value::Array(items))) => {
                let line = line_of(start);
                for item in items {
                    let event = if item.is_object() {
                        Ok(item)
                    } else {
                        Err(DecodeError {
                            reason: DeadLetterReason::NotObject,
                            detail: "array element is not an object".into(),
                        })
                    };
                    out.push(Record {
                        offset: out.len() as u64,
                        line,
                        event,
                    });
                }
            }
            Some(Ok(v)) => {
                let event = if v.is_object() {
                    Ok(v)
                } else {
                    Err(DecodeError {
                        reason: DeadLetterReason::NotObject,
                        detail: "the document is not an object".into(),
                    })
                };
                out.push(Record {
                    offset: out.len() as u64,
                    line: line_of(start),
                    event,
                });
            }
            Some(Err(e)) => {
                out.push(Record {
                    offset: out.len() as u64,
                    line: e.line() as u64,
                    event: Err(DecodeError {
                        reason: DeadLetterReason::NotJson,
                        // The stream cannot resynchronise after a syntax error, so say
                        // that what follows is not read rather than drop it silently.
                        detail: format!(
                            "invalid json at line {} column {}: {e}; the rest of the input \
                             is skipped",
                            e.line(),
                            e.column()
                        ),
                    }),
                });
                break;
            }
        }
    }
    out
}

fn evtx_records(path: &Path) -> std::io::Result<Box<dyn Iterator<Item = Record> + Send>> {
    let mut parser = evtx::EvtxParser::from_path(path).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an evtx file: {e}"),
        )
    })?;
    let mut records: Vec<Record> = parser
        .records_json_value()
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as u64,
            line: 0,
            event: r.map(|rec| rec.data).map_err(|e| DecodeError {
                reason: DeadLetterReason::NotJson,
                detail: format!("evtx record {i}: {e}"),
            }),
        })
        .collect();
    // The evtx crate reads whole 64 KiB chunks and silently ignores a partial one at the end
    // of the file, so a truncated copy would lose its last records without a word.
    let len = std::fs::metadata(path)?.len();
    let partial = len.saturating_sub(EVTX_HEADER_BYTES) % EVTX_CHUNK_BYTES;
    if partial != 0 {
        records.push(Record {
            offset: records.len() as u64,
            line: 0,
            event: Err(DecodeError {
                reason: DeadLetterReason::NotJson,
                detail: format!(
                    "the file is truncated: its last chunk holds {partial} of \
                     {EVTX_CHUNK_BYTES} bytes, so its records are not read"
                ),
            }),
        });
    }
    Ok(Box::new(records.into_iter()))
}

/// The EVTX file header, before the first chunk.
const EVTX_HEADER_BYTES: u64 = 4096;
/// Every EVTX chunk has this size.
const EVTX_CHUNK_BYTES: u64 = 65536;
