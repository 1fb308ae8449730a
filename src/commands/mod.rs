//! One module per command (or family of commands): each turns validated arguments into calls
//! into the library and prints the result (a table, or JSON with `--json`), and picks the exit
//! code.

pub mod assets;
pub mod completion;
pub mod config;
pub mod console;
pub mod destroy;
mod error;
pub mod host;
pub mod hosts;
pub mod images;
pub mod inventory;
pub(crate) mod known_nodes;
pub mod lab;
pub mod list;
pub mod manpage;
pub mod plan;
pub mod prepare;
pub mod reset;
pub mod spawn;
pub mod ssh;
pub mod states;
pub mod warm;

pub use error::{CommandError, DeriveError};
