//! Other programs: starting them and waiting for them ([`exec`]), the one async runtime
//! ([`runtime`]), the debug log of what vnode asks of them ([`debug_log`]), and the model of
//! `ip -j` output ([`ip_json`]); and the libc calls about this process and its users
//! ([`unix`]).

pub mod debug_log;
pub mod exec;
pub mod ip_json;
pub mod runtime;
pub mod unix;
