//! Sigma string values: wildcards, escapes, and the matchers compiled from them.
//!
//! The specification gives `*` (any run of characters, empty included) and `?` (exactly one
//! character) as wildcards, `\` as the escape for `*`, `?` and `\` itself, and a backslash
//! before any other character as a plain backslash. So `\\*` is a literal backslash followed
//! by a live wildcard. A pattern is kept as tokens; modifiers such as `contains` add
//! wildcard tokens around it, never text, so an escape is never re-read.

/// One element of a parsed Sigma string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Literal text.
    Lit(String),
    /// `*`: any run of characters.
    Star,
    /// `?`: exactly one character.
    One,
    /// A Windows option dash from the `windash` modifier: `-`, `/`, `–`, `—` or `―`.
    Dash,
}

/// The characters `windash` accepts where a command-line option starts.
pub const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// A Sigma string as a list of tokens, adjacent literals merged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses rule text, honouring wildcards and escapes.
    pub fn parse(text: &str) -> Pattern {
        let mut p = Pattern::default();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => p.push(Token::Star),
                '?' => p.push(Token::One),
                '\\' => match chars.peek() {
                    Some(&next @ ('*' | '?' | '\\')) => {
                        chars.next();
                        p.push_char(next);
                    }
                    _ => p.push_char('\\'),
                },
                other => p.push_char(other),
            }
        }
        p
    }

    /// A pattern that matches `text` literally (used for encoded values).
    pub fn literal(text: &str) -> Pattern {
        let mut p = Pattern::default();
        if !text.is_empty() {
            p.tokens.push(Token::Lit(text.to_string()));
        }
        p
    }

    /// The tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether any token is a wildcard or a dash class.
    pub fn has_wildcards(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Lit(_)))
    }

    /// The text if the pattern is one literal (or empty).
    pub fn as_literal(&self) -> Option<String> {
        match self.tokens.as_slice() {
            [] => Some(String::new()),
            [Token::Lit(s)] => Some(s.clone()),
            _ => None,
        }
    }

    /// Appends a token, merging literals and collapsing repeated stars.
    pub fn push(&mut self, token: Token) {
        match (self.tokens.last_mut(), token) {
            (Some(Token::Lit(prev)), Token::Lit(s)) => prev.push_str(&s),
            (Some(Token::Star), Token::Star) => {}
            (_, t) => self.tokens.push(t),
        }
    }

    fn push_char(&mut self, c: char) {
        if let Some(Token::Lit(prev)) = self.tokens.last_mut() {
            prev.push(c);
        } else {
            self.tokens.push(Token::Lit(c.to_string()));
        }
    }

    /// Adds `*` at the start unless one is there.
    pub fn star_before(mut self) -> Pattern {
        if self.tokens.first() != Some(&Token::Star) {
            self.tokens.insert(0, Token::Star);
        }
        self
    }

    /// Adds `*` at the end unless one is there.
    pub fn star_after(mut self) -> Pattern {
        self.push(Token::Star);
        self
    }

    /// Maps every literal through `f`, re-splitting the result into tokens it returns.
    pub fn map_literals(&self, mut f: impl FnMut(&str) -> Vec<Token>) -> Pattern {
        let mut out = Pattern::default();
        for t in &self.tokens {
            match t {
                Token::Lit(s) => {
                    for piece in f(s) {
                        out.push(piece);
                    }
                }
                other => out.push(other.clone()),
            }
        }
        out
    }

    /// The literal runs, for prefilter indexing.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().filter_map(|t| match t {
            Token::Lit(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

/// How a compiled string pattern is tested, chosen for speed.
#[derive(Debug, Clone)]
enum Shape {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// A substring, with its searcher built once.
    Contains(Box<memchr::memmem::Finder<'static>>),
    Prefix2(String, String),
    AnyValue,
    Glob(Vec<Token>),
}

/// A compiled string pattern, case-insensitive unless `cased`.
#[derive(Debug, Clone)]
pub struct StringMatcher {
    shape: Shape,
    cased: bool,
}

impl StringMatcher {
    /// Compiles `pattern`; case-insensitive patterns are lower-cased once here.
    pub fn new(pattern: &Pattern, cased: bool) -> StringMatcher {
        let fold = |s: &str| {
            if cased {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let tokens: Vec<Token> = pattern
            .tokens()
            .iter()
            .map(|t| match t {
                Token::Lit(s) => Token::Lit(fold(s)),
                other => other.clone(),
            })
            .collect();
        let shape = match tokens.as_slice() {
            [] => Shape::Exact(String::new()),
            [Token::Lit(s)] => Shape::Exact(s.clone()),
            [Token::Star] => Shape::AnyValue,
            [Token::Lit(s), Token::Star] => Shape::Prefix(s.clone()),
            [Token::Star, Token::Lit(s)] => Shape::Suffix(s.clone()),
            [Token::Star, Token::Lit(s), Token::Star] => {
                Shape::Contains(Box::new(memchr::memmem::Finder::new(s).into_owned()))
            }
            [Token::Lit(a), Token::Star, Token::Lit(b)] => Shape::Prefix2(a.clone(), b.clone()),
            _ => Shape::Glob(tokens),
        };
        StringMatcher { shape, cased }
    }

    /// Whether the matcher compares case-sensitively.
    pub fn cased(&self) -> bool {
        self.cased
    }

    /// Tests a value; `value` must already be lower-cased when the matcher is not cased.
    pub fn is_match(&self, value: &str) -> bool {
        match &self.shape {
            Shape::Exact(s) => value == s,
            Shape::Prefix(s) => value.starts_with(s.as_str()),
            Shape::Suffix(s) => value.ends_with(s.as_str()),
            Shape::Contains(finder) => finder.find(value.as_bytes()).is_some(),
            Shape::Prefix2(a, b) => {
                value.len() >= a.len() + b.len()
                    && value.starts_with(a.as_str())
                    && value.ends_with(b.as_str())
            }
            Shape::AnyValue => true,
            Shape::Glob(tokens) => glob_match(tokens, value),
        }
    }
}

/// Wildcard matching by the classic backtrack-to-last-star walk: every token but `*`
/// consumes a fixed number of characters, so retrying only from the last star is complete,
/// and the cost is bounded by pattern length times value length.
fn glob_match(tokens: &[Token], s: &str) -> bool {
    let (mut ti, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if ti < tokens.len() {
            let step = match &tokens[ti] {
                Token::Star => {
                    star = Some((ti + 1, si));
                    ti += 1;
                    continue;
                }
                Token::Lit(lit) => s[si..].starts_with(lit.as_str()).then_some(lit.len()),
                Token::One => s[si..].chars().next().map(char::len_utf8),
                Token::Dash => s[si..]
                    .chars()
                    .next()
                    .filter(|c| DASHES.contains(c))
                    .map(char::len_utf8),
            };
            if let Some(len) = step {
                si += len;
                ti += 1;
                continue;
            }
        } else if si == s.len() {
            return true;
        }
        match star {
            Some((resume, from)) if from < s.len() => {
                let next = from + s[from..].chars().next().map_or(1, char::len_utf8);
                star = Some((resume, next));
                ti = resume;
                si = next;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rule: &str, value: &str) -> bool {
        StringMatcher::new(&Pattern::parse(rule), false).is_match(&value.to_lowercase())
    }

    #[test]
    fn escapes_follow_the_specification() {
        // `\\*` is an escaped backslash then a live wildcard; `\I` stays a plain backslash.
        assert_eq!(
            Pattern::parse(r"\\*\IPC$").tokens(),
            &[
                Token::Lit("\\".into()),
                Token::Star,
                Token::Lit("\\IPC$".into())
            ]
        );
        assert_eq!(
            Pattern::parse(r"a\*b").tokens(),
            &[Token::Lit("a*b".into())]
        );
        assert_eq!(Pattern::parse(r"a\?").tokens(), &[Token::Lit("a?".into())]);
        assert_eq!(
            Pattern::parse(r"end\").tokens(),
            &[Token::Lit("end\\".into())]
        );
    }

    #[test]
    fn question_mark_is_exactly_one_character() {
        assert!(m("prog?.exe", "progA.exe"));
        assert!(m("prog?.exe", "progé.exe"));
        assert!(!m("prog?.exe", "prog.exe"));
        assert!(!m("prog?.exe", "progAB.exe"));
    }

    #[test]
    fn glob_backtracks_across_repeated_literals() {
        assert!(m("*a*b?c*", "xxaxxbbcx"));
        assert!(m("a*a*a", "aaa"));
        assert!(!m("a*a*a", "aa"));
        // A doubled backslash is one literal backslash, so the stars after it stay live.
        assert!(m(r"*\\*\\*", r"c:\x\y"));
        // A backslash before a star escapes it: the value needs a literal `*`.
        assert!(!m(r"*\*\*", r"c:\x\y"));
        assert!(m(r"*\*\*", "a**"));
    }
}
