//! The condition language: `and`, `or`, `not`, parentheses, `1 of`, `all of`, `any of`,
//! `N of`, identifier patterns with `*`, and `them`.
//!
//! Precedence, loosest first, as the specification gives it: `or`, `and`, `not`, `x of`,
//! parentheses. The parser is a plain recursive descent with one function per level.

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
                    ErrorCode::Unsupported,
                    Position {
                        line: at.line,
                        column: at.column + i,
                    },
                    "sigma v1 aggregations ('| count() by …') are not supported; \
                     write a correlation rule instead",
                ))
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
            parse("sel | count() > 5", &n, Position::default())
                .unwrap_err()
                .code,
            ErrorCode::Unsupported
        );
        assert_eq!(
            parse("1 of x*", &n, Position::default()).unwrap_err().code,
            ErrorCode::UnknownIdentifier
        );
    }
}
