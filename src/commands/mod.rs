//! One module per command family: each turns validated arguments into calls into the library and
//! prints the result (a table, or JSON with `--json`).

pub mod config;
pub mod host;
pub mod images;
pub mod lab;
pub mod nodes;
pub mod plan;
pub mod spawn;
