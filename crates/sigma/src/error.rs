//! Errors reported for Sigma documents, rendered like compiler diagnostics.

use std::fmt;

/// A stable identifier for each kind of rule error, so scripts and golden files can rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The text is not valid YAML.
    YamlSyntax,
    /// A required attribute (title, logsource, detection, condition) is missing.
    MissingField,
    /// An attribute has the wrong type or an out-of-range value.
    InvalidField,
    /// A field modifier is not known.
    UnknownModifier,
    /// Modifiers that cannot be combined, or a modifier given a value it cannot take.
    InvalidModifier,
    /// The condition does not parse.
    ConditionSyntax,
    /// The condition names a search identifier that the detection does not define.
    UnknownIdentifier,
    /// A regular expression does not compile.
    InvalidRegex,
    /// A CIDR network does not parse.
    InvalidCidr,
    /// A value cannot be used with its modifiers (e.g. a wildcard under base64).
    InvalidValue,
    /// A deprecated construct the engine deliberately does not evaluate (`near` outside an
    /// aggregation).
    Unsupported,
    /// A correlation rule is malformed.
    InvalidCorrelation,
}

impl ErrorCode {
    /// The stable code printed in diagnostics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::YamlSyntax => "S001",
            ErrorCode::MissingField => "S002",
            ErrorCode::InvalidField => "S003",
            ErrorCode::UnknownModifier => "S010",
            ErrorCode::InvalidModifier => "S011",
            ErrorCode::ConditionSyntax => "S020",
            ErrorCode::UnknownIdentifier => "S021",
            ErrorCode::InvalidRegex => "S030",
            ErrorCode::InvalidCidr => "S031",
            ErrorCode::InvalidValue => "S032",
            ErrorCode::Unsupported => "S040",
            ErrorCode::InvalidCorrelation => "S050",
        }
    }
}

/// A position in a rule file; lines and columns are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// One problem with a Sigma document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaError {
    /// The stable error code.
    pub code: ErrorCode,
    /// Where in the file the problem is.
    pub position: Position,
    /// What is wrong, in lower case.
    pub message: String,
    /// What would have been accepted, when that can be said.
    pub expected: Option<String>,
}

impl SigmaError {
    /// A new error at `position`.
    pub fn new(code: ErrorCode, position: Position, message: impl Into<String>) -> Self {
        SigmaError {
            code,
            position,
            message: message.into(),
            expected: None,
        }
    }

    /// Adds what would have been accepted.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Renders the error like a compiler: `path:line:column: error[CODE]: message (expected …)`.
    pub fn render(&self, path: &str) -> String {
        format!("{path}:{self}")
    }
}

impl fmt::Display for SigmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: error[{}]: {}",
            self.position.line,
            self.position.column,
            self.code.as_str(),
            self.message
        )?;
        if let Some(expected) = &self.expected {
            write!(f, " (expected {expected})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SigmaError {}
