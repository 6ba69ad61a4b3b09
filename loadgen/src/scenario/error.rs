//! Why a scenario was refused, as one line naming the file and the field.
//!
//! TOML's and serde's messages are rewritten for a scenario's author: the
//! place is named as the file names it (`in [publish]`, `in dispatchers[1]`),
//! serde's type names become words, and a key of another fault kind says so.

use std::fmt;
use std::io;

use super::FaultKind;

/// Why a scenario was refused. Display is one line, naming the file (or the
/// command-line flag) and the field.
#[derive(Debug)]
pub enum ScenarioError {
    /// The file could not be read.
    Io { origin: String, source: io::Error },
    /// Not TOML, or a field unknown, missing or of the wrong type. `line`
    /// counts from 1, where the TOML parser could tell.
    Parse {
        origin: String,
        line: Option<usize>,
        message: String,
    },
    /// A value out of its range or inconsistent with another; `message` names
    /// `field`.
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
}

impl ScenarioError {
    pub(super) fn invalid(origin: &str, field: &str, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Io { origin, source } => {
                write!(f, "{origin}: {}", one_line(&source.to_string()))
            }
            ScenarioError::Parse {
                origin,
                line: Some(line),
                message,
            } => write!(f, "{origin}:{line}: {message}"),
            ScenarioError::Parse {
                origin,
                line: None,
                message,
            } => write!(f, "{origin}: {message}"),
            ScenarioError::Invalid {
                origin, message, ..
            } => write!(f, "{origin}: {message}"),
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScenarioError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ScenarioError {
    /// TOML that does not parse.
    pub(super) fn from_toml(e: &toml::de::Error, text: &str, origin: &str) -> ScenarioError {
        let mut message = one_line(e.message());
        // "duplicate key" says which key only through its span.
        if let Some(key) = e
            .span()
            .and_then(|s| text.get(s))
            .filter(|_| message == "duplicate key")
        {
            message = format!("duplicate key `{}`", key.trim());
        }
        ScenarioError::Parse {
            origin: origin.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            message,
        }
    }

    /// A field unknown, missing or of the wrong type.
    pub(super) fn from_serde(
        e: &serde_path_to_error::Error<toml::de::Error>,
        text: &str,
        origin: &str,
    ) -> ScenarioError {
        let inner = e.inner();
        let place = Place::of(e.path(), inner.message());
        // A field missing from the document has the whole document as its span.
        let whole = place.path.is_empty() && inner.message().starts_with("missing field");
        ScenarioError::Parse {
            origin: origin.to_string(),
            line: inner
                .span()
                .filter(|_| !whole)
                .map(|s| line_of(text, s.start)),
            message: place.explain(&one_line(inner.message())),
        }
    }
}

/// Collapses every run of whitespace, line breaks included, into one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where in the document an error arose, from serde_path_to_error's path.
struct Place {
    /// `publish.size`, `dispatchers[1].args`, or "" at the top level.
    path: String,
    /// Every segment is a key: a `[table]` (or a key of the top level).
    keys_only: bool,
}

impl Place {
    /// The place of an error with `message`. The path of an unknown field
    /// ends with that field: the place is the table holding it.
    fn of(path: &serde_path_to_error::Path, message: &str) -> Place {
        let mut segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if matches!(segments.last(), Some(serde_path_to_error::Segment::Map { key }) if key == field)
            {
                segments.pop();
            }
        }
        let mut out = String::new();
        let mut keys_only = true;
        for seg in segments {
            match seg {
                serde_path_to_error::Segment::Map { key } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                serde_path_to_error::Segment::Seq { index } => {
                    keys_only = false;
                    out.push_str(&format!("[{index}]"));
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    keys_only = false;
                    out.push_str(&format!("::{variant}"));
                }
                serde_path_to_error::Segment::Unknown => {
                    keys_only = false;
                    out.push_str("[?]");
                }
            }
        }
        Place {
            path: out,
            keys_only,
        }
    }

    /// Rewrites serde's message to name the place: "unknown field `rat`,
    /// expected one of `a`, `b`" at `publish` becomes "unknown field `rat` in
    /// \[publish\] (expected one of a, b)".
    fn explain(&self, message: &str) -> String {
        if let Some(other_kind) = self.key_of_another_fault_kind(message) {
            return other_kind;
        }
        let field_of_table =
            message.starts_with("unknown field") || message.starts_with("missing field");
        let place = if self.path.is_empty() {
            String::new()
        } else if field_of_table && self.keys_only {
            format!(" in [{}]", self.path)
        } else {
            format!(" in {}", self.path)
        };
        if self.path.is_empty() && message.starts_with("missing field") {
            return message.replacen("missing field", "missing required field", 1);
        }
        match message.split_once(", expected ") {
            Some((head, expected)) => {
                format!("{head}{place} (expected {})", plain_expected(expected))
            }
            None => format!("{message}{place}"),
        }
    }
}

impl Place {
    /// "unknown field `connections`, expected one of `reset`, `recover_secs`,
    /// `tolerance`" in `[fault]`, when the field is another kind's, becomes
    /// "fault.connections does not apply to kind "disconnect" (it reads reset,
    /// recover_secs, tolerance)". The kind is the one whose fields serde expected.
    fn key_of_another_fault_kind(&self, message: &str) -> Option<String> {
        if self.path != "fault" {
            return None;
        }
        let rest = message.strip_prefix("unknown field `")?;
        let (field, expected) = rest.split_once("`, expected ")?;
        // serde says "`a` or `b`" of two fields, "one of `a`, `b`, `c`" of more.
        let expected: Vec<String> = expected
            .trim_start_matches("one of ")
            .split(", ")
            .flat_map(|e| e.split(" or "))
            .map(|e| e.trim_matches('`').to_string())
            .collect();
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.fields() == expected)?;
        FaultKind::ALL
            .iter()
            .any(|k| k.fields().contains(&field))
            .then(|| {
                format!(
                    "fault.{field} does not apply to kind \"{}\" (it reads {})",
                    kind.name(),
                    kind.fields().join(", ")
                )
            })
    }
}

/// serde's "expected" in words for a scenario's author.
fn plain_expected(expected: &str) -> String {
    let e = expected.replace('`', "");
    match e.as_str() {
        "u64" | "usize" | "u32" => "a whole number >= 0".into(),
        "f64" => "a number".into(),
        "a sequence" => "an array".into(),
        _ if e.starts_with("struct ") => "a table".into(),
        _ => e,
    }
}
