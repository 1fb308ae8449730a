//! Text vnode reads and writes: rules for values handed to other programs ([`names`]), URL
//! percent-decoding ([`percent`]), POSIX shell quoting ([`shell`]), aligned tables ([`table`]) and
//! the terminal's conventions ([`terminal`]).

pub mod names;
pub mod percent;
pub mod shell;
pub mod table;
pub mod terminal;
