//! Value matchers: what one value of a detection item compiles to, and how it tests an event.

use std::net::IpAddr;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use ipnet::IpNet;
use regex_automata::meta::Regex;

use crate::event::{EventValue, EventView, ValueKind};
use crate::pattern::StringMatcher;

/// A field name interned in a [`crate::FieldTable`].
pub type FieldId = u32;

/// A numeric comparison from the `lt`, `lte`, `gt` and `gte` modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
}

/// A part of a timestamp from the `minute` … `year` modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    /// Minute of the hour.
    Minute,
    /// Hour of the day.
    Hour,
    /// Day of the month.
    Day,
    /// ISO week of the year.
    Week,
    /// Month of the year.
    Month,
    /// Year.
    Year,
}

/// What one value in a detection compiles to.
#[derive(Debug, Clone)]
pub enum ValueMatcher {
    /// A string pattern; `number` is set for integer rule values so that numeric event values
    /// compare numerically.
    Str {
        /// The compiled pattern.
        matcher: StringMatcher,
        /// The rule value as a number, when it is an integer.
        number: Option<f64>,
    },
    /// A regular expression, searched as a substring (linear time).
    Regex(Box<Regex>),
    /// Network ranges from `cidr`.
    Cidr(Vec<IpNet>),
    /// `null`: the field is absent or null.
    Null,
    /// `exists`: the field is present (`true`) or absent (`false`).
    Exists(bool),
    /// A numeric comparison.
    Compare(CompareOp, f64),
    /// A part of a timestamp compared by the inner matcher.
    Time(TimePart, Box<ValueMatcher>),
    /// Compares with the value of another field (`fieldref`).
    FieldRef {
        /// The other field.
        field: FieldId,
        /// How the two values are compared.
        position: RefPosition,
        /// Case-sensitive comparison.
        cased: bool,
    },
    /// `neq`: the inner matcher does not hold.
    Not(Box<ValueMatcher>),
    /// Never matches (e.g. a placeholder with no configured value).
    Never,
}

/// How a `fieldref` value compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefPosition {
    /// Equal.
    Equal,
    /// This field contains the other.
    Contains,
    /// This field starts with the other.
    StartsWith,
    /// This field ends with the other.
    EndsWith,
}

impl ValueMatcher {
    /// Tests the matcher against a field's values (`None`: absent); `view` resolves `fieldref`.
    pub fn matches(&self, values: Option<&[EventValue<'_>]>, view: &dyn EventView) -> bool {
        match self {
            ValueMatcher::Null => {
                values.is_none_or(|vs| vs.iter().any(|v| matches!(v.kind, ValueKind::Null)))
            }
            ValueMatcher::Exists(want) => values.is_some() == *want,
            ValueMatcher::Not(inner) => !inner.matches(values, view),
            ValueMatcher::Never => false,
            ValueMatcher::FieldRef {
                field,
                position,
                cased,
            } => {
                let (Some(mine), Some(theirs)) = (values, view.field(*field)) else {
                    return false;
                };
                mine.iter().any(|a| {
                    theirs.iter().any(|b| {
                        let (x, y) = if *cased {
                            (a.text(), b.text())
                        } else {
                            (a.lower(), b.lower())
                        };
                        match (x, y) {
                            (Some(x), Some(y)) => match position {
                                RefPosition::Equal => x == y,
                                RefPosition::Contains => x.contains(y),
                                RefPosition::StartsWith => x.starts_with(y),
                                RefPosition::EndsWith => x.ends_with(y),
                            },
                            _ => false,
                        }
                    })
                })
            }
            _ => values.is_some_and(|vs| vs.iter().any(|v| self.matches_value(v))),
        }
    }

    /// Tests one value (for keyword searches and field values alike).
    pub fn matches_value(&self, value: &EventValue<'_>) -> bool {
        match self {
            ValueMatcher::Str { matcher, number } => {
                if let (Some(n), ValueKind::Number(_)) = (number, &value.kind) {
                    return value.number_value() == Some(*n);
                }
                let text = if matcher.cased() {
                    value.text()
                } else {
                    value.lower()
                };
                text.is_some_and(|t| matcher.is_match(t))
            }
            ValueMatcher::Regex(re) => value.text().is_some_and(|t| re.is_match(t)),
            ValueMatcher::Cidr(nets) => value
                .text()
                .and_then(|t| t.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            ValueMatcher::Compare(op, rhs) => value.number_value().is_some_and(|lhs| match op {
                CompareOp::Lt => lhs < *rhs,
                CompareOp::Lte => lhs <= *rhs,
                CompareOp::Gt => lhs > *rhs,
                CompareOp::Gte => lhs >= *rhs,
            }),
            ValueMatcher::Time(part, inner) => value
                .text()
                .and_then(|t| time_part(t, *part))
                .is_some_and(|n| inner.matches_value(&EventValue::synthetic_number(n))),
            ValueMatcher::Null => matches!(value.kind, ValueKind::Null),
            ValueMatcher::Not(inner) => !inner.matches_value(value),
            ValueMatcher::Exists(_) | ValueMatcher::FieldRef { .. } | ValueMatcher::Never => false,
        }
    }
}

fn time_part(text: &str, part: TimePart) -> Option<i64> {
    let t = text.trim();
    let dt = DateTime::parse_from_rfc3339(t)
        .map(|d| d.naive_utc())
        .ok()
        .or_else(|| {
            [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        })?;
    Some(match part {
        TimePart::Minute => dt.minute() as i64,
        TimePart::Hour => dt.hour() as i64,
        TimePart::Day => dt.day() as i64,
        TimePart::Week => dt.iso_week().week() as i64,
        TimePart::Month => dt.month() as i64,
        TimePart::Year => dt.year() as i64,
    })
}
