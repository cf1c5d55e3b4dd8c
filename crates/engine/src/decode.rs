//! Decoding raw event bytes, with the reasons a record is sent to the dead letters.

use serde::Serialize;
use serde_json::Value;

/// Why an event could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The text is not JSON.
    NotJson,
    /// The JSON is not an object.
    NotObject,
    /// The record is larger than the configured limit.
    TooLarge,
}

impl DeadLetterReason {
    /// The reason as a bounded label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::NotUtf8 => "not_utf8",
            DeadLetterReason::NotJson => "not_json",
            DeadLetterReason::NotObject => "not_object",
            DeadLetterReason::TooLarge => "too_large",
        }
    }

    /// Every reason, for pre-registering metric series.
    pub const ALL: [DeadLetterReason; 4] = [
        DeadLetterReason::NotUtf8,
        DeadLetterReason::NotJson,
        DeadLetterReason::NotObject,
        DeadLetterReason::TooLarge,
    ];
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct DecodeError {
    /// The reason class.
    pub reason: DeadLetterReason,
    /// What exactly is wrong (e.g. the JSON parser's line and column).
    pub detail: String,
}

/// Decodes one record into a JSON object.
pub fn decode_event(bytes: &[u8], max_bytes: usize) -> Result<Value, DecodeError> {
    let text = record_text(bytes, max_bytes)?;
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError {
        reason: DeadLetterReason::NotJson,
        detail: format!("invalid json at column {}: {e}", e.column()),
    })?;
    if !value.is_object() {
        let kind = match value {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(DecodeError {
            reason: DeadLetterReason::NotObject,
            detail: format!("the event is {kind}, not an object"),
        });
    }
    Ok(value)
}

/// A record's text, checked for size and UTF-8, without a trailing CR or a byte order mark.
pub(crate) fn record_text(bytes: &[u8], max_bytes: usize) -> Result<&str, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError {
            reason: DeadLetterReason::TooLarge,
            detail: format!("{} bytes, limit {max_bytes}", bytes.len()),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError {
        reason: DeadLetterReason::NotUtf8,
        detail: format!("invalid utf-8 at byte {}", e.valid_up_to()),
    })?;
    let text = text.strip_suffix('\r').unwrap_or(text);
    // A byte order mark (Windows tools write one at the top of a file) is not JSON.
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_classified() {
        assert_eq!(decode_event(b"{\"a\":1}\r", 100).unwrap()["a"], 1);
        assert_eq!(
            decode_event(b"{", 100).unwrap_err().reason,
            DeadLetterReason::NotJson
        );
        assert_eq!(
            decode_event(b"[1]", 100).unwrap_err().reason,
            DeadLetterReason::NotObject
        );
        assert_eq!(
            decode_event(b"{\"a\":\"\xff\"}", 100).unwrap_err().reason,
            DeadLetterReason::NotUtf8
        );
        assert_eq!(
            decode_event(&[b' '; 101], 100).unwrap_err().reason,
            DeadLetterReason::TooLarge
        );
    }
}
