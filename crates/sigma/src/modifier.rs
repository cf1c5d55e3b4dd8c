//! Field modifiers: parsing `field|mod|mod` keys and turning a value into matchers.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ipnet::IpNet;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;

use crate::detection::Needle;
use crate::error::{ErrorCode, Position, SigmaError};
use crate::matcher::{CompareOp, RefPosition, TimePart, ValueMatcher};
use crate::pattern::{Pattern, StringMatcher, Token};
use crate::yaml::{Node, NodeValue};
use crate::FieldTable;

/// Every modifier the specification defines.
pub const KNOWN_MODIFIERS: &[&str] = &[
    "all",
    "startswith",
    "endswith",
    "contains",
    "exists",
    "cased",
    "neq",
    "windash",
    "re",
    "i",
    "m",
    "s",
    "base64",
    "base64offset",
    "utf16le",
    "utf16be",
    "utf16",
    "wide",
    "lt",
    "lte",
    "gt",
    "gte",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "cidr",
    "expand",
    "fieldref",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position3 {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Windash,
    Utf16Le,
    Utf16Be,
    Utf16Bom,
    Base64,
    Base64Offset,
    Expand,
}

/// The modifiers of one detection key, validated.
#[derive(Debug, Default)]
pub struct Modifiers {
    /// `all`: the listed values are AND-linked.
    pub all: bool,
    position: Option<Position3>,
    cased: bool,
    neq: bool,
    regex: Option<(bool, bool, bool)>,
    cidr: bool,
    exists: bool,
    compare: Option<CompareOp>,
    time: Option<TimePart>,
    fieldref: bool,
    transforms: Vec<Transform>,
}

impl Modifiers {
    /// Parses the modifiers after the field name.
    pub fn parse(names: &[&str], at: Position) -> Result<Modifiers, SigmaError> {
        let mut m = Modifiers::default();
        let invalid = |msg: String| SigmaError::new(ErrorCode::InvalidModifier, at, msg);
        for &name in names {
            let set_position = |m: &mut Modifiers, p| {
                if m.position.is_some() {
                    return Err(invalid(format!(
                        "modifier '{name}' cannot be combined with another of contains, \
                         startswith, endswith"
                    )));
                }
                m.position = Some(p);
                Ok(())
            };
            match name {
                "all" => m.all = true,
                "contains" => set_position(&mut m, Position3::Contains)?,
                "startswith" => set_position(&mut m, Position3::StartsWith)?,
                "endswith" => set_position(&mut m, Position3::EndsWith)?,
                "cased" => m.cased = true,
                "neq" => m.neq = true,
                "re" => m.regex = Some((false, false, false)),
                "i" | "m" | "s" => {
                    let Some(flags) = m.regex.as_mut() else {
                        return Err(invalid(format!("regex flag '{name}' must follow 're'")));
                    };
                    match name {
                        "i" => flags.0 = true,
                        "m" => flags.1 = true,
                        _ => flags.2 = true,
                    }
                }
                "cidr" => m.cidr = true,
                "exists" => m.exists = true,
                "lt" => m.compare = Some(CompareOp::Lt),
                "lte" => m.compare = Some(CompareOp::Lte),
                "gt" => m.compare = Some(CompareOp::Gt),
                "gte" => m.compare = Some(CompareOp::Gte),
                "minute" => m.time = Some(TimePart::Minute),
                "hour" => m.time = Some(TimePart::Hour),
                "day" => m.time = Some(TimePart::Day),
                "week" => m.time = Some(TimePart::Week),
                "month" => m.time = Some(TimePart::Month),
                "year" => m.time = Some(TimePart::Year),
                "fieldref" => m.fieldref = true,
                "windash" => m.transforms.push(Transform::Windash),
                "utf16le" | "wide" => m.transforms.push(Transform::Utf16Le),
                "utf16be" => m.transforms.push(Transform::Utf16Be),
                "utf16" => m.transforms.push(Transform::Utf16Bom),
                "base64" => m.transforms.push(Transform::Base64),
                "base64offset" => m.transforms.push(Transform::Base64Offset),
                "expand" => m.transforms.push(Transform::Expand),
                other => {
                    return Err(SigmaError::new(
                        ErrorCode::UnknownModifier,
                        at,
                        format!("unknown modifier '{other}'"),
                    )
                    .expected(format!("one of {}", KNOWN_MODIFIERS.join(", "))))
                }
            }
        }
        let special = [
            m.regex.is_some(),
            m.cidr,
            m.exists,
            m.fieldref,
            m.compare.is_some(),
        ];
        if special.iter().filter(|b| **b).count() > 1 {
            return Err(invalid(
                "re, cidr, exists, fieldref and lt/lte/gt/gte exclude each other".into(),
            ));
        }
        let stringy = m.position.is_some() || !m.transforms.is_empty();
        if (m.regex.is_some() || m.cidr || m.exists || m.compare.is_some()) && stringy {
            return Err(invalid(
                "re, cidr, exists and lt/lte/gt/gte cannot be combined with string modifiers"
                    .into(),
            ));
        }
        if m.time.is_some() && (stringy || m.regex.is_some() || m.cidr || m.exists) {
            return Err(invalid(
                "time modifiers take a number or a comparison only".into(),
            ));
        }
        Ok(m)
    }

    /// Compiles one rule value into the matchers any of which satisfies it.
    pub fn compile_value(
        &self,
        node: &Node,
        fields: &mut FieldTable,
        placeholders: &HashMap<String, Vec<String>>,
        warnings: &mut Vec<SigmaError>,
    ) -> Result<(Vec<ValueMatcher>, Option<Vec<Needle>>), SigmaError> {
        let at = node.position;
        let err = |code, msg: String| SigmaError::new(code, at, msg);
        if self.exists {
            let NodeValue::Bool(b) = node.value else {
                return Err(err(
                    ErrorCode::InvalidValue,
                    "'exists' takes true or false".into(),
                )
                .expected("a boolean"));
            };
            return Ok((vec![ValueMatcher::Exists(b)], None));
        }
        if matches!(node.value, NodeValue::Null) {
            if self.position.is_some() || !self.transforms.is_empty() || self.special() {
                return Err(err(
                    ErrorCode::InvalidValue,
                    "null cannot take modifiers".into(),
                ));
            }
            return Ok((vec![self.negate(ValueMatcher::Null)], None));
        }
        let Some(text) = node.scalar_text() else {
            return Err(err(
                ErrorCode::InvalidValue,
                format!(
                    "a detection value must be a scalar or null, found {}",
                    node.kind()
                ),
            ));
        };
        let number = match node.value {
            NodeValue::Int(i, _) => Some(i as f64),
            NodeValue::Float(f, _) => Some(f),
            _ => None,
        };
        if let Some(op) = self.compare {
            let n = number.or_else(|| text.parse().ok()).ok_or_else(|| {
                err(ErrorCode::InvalidValue, format!("'{text}' is not a number"))
                    .expected("a number")
            })?;
            return Ok((vec![self.wrap_time(ValueMatcher::Compare(op, n))], None));
        }
        if self.time.is_some() {
            let n = number.ok_or_else(|| {
                err(ErrorCode::InvalidValue, format!("'{text}' is not a number"))
                    .expected("a number")
            })?;
            let inner = ValueMatcher::Str {
                matcher: StringMatcher::new(&Pattern::literal(&text), true),
                number: Some(n),
            };
            return Ok((vec![self.negate(self.wrap_time(inner))], None));
        }
        if let Some((i, m, s)) = self.regex {
            let re = Regex::builder()
                .syntax(
                    syntax::Config::new()
                        .case_insensitive(i)
                        .multi_line(m)
                        .dot_matches_new_line(s),
                )
                .build(&text)
                .map_err(|e| {
                    err(
                        ErrorCode::InvalidRegex,
                        format!("invalid regular expression: {e}"),
                    )
                })?;
            return Ok((vec![self.negate(ValueMatcher::Regex(Box::new(re)))], None));
        }
        if self.cidr {
            let net: IpNet = text
                .trim()
                .parse()
                .or_else(|_| text.trim().parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    err(ErrorCode::InvalidCidr, format!("'{text}' is not a network"))
                        .expected("an IPv4 or IPv6 network such as 10.0.0.0/8 or fd00::/8")
                })?;
            return Ok((
                vec![self.negate(ValueMatcher::Cidr(vec![net.trunc()]))],
                None,
            ));
        }
        if self.fieldref {
            let position = match self.position {
                None => RefPosition::Equal,
                Some(Position3::Contains) => RefPosition::Contains,
                Some(Position3::StartsWith) => RefPosition::StartsWith,
                Some(Position3::EndsWith) => RefPosition::EndsWith,
            };
            let field = fields.intern(&text);
            let m = ValueMatcher::FieldRef {
                field,
                position,
                cased: self.cased,
            };
            return Ok((vec![self.negate(m)], None));
        }

        let mut patterns = vec![Pattern::parse(&text)];
        let mut cased = self.cased;
        // After a utf16 transform the patterns hold bytes, one char per byte.
        let mut holds_bytes = false;
        for t in &self.transforms {
            patterns = match t {
                Transform::Expand => expand(&patterns, placeholders, at, warnings)?,
                Transform::Windash => patterns.iter().map(windash).collect(),
                Transform::Utf16Le | Transform::Utf16Be | Transform::Utf16Bom => {
                    let mut out = Vec::new();
                    for p in &patterns {
                        let lit = literal_of(p, at)?;
                        out.push(Pattern::literal(&bytes_as_text(&utf16(&lit, *t))));
                    }
                    holds_bytes = true;
                    out
                }
                Transform::Base64 | Transform::Base64Offset => {
                    cased = true;
                    let mut out = Vec::new();
                    for p in &patterns {
                        let lit = literal_of(p, at)?;
                        let bytes: Vec<u8> = if holds_bytes {
                            lit.chars().map(|c| c as u8).collect()
                        } else {
                            lit.into_bytes()
                        };
                        if *t == Transform::Base64 {
                            out.push(Pattern::literal(&STANDARD.encode(&bytes)));
                        } else {
                            out.extend(base64_offsets(&bytes).iter().map(|s| Pattern::literal(s)));
                        }
                    }
                    holds_bytes = false;
                    out
                }
            };
        }
        let is_number_exact =
            number.is_some() && self.transforms.is_empty() && self.position.is_none();
        let mut matchers = Vec::new();
        // A number written other than the way events print it (`010`, `0x10`, `1.0`, `1e3`)
        // still matches numerically, so its text cannot be required in the event.
        let canonical = number.is_some_and(|n| n.fract() == 0.0 && text == format!("{}", n as i64));
        let mut literals = if is_number_exact && !canonical {
            None
        } else {
            Some(Vec::new())
        };
        for p in patterns {
            let p = match self.position {
                Some(Position3::Contains) => p.star_before().star_after(),
                Some(Position3::StartsWith) => p.star_after(),
                Some(Position3::EndsWith) => p.star_before(),
                None => p,
            };
            let best = p.literals().max_by_key(|l| l.len()).map(str::to_lowercase);
            // Without wildcards, transforms or a position the value matches only an event
            // value equal to it (case aside; a canonical number's text is what events print),
            // so its literal is the whole lower-cased value.
            let exact = self.transforms.is_empty() && self.position.is_none() && !p.has_wildcards();
            match (best, literals.as_mut()) {
                (Some(text), Some(ls)) if !text.is_empty() && !self.neq => {
                    ls.push(Needle { text, exact })
                }
                _ => literals = None,
            }
            let number = if is_number_exact && !p.has_wildcards() {
                number
            } else {
                None
            };
            matchers.push(self.negate(ValueMatcher::Str {
                matcher: StringMatcher::new(&p, cased),
                number,
            }));
        }
        if matchers.is_empty() {
            literals = None;
        }
        Ok((matchers, literals))
    }

    /// Makes a modifier-less keyword value a substring search.
    pub fn default_to_contains(&mut self) {
        if self.position.is_none() && !self.special() && !self.exists {
            self.position = Some(Position3::Contains);
        }
    }

    fn special(&self) -> bool {
        self.regex.is_some()
            || self.cidr
            || self.compare.is_some()
            || self.fieldref
            || self.time.is_some()
    }

    fn negate(&self, m: ValueMatcher) -> ValueMatcher {
        if self.neq {
            ValueMatcher::Not(Box::new(m))
        } else {
            m
        }
    }

    fn wrap_time(&self, m: ValueMatcher) -> ValueMatcher {
        match self.time {
            Some(part) => ValueMatcher::Time(part, Box::new(m)),
            None => m,
        }
    }
}

fn literal_of(p: &Pattern, at: Position) -> Result<String, SigmaError> {
    p.as_literal().ok_or_else(|| {
        SigmaError::new(
            ErrorCode::InvalidValue,
            at,
            "wildcards cannot be encoded (utf16/base64 modifiers need a plain value)",
        )
    })
}

/// Inserts a dash class where an option dash can stand: a `-` or `/` that does not follow a
/// word character and is followed by one (so `-enc` and `/c` vary, `a-b` does not).
fn windash(p: &Pattern) -> Pattern {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    p.map_literals(|s| {
        let chars: Vec<char> = s.chars().collect();
        let mut out = Vec::new();
        let mut lit = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let before_ok = i == 0 || !word(chars[i - 1]);
            let after_ok = chars.get(i + 1).is_some_and(|&n| word(n));
            if (c == '-' || c == '/') && before_ok && after_ok {
                if !lit.is_empty() {
                    out.push(Token::Lit(std::mem::take(&mut lit)));
                }
                out.push(Token::Dash);
            } else {
                lit.push(c);
            }
        }
        if !lit.is_empty() {
            out.push(Token::Lit(lit));
        }
        out
    })
}

fn expand(
    patterns: &[Pattern],
    placeholders: &HashMap<String, Vec<String>>,
    at: Position,
    warnings: &mut Vec<SigmaError>,
) -> Result<Vec<Pattern>, SigmaError> {
    let mut out = Vec::new();
    for p in patterns {
        let mut variants: Vec<Pattern> = vec![Pattern::default()];
        for t in p.tokens() {
            let Token::Lit(s) = t else {
                variants.iter_mut().for_each(|v| v.push(t.clone()));
                continue;
            };
            for (i, piece) in s.split('%').enumerate() {
                if i % 2 == 0 || !s[..].contains('%') {
                    variants
                        .iter_mut()
                        .for_each(|v| v.push(Token::Lit(piece.to_string())));
                    continue;
                }
                match placeholders.get(piece) {
                    Some(values) => {
                        variants = variants
                            .iter()
                            .flat_map(|v| {
                                values.iter().map(move |val| {
                                    let mut n = v.clone();
                                    for tok in Pattern::parse(val).tokens() {
                                        n.push(tok.clone());
                                    }
                                    n
                                })
                            })
                            .collect();
                    }
                    None => {
                        warnings.push(SigmaError::new(
                            ErrorCode::InvalidValue,
                            at,
                            format!("placeholder %{piece}% has no configured values; this value never matches"),
                        ));
                        variants.clear();
                    }
                }
            }
        }
        out.extend(variants);
    }
    Ok(out)
}

fn utf16(s: &str, t: Transform) -> Vec<u8> {
    let mut out = Vec::new();
    if t == Transform::Utf16Bom {
        out.extend([0xFF, 0xFE]);
    }
    for unit in s.encode_utf16() {
        let bytes = if t == Transform::Utf16Be {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        };
        out.extend(bytes);
    }
    out
}

/// Encoded bytes are carried as text with one char per byte (Latin-1), so they survive the
/// string pipeline unchanged and turn back into the same bytes for base64.
fn bytes_as_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// The three base64 forms of `bytes` at offsets 0, 1 and 2 within an encoded stream, with the
/// characters that depend on neighbouring bytes removed.
fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for shift in 0..3usize {
        let mut padded = vec![b' '; shift];
        padded.extend_from_slice(bytes);
        let encoded = STANDARD.encode(&padded);
        let start = [0, 2, 3][shift];
        let end_trim = [0, 3, 2][(bytes.len() + shift) % 3];
        if encoded.len() >= start + end_trim {
            let s = &encoded[start..encoded.len() - end_trim];
            if !s.is_empty() {
                out.push(s.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64offset_matches_the_published_variants() {
        // The three variants of 'Invoke-Thing' as pySigma documents them.
        assert_eq!(
            base64_offsets(b"Invoke-Thing"),
            vec!["SW52b2tlLVRoaW5n", "ludm9rZS1UaGluZ", "JbnZva2UtVGhpbm"]
        );
    }

    #[test]
    fn windash_varies_only_option_dashes() {
        let p = windash(&Pattern::parse(" -enc a-b /c"));
        assert_eq!(
            p.tokens(),
            &[
                Token::Lit(" ".into()),
                Token::Dash,
                Token::Lit("enc a-b ".into()),
                Token::Dash,
                Token::Lit("c".into())
            ]
        );
    }

    #[test]
    fn utf16_forms() {
        assert_eq!(utf16("ab", Transform::Utf16Le), vec![b'a', 0, b'b', 0]);
        assert_eq!(utf16("ab", Transform::Utf16Be), vec![0, b'a', 0, b'b']);
        assert_eq!(utf16("a", Transform::Utf16Bom), vec![0xFF, 0xFE, b'a', 0]);
    }
}
