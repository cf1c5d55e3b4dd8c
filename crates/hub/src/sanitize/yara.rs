//! Sanitizing YARA source text without breaking it.
//!
//! Text strings are decoded (`\\`, `\"`, `\n`, `\t`, `\r`, `\xHH`), sanitized as the bytes the
//! scanner will look for, and re-encoded, so a Windows path written `C:\\Users\\jdoe` is seen
//! as `C:\Users\jdoe` by the detectors. Everything else — identifiers, meta keys, regular
//! expressions, comments, conditions — is sanitized as written; the detectors accept the
//! escaped forms (`10\.1\.2\.3`, doubled backslashes) that regular expressions use.

use super::detectors::{Detectors, Report};

/// Private-use code points stand in for `\xHH` escapes of non-ASCII bytes while a string is
/// decoded, so they survive re-encoding byte for byte.
const BYTE_BASE: u32 = 0xE000;

fn decode(body: &str) -> String {
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if b.is_ascii() => out.push(b as char),
                    Ok(b) => out.push(char::from_u32(BYTE_BASE + u32::from(b)).expect("valid")),
                    // Not a valid escape: keep it verbatim for the compiler to judge.
                    Err(_) => {
                        out.push_str("\\x");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) >= BYTE_BASE && (c as u32) < BYTE_BASE + 256 => {
                out.push_str(&format!("\\x{:02x}", c as u32 - BYTE_BASE));
            }
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Sanitizes YARA source; string literals are handled decoded, the rest as written.
pub fn sanitize_yara(source: &str, detectors: &Detectors, report: &mut Report) -> String {
    let mut out = String::with_capacity(source.len());
    let mut code = String::new();
    let mut rest = source;
    while !rest.is_empty() {
        if let Some(body_start) = rest.strip_prefix('"') {
            // A string literal: find its closing quote, honouring escapes.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in body_start.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    '\n' => break,
                    _ => {}
                }
            }
            if let Some(end) = end {
                out.push_str(&detectors.sanitize(&code, report));
                code.clear();
                let body = &body_start[..end];
                let clean = detectors.sanitize(&decode(body), report);
                out.push('"');
                out.push_str(&encode(&clean));
                out.push('"');
                rest = &body_start[end + 1..];
                continue;
            }
        }
        if rest.starts_with("//") || rest.starts_with("/*") {
            // Comments: kept as code text, but a quote inside one must not open a string.
            let end = if rest.starts_with("//") {
                rest.find('\n').unwrap_or(rest.len())
            } else {
                rest.find("*/").map(|i| i + 2).unwrap_or(rest.len())
            };
            code.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let c = rest.chars().next().expect("rest is not empty");
        code.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(&detectors.sanitize(&code, report));
    out
}
