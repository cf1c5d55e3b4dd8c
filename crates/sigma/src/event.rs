//! The view of an event that compiled rules evaluate against.
//!
//! The engine decides how JSON becomes fields (mapping, flattening); this crate only needs,
//! for each interned field, the values present, and for keyword searches every value.

use std::borrow::Cow;
use std::cell::OnceCell;

use crate::matcher::FieldId;

/// The kind of one event value.
#[derive(Debug, Clone)]
pub enum ValueKind<'a> {
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    Str(&'a str),
    /// An object: present, but not comparable as text.
    Object,
}

/// One value of an event field, with its text forms computed at most once.
#[derive(Debug, Clone)]
pub struct EventValue<'a> {
    /// What the value is.
    pub kind: ValueKind<'a>,
    /// For numbers, the text the event wrote; for strings, their lower-cased text when the
    /// caller had it (see [`EventValue::with_lower`]).
    given: Option<&'a str>,
    text: OnceCell<Option<Box<str>>>,
    lower: OnceCell<Option<Box<str>>>,
}

impl<'a> EventValue<'a> {
    /// A value of the given kind.
    pub fn new(kind: ValueKind<'a>) -> Self {
        EventValue {
            kind,
            given: None,
            text: OnceCell::new(),
            lower: OnceCell::new(),
        }
    }

    /// A string whose lower-cased text the caller already has (e.g. a slice of a lower-cased
    /// copy of the whole event's text); `lower` must be what [`EventValue::lower`] computes.
    pub fn with_lower(text: &'a str, lower: &'a str) -> Self {
        EventValue {
            given: Some(lower),
            ..EventValue::new(ValueKind::Str(text))
        }
    }

    /// A number with the text it was written as (so `4688` stays `4688`, not `4688.0`).
    pub fn from_number(value: f64, text: &'a str) -> Self {
        EventValue {
            given: Some(text),
            ..EventValue::new(ValueKind::Number(value))
        }
    }

    pub(crate) fn synthetic_number(n: i64) -> EventValue<'static> {
        let v = EventValue::new(ValueKind::Number(n as f64));
        let _ = v.text.set(Some(n.to_string().into_boxed_str()));
        v
    }

    /// Whether the value was made with its text (a number's as written, a string's
    /// lower-cased), rather than computing it when asked.
    pub fn has_given_text(&self) -> bool {
        self.given.is_some()
    }

    /// The value as text; `None` for null and objects.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::Str(s) => Some(s),
            ValueKind::Bool(true) => Some("true"),
            ValueKind::Bool(false) => Some("false"),
            ValueKind::Null | ValueKind::Object => None,
            ValueKind::Number(n) => self
                .text
                .get_or_init(|| {
                    Some(match self.given {
                        Some(t) => t.into(),
                        None => format_number(*n).into_boxed_str(),
                    })
                })
                .as_deref(),
        }
    }

    /// The value as lower-cased text, computed once.
    pub fn lower(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::Str(_) if self.given.is_some() => self.given,
            ValueKind::Str(s) => self
                .lower
                .get_or_init(|| match lowercase(s) {
                    Cow::Borrowed(_) => None,
                    Cow::Owned(l) => Some(l.into_boxed_str()),
                })
                .as_deref()
                .or(Some(s)),
            _ => self.text(),
        }
    }

    /// The value as a number: numbers, and strings that parse as one.
    pub fn number_value(&self) -> Option<f64> {
        match &self.kind {
            ValueKind::Number(n) => Some(*n),
            ValueKind::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Lower-cased text, borrowed when it already is. Most event text is ASCII, which lower-cases
/// byte by byte.
fn lowercase(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) {
        Cow::Borrowed(s)
    } else if s.is_ascii() {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// What a compiled rule needs from an event.
pub trait EventView {
    /// The values of a field, or `None` when the event does not have it.
    fn field(&self, id: FieldId) -> Option<&[EventValue<'_>]>;
    /// Every value of the event, for keyword searches.
    fn all_values(&self) -> &[EventValue<'_>];
}
