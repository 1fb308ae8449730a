//! vnode's JSON output, parsed with a message that shows what was not JSON.

use std::process::Output;

use serde_json::Value;

/// Parses `text`, or panics showing it.
pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Node `name`'s entry in `vnode --json plan`'s output, or a panic showing the plan.
pub fn plan_entry<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in the plan: {plan:#}"))
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
