//! Values of one config file checked where they are: a rejected value becomes a [`FileError`]
//! naming the file, the line of its key and the field.

use std::fmt::Display;
use std::path::Path;

use toml::Spanned;

use super::file::Span;
use crate::plan::pool::Limit;
use crate::text::toml_file::{FileError, line_of};

/// One config file's text, to locate its problems.
pub(super) struct Located<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Located<'_> {
    pub fn error(&self, span: Option<Span>, field: &str, problem: impl Display) -> FileError {
        FileError {
            path: self.path.into(),
            line: span.map(|s| line_of(self.text, s.start)),
            field: Some(field.into()),
            message: problem.to_string(),
        }
    }

    /// A string that `rule` accepts.
    pub fn string<E: Display>(
        &self,
        value: Spanned<String>,
        field: &str,
        rule: impl FnOnce(&str) -> Result<(), E>,
    ) -> Result<String, FileError> {
        rule(value.get_ref()).map_err(|e| self.error(Some(value.span()), field, e))?;
        Ok(value.into_inner())
    }

    /// [`Located::string`] of a key that may be left out.
    pub fn optional<E: Display>(
        &self,
        value: Option<Spanned<String>>,
        field: &str,
        rule: impl FnOnce(&str) -> Result<(), E>,
    ) -> Result<Option<String>, FileError> {
        value.map(|v| self.string(v, field, rule)).transpose()
    }

    /// Each string of a list, which `rule` accepts; `field[i]` names the one refused.
    pub fn strings<E: Display>(
        &self,
        values: Vec<Spanned<String>>,
        field: &str,
        rule: impl Fn(&str) -> Result<(), E>,
    ) -> Result<Vec<String>, FileError> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| self.string(v, &format!("{field}[{i}]"), &rule))
            .collect()
    }

    /// A number within `limit`, as the field's type (every limit lies within it).
    pub fn number<T: TryFrom<i64>>(
        &self,
        value: Option<&Spanned<i64>>,
        field: &str,
        key: &'static str,
        limit: Limit,
    ) -> Result<Option<T>, FileError> {
        let Some(value) = value else { return Ok(None) };
        let n = *value.get_ref();
        limit
            .check(key, n)
            .map_err(|e| self.error(Some(value.span()), field, e))?;
        Ok(Some(T::try_from(n).unwrap_or_else(|_| {
            unreachable!("the limit of {key} lies within its type")
        })))
    }
}
