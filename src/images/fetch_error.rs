//! Why a checksum file or signature could not be fetched, and the text of an HTTP failure with
//! its causes (the URL left out: every message that shows one names it already).

use indicatif::HumanBytes;
use reqwest::StatusCode;

/// A checksum file is a few KiB; anything much larger is not one.
pub const CHECKSUM_FILE_LIMIT: usize = 4 << 20;

/// Why a checksum file or signature could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("it answered {0}")]
    Status(StatusCode),
    #[error("it is larger than {}, so not a checksum file", HumanBytes(CHECKSUM_FILE_LIMIT as u64))]
    TooLarge,
}

/// A failed request or body, shown with its causes ("connection refused", "operation timed
/// out"); the URL is left out because every message that shows it names it already.
#[derive(Debug, thiserror::Error)]
#[error("{}", chain_text(.0))]
pub struct HttpError(#[source] reqwest::Error);

impl From<reqwest::Error> for HttpError {
    fn from(e: reqwest::Error) -> HttpError {
        HttpError(e.without_url())
    }
}

/// An error's text followed by those of its causes that it does not already include.
fn chain_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
