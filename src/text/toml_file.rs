//! Reading TOML files (the catalog, the config) with errors that name the file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A problem in a data file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub path: PathBuf,
    pub line: Option<usize>,
    /// The key the problem is about, when known (`image[3].aliases`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Parses `text` (read from `path`) into `T`, mapping toml's error to a located [`FileError`].
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileError> {
    toml::from_str(text).map_err(|e: toml::de::Error| FileError {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        field: None,
        message: e.message().trim().to_string(),
    })
}

/// Reads a data file's text; a missing or unreadable file is a [`FileError`].
pub fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|e| FileError {
        path: path.to_path_buf(),
        line: None,
        field: None,
        message: format!("cannot read it: {e}"),
    })
}
