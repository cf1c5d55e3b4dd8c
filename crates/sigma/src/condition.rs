//! The condition language: `and`, `or`, `not`, parentheses, `1 of`, `all of`, `any of`,
//! `N of`, identifier patterns with `*`, and `them`.
//!
//! Precedence, loosest first, as the specification gives it: `or`, `and`, `not`, `x of`,
//! parentheses. The parser is a plain recursive descent with one function per level.
//!
//! Sigma v1 aggregations (`selection | count(field) by group > 10`, `a | near b`) are
//! parsed by [`parse_aggregated`] into an [`Aggregation`] beside the condition; the engine
//! reports such rules as not evaluated yet (they need state across events, as correlation
//! rules do) and never fires them per event.

use crate::error::{ErrorCode, Position, SigmaError};

/// A parsed condition over search identifiers (indices into the detection's searches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// One search identifier.
    Search(usize),
    /// Negation.
    Not(Box<Condition>),
    /// All must hold.
    And(Vec<Condition>),
    /// Any must hold.
    Or(Vec<Condition>),
    /// At least `n` of the searches hold (`all of` sets `n` to their number).
    AtLeast(usize, Vec<usize>),
}

/// A Sigma v1 aggregation: what follows the `|` of a condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// What it computes.
    pub kind: AggregationKind,
    /// The aggregation as written, after the `|`, trimmed.
    pub text: String,
    /// Where its `|` stands in the rule file.
    pub position: Position,
}

/// The two forms of a v1 aggregation.
#[derive(Debug, Clone, PartialEq)]
pub enum AggregationKind {
    /// `count(field) by group > n` and its kin, over the events the condition matches
    /// within the detection's `timeframe`.
    Function {
        /// The function.
        function: AggregateFunction,
        /// The field it reads (`count()` reads none: it counts events).
        field: Option<String>,
        /// The field whose values split the events into groups.
        group_by: Option<String>,
        /// How the result is compared with `threshold`.
        op: Comparison,
        /// The number it is compared with.
        threshold: f64,
    },
    /// `near x and not y`: within the timeframe, events matching this condition occur too.
    Near(Condition),
}

/// The functions of a v1 aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// Number of events, or of distinct values of the field.
    Count,
    /// Smallest value of the field.
    Min,
    /// Largest value of the field.
    Max,
    /// Mean of the field.
    Avg,
    /// Sum of the field.
    Sum,
}

/// A comparison operator of a v1 aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `=` or `==`
    Eq,
}

/// Parses a condition that may end in a v1 aggregation (`… | count() by x > 5`).
pub fn parse_aggregated(
    text: &str,
    names: &[String],
    at: Position,
) -> Result<(Condition, Option<Aggregation>), SigmaError> {
    let Some(bar) = text.find('|') else {
        return Ok((parse(text, names, at)?, None));
    };
    let (left, right) = (&text[..bar], &text[bar + 1..]);
    let condition = parse(left, names, at)?;
    let offset = text[..=bar].chars().count();
    if let Some(second) = right.find('|') {
        return Err(SigmaError::new(
            ErrorCode::ConditionSyntax,
            Position {
                line: at.line,
                column: at.column + offset + right[..second].chars().count(),
            },
            "a second '|' in one condition",
        )
        .expected("at most one aggregation, after the condition"));
    }
    let at_right = Position {
        line: at.line,
        column: at.column + offset,
    };
    let aggregation = Aggregation {
        kind: parse_aggregation(right, names, at_right)?,
        text: right.trim().to_string(),
        position: Position {
            line: at.line,
            column: at.column + offset - 1,
        },
    };
    Ok((condition, Some(aggregation)))
}

/// Parses what follows the `|`; `at` is the position of its first character.
fn parse_aggregation(
    text: &str,
    names: &[String],
    at: Position,
) -> Result<AggregationKind, SigmaError> {
    let chars: Vec<char> = text.chars().collect();
    let err = |i: usize, msg: String, expected: &str| {
        SigmaError::new(
            ErrorCode::ConditionSyntax,
            Position {
                line: at.line,
                column: at.column + i,
            },
            msg,
        )
        .expected(expected.to_string())
    };
    let skip_ws = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let word = |i: usize| {
        let mut j = i;
        while j < chars.len() && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '.' | '-'))
        {
            j += 1;
        }
        (chars[i..j].iter().collect::<String>(), j)
    };
    const FORMS: &str = "an aggregation such as 'count() by field > 5' or 'near other_search'";
    let start = skip_ws(0);
    let (name, mut i) = word(start);
    let function = match name.to_ascii_lowercase().as_str() {
        "near" => {
            let rest: String = chars[i..].iter().collect();
            let inner = parse(
                &rest,
                names,
                Position {
                    line: at.line,
                    column: at.column + i,
                },
            )?;
            return Ok(AggregationKind::Near(inner));
        }
        "count" => AggregateFunction::Count,
        "min" => AggregateFunction::Min,
        "max" => AggregateFunction::Max,
        "avg" => AggregateFunction::Avg,
        "sum" => AggregateFunction::Sum,
        "" => return Err(err(start, "nothing follows '|'".into(), FORMS)),
        other => {
            return Err(err(
                start,
                format!("'{other}' is not an aggregation function"),
                "count, min, max, avg, sum or near",
            ))
        }
    };
    i = skip_ws(i);
    if chars.get(i) != Some(&'(') {
        return Err(err(i, format!("'{name}' must be followed by '('"), "'('"));
    }
    i = skip_ws(i + 1);
    let (field, j) = word(i);
    i = skip_ws(j);
    if chars.get(i) != Some(&')') {
        return Err(err(i, "unclosed parenthesis".into(), "')'"));
    }
    let field = (!field.is_empty()).then_some(field);
    if field.is_none() && function != AggregateFunction::Count {
        return Err(err(
            i,
            format!("'{name}()' needs a field"),
            "a field name between the parentheses",
        ));
    }
    i = skip_ws(i + 1);
    let mut group_by = None;
    let (by, j) = word(i);
    if by.eq_ignore_ascii_case("by") {
        let k = skip_ws(j);
        let (group, j) = word(k);
        if group.is_empty() {
            return Err(err(
                k,
                "'by' needs a field".into(),
                "a field name after 'by'",
            ));
        }
        group_by = Some(group);
        i = skip_ws(j);
    }
    let rest: String = chars[i..].iter().collect();
    let (op, len) = [
        ("<=", Comparison::Lte),
        (">=", Comparison::Gte),
        ("==", Comparison::Eq),
        ("<", Comparison::Lt),
        (">", Comparison::Gt),
        ("=", Comparison::Eq),
    ]
    .into_iter()
    .find(|(s, _)| rest.starts_with(s))
    .map(|(s, op)| (op, s.len()))
    .ok_or_else(|| {
        err(
            i,
            "the aggregation has no comparison".into(),
            "'<', '<=', '>', '>=' or '=' and a number",
        )
    })?;
    i = skip_ws(i + len);
    let number: String = chars[i..].iter().collect::<String>().trim_end().to_string();
    let threshold = number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| {
            err(
                i,
                format!("'{number}' is not a number"),
                "a number after the comparison",
            )
        })?;
    Ok(AggregationKind::Function {
        function,
        field,
        group_by,
        op,
        threshold,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Of,
    All,
    Them,
    Number(usize),
    Ident(String),
}

/// How deep parentheses and `not` may nest. The parser and every walk over the tree recurse,
/// so a hostile condition such as 100 000 opening parentheses must be refused before it
/// overflows the stack; real rules nest a handful of levels.
pub const MAX_NESTING: usize = 64;

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    names: &'a [String],
    at: Position,
    depth: usize,
}

/// Parses a condition string against the detection's search identifier names.
pub fn parse(text: &str, names: &[String], at: Position) -> Result<Condition, SigmaError> {
    let toks = tokenize(text, at)?;
    if toks.is_empty() {
        return Err(
            SigmaError::new(ErrorCode::ConditionSyntax, at, "empty condition")
                .expected("an expression over search identifiers"),
        );
    }
    let mut p = Parser {
        toks,
        pos: 0,
        names,
        at,
        depth: 0,
    };
    let cond = p.or()?;
    if let Some((tok, col)) = p.toks.get(p.pos) {
        return Err(p
            .error(
                *col,
                format!("unexpected {} after a complete condition", describe(tok)),
            )
            .expected("'and', 'or' or the end of the condition"));
    }
    Ok(cond)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::And => "'and'".into(),
        Tok::Or => "'or'".into(),
        Tok::Not => "'not'".into(),
        Tok::Of => "'of'".into(),
        Tok::All => "'all'".into(),
        Tok::Them => "'them'".into(),
        Tok::Number(n) => format!("'{n}'"),
        Tok::Ident(s) => format!("'{s}'"),
    }
}

fn tokenize(text: &str, at: Position) -> Result<Vec<(Tok, usize)>, SigmaError> {
    let mut toks = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => toks.push((Tok::LParen, i)),
            ')' => toks.push((Tok::RParen, i)),
            '|' => {
                return Err(SigmaError::new(
                    ErrorCode::ConditionSyntax,
                    Position {
                        line: at.line,
                        column: at.column + i,
                    },
                    "unexpected '|' in condition",
                )
                .expected("an aggregation only after a rule's whole condition"))
            }
            _ if c.is_alphanumeric() || c == '_' || c == '*' || c == '-' || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '*' | '-' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let tok =
                    match word.to_ascii_lowercase().as_str() {
                        "and" => Tok::And,
                        "or" => Tok::Or,
                        "not" => Tok::Not,
                        "of" => Tok::Of,
                        "all" => Tok::All,
                        "any" => Tok::Number(1),
                        "them" => Tok::Them,
                        "near" => return Err(SigmaError::new(
                            ErrorCode::Unsupported,
                            Position {
                                line: at.line,
                                column: at.column + start,
                            },
                            "the 'near' operator is not supported; write a temporal correlation",
                        )),
                        _ => match word.parse::<usize>() {
                            Ok(n) => Tok::Number(n),
                            Err(_) => Tok::Ident(word),
                        },
                    };
                toks.push((tok, start));
                continue;
            }
            other => {
                return Err(SigmaError::new(
                    ErrorCode::ConditionSyntax,
                    Position {
                        line: at.line,
                        column: at.column + i,
                    },
                    format!("unexpected character '{other}' in condition"),
                ))
            }
        }
        i += 1;
    }
    Ok(toks)
}

impl Parser<'_> {
    fn error(&self, col: usize, msg: String) -> SigmaError {
        SigmaError::new(
            ErrorCode::ConditionSyntax,
            Position {
                line: self.at.line,
                column: self.at.column + col,
            },
            msg,
        )
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn col(&self) -> usize {
        self.toks
            .get(self.pos)
            .map_or_else(|| self.toks.last().map_or(0, |t| t.1 + 1), |t| t.1)
    }

    fn or(&mut self) -> Result<Condition, SigmaError> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Condition::Or(items)
        })
    }

    fn and(&mut self) -> Result<Condition, SigmaError> {
        let mut items = vec![self.not()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Condition::And(items)
        })
    }

    /// Parses one nesting level deeper with `level`, refusing past [`MAX_NESTING`].
    fn nested(
        &mut self,
        level: fn(&mut Self) -> Result<Condition, SigmaError>,
    ) -> Result<Condition, SigmaError> {
        if self.depth >= MAX_NESTING {
            let col = self.col();
            return Err(self
                .error(
                    col,
                    format!("the condition nests deeper than {MAX_NESTING} levels"),
                )
                .expected("fewer nested parentheses and 'not'"));
        }
        self.depth += 1;
        let inner = level(self);
        self.depth -= 1;
        inner
    }

    fn not(&mut self) -> Result<Condition, SigmaError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Condition::Not(Box::new(self.nested(Self::not)?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, SigmaError> {
        let col = self.col();
        let Some((tok, _)) = self.toks.get(self.pos).cloned() else {
            return Err(self
                .error(col, "the condition ends too early".into())
                .expected("a search identifier, 'not', '(' or 'x of'"));
        };
        self.pos += 1;
        match tok {
            Tok::LParen => {
                let inner = self.nested(Self::or)?;
                if self.peek() != Some(&Tok::RParen) {
                    let col = self.col();
                    return Err(self
                        .error(col, "unclosed parenthesis".into())
                        .expected("')'"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Tok::All | Tok::Number(_) => {
                if self.peek() != Some(&Tok::Of) {
                    let col = self.col();
                    return Err(self
                        .error(col, format!("{} must be followed by 'of'", describe(&tok)))
                        .expected("'of'"));
                }
                self.pos += 1;
                let col = self.col();
                let selected = match self.toks.get(self.pos).cloned() {
                    Some((Tok::Them, _)) => self.select("*", true),
                    Some((Tok::Ident(pattern), _)) => self.select(&pattern, false),
                    _ => {
                        return Err(self
                            .error(col, "'of' needs a pattern or 'them'".into())
                            .expected("an identifier pattern such as selection_* or 'them'"))
                    }
                };
                self.pos += 1;
                if selected.is_empty() {
                    return Err(SigmaError::new(
                        ErrorCode::UnknownIdentifier,
                        Position {
                            line: self.at.line,
                            column: self.at.column + col,
                        },
                        "no search identifier matches this pattern",
                    ));
                }
                let n = match tok {
                    Tok::Number(n) => n,
                    _ => selected.len(),
                };
                Ok(Condition::AtLeast(n, selected))
            }
            Tok::Ident(name) => match self.names.iter().position(|n| *n == name) {
                Some(i) => Ok(Condition::Search(i)),
                None => Err(SigmaError::new(
                    ErrorCode::UnknownIdentifier,
                    Position {
                        line: self.at.line,
                        column: self.at.column + col,
                    },
                    format!("the condition names '{name}', which the detection does not define"),
                )
                .expected(format!("one of: {}", self.names.join(", ")))),
            },
            other => Err(self
                .error(col, format!("unexpected {}", describe(&other)))
                .expected("a search identifier, 'not', '(' or 'x of'")),
        }
    }

    /// Search identifiers matching a pattern. Identifiers starting with `_` are helpers:
    /// `them` and patterns not themselves starting with `_` leave them out.
    fn select(&self, pattern: &str, them: bool) -> Vec<usize> {
        let include_helpers = !them && pattern.starts_with('_');
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| include_helpers || !n.starts_with('_'))
            .filter(|(_, n)| name_matches(pattern, n))
            .map(|(i, _)| i)
            .collect()
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let n = names(&["a", "b", "c"]);
        let c = parse("a or b and not c", &n, Position::default()).unwrap();
        assert_eq!(
            c,
            Condition::Or(vec![
                Condition::Search(0),
                Condition::And(vec![
                    Condition::Search(1),
                    Condition::Not(Box::new(Condition::Search(2)))
                ])
            ])
        );
    }

    #[test]
    fn them_leaves_out_helpers_but_an_explicit_underscore_pattern_does_not() {
        let n = names(&["sel", "_helper", "filter"]);
        assert_eq!(
            parse("all of them", &n, Position::default()).unwrap(),
            Condition::AtLeast(2, vec![0, 2])
        );
        assert_eq!(
            parse("1 of _*", &n, Position::default()).unwrap(),
            Condition::AtLeast(1, vec![1])
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let n = names(&["sel"]);
        let e = parse(
            "sel and other",
            &n,
            Position {
                line: 5,
                column: 16,
            },
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownIdentifier);
        assert_eq!(
            e.position,
            Position {
                line: 5,
                column: 24
            }
        );
        assert_eq!(
            parse("(sel", &n, Position::default()).unwrap_err().code,
            ErrorCode::ConditionSyntax
        );
        assert_eq!(
            parse("1 of x*", &n, Position::default()).unwrap_err().code,
            ErrorCode::UnknownIdentifier
        );
    }

    fn function(text: &str) -> AggregationKind {
        let n = names(&["selection", "filter"]);
        parse_aggregated(text, &n, Position::default())
            .unwrap()
            .1
            .unwrap()
            .kind
    }

    fn counted(
        function: AggregateFunction,
        field: Option<&str>,
        group_by: Option<&str>,
        op: Comparison,
        threshold: f64,
    ) -> AggregationKind {
        AggregationKind::Function {
            function,
            field: field.map(String::from),
            group_by: group_by.map(String::from),
            op,
            threshold,
        }
    }

    #[test]
    fn v1_aggregations_parse_into_their_parts() {
        use AggregateFunction::{Count, Sum};
        for (text, want) in [
            (
                "selection and not filter | count(TargetUserName) by IpAddress > 10",
                counted(
                    Count,
                    Some("TargetUserName"),
                    Some("IpAddress"),
                    Comparison::Gt,
                    10.0,
                ),
            ),
            (
                "selection | count() > 5",
                counted(Count, None, None, Comparison::Gt, 5.0),
            ),
            (
                "selection | sum(message_size) by src_ip >= 300000",
                counted(
                    Sum,
                    Some("message_size"),
                    Some("src_ip"),
                    Comparison::Gte,
                    300000.0,
                ),
            ),
        ] {
            assert_eq!(function(text), want, "{text}");
        }
        assert_eq!(
            function("selection |near filter"),
            AggregationKind::Near(Condition::Search(1))
        );
        let n = names(&["selection", "filter"]);
        let (cond, agg) =
            parse_aggregated("selection and not filter", &n, Position::default()).unwrap();
        assert!(agg.is_none());
        assert_eq!(
            cond,
            Condition::And(vec![
                Condition::Search(0),
                Condition::Not(Box::new(Condition::Search(1)))
            ])
        );
    }

    #[test]
    fn malformed_aggregations_are_refused_where_they_go_wrong() {
        let n = names(&["sel"]);
        let at = Position {
            line: 3,
            column: 16,
        };
        // (text, character index within the text where the error points)
        for (text, col) in [
            ("sel | count() by x", 18),
            ("sel | count() by x > many", 21),
            ("sel | sum() > 5", 10),
            ("sel | median(x) > 5", 6),
            ("sel | count(x > 5", 14),
            ("sel |", 5),
            ("sel | count() > 5 | count() > 6", 18),
            ("sel | near other", 11),
            ("sel | count by x > 5", 12),
        ] {
            let e = parse_aggregated(text, &n, at).unwrap_err();
            assert_eq!(e.position.line, 3, "{text}");
            assert_eq!(e.position.column, 16 + col, "{text}: {e:?}");
        }
    }
}
