//! vnode's JSON output, parsed with a message that shows what was not JSON.

use std::process::Output;

use serde_json::Value;

/// Parses `text`, or panics showing it.
pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Parses a run's stdout, whatever its exit status, or panics showing both streams.
pub fn stdout(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}, exit {}):\nstdout: {text}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
