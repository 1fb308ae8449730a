//! Host preparation and checks: `vnode host check` (can this host run vnode?) and
//! `vnode host bridge` (the public bridge).

pub mod bridge;
pub mod check;
pub mod host_facts;
