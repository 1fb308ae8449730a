//! Text vnode reads and writes: rules for values handed to other programs ([`names`], and osinfo
//! ids: [`osinfo_id`]), URL percent-decoding ([`percent`]), POSIX shell quoting ([`shell`]),
//! OpenSSH's config syntax ([`ssh_config`]), aligned tables ([`table`]), the terminal's
//! conventions ([`terminal`]), JSON that YAML 1.1 reads back exactly ([`yaml_json`]), and TOML
//! files read with errors that name the file, line and field ([`toml_file`]).

pub mod names;
pub mod osinfo_id;
pub mod percent;
pub mod shell;
pub mod ssh_config;
pub mod table;
pub mod terminal;
pub mod toml_file;
pub mod yaml_json;
