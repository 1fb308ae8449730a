//! From the command line to planned nodes: the spec grammar ([`spec`]), pools of names
//! ([`pool`]) and their MAC scheme ([`mac`]), the planned node that every later step reads
//! ([`planned_node`]), and the site's DHCP/DNS plan built from the same scheme ([`site_dhcp`]).

pub mod mac;
pub mod planned_node;
pub mod pool;
pub mod site_dhcp;
pub mod spec;
