//! bash's side of vnode's completions.
//!
//! bash splits the words it hands a completion function at every `COMP_WORDBREAKS` character,
//! `:` and `=` among them, so `3:f43` and `--lab=x` would reach vnode in pieces. The function
//! re-splits the line up to the cursor at blanks only, asks vnode for the whole word, and strips
//! from each reply what comes before the last `:`/`=` of the word, because that is the part bash
//! replaces. The protocol to the binary is clap_complete's (`COMPLETE=bash vnode -- WORDS`, the
//! word index and separator in `_CLAP_COMPLETE_INDEX` and `_CLAP_IFS`).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

use clap_complete::env::EnvCompleter;

const SCRIPT: &str = r#"# bash completion for vnode: node names, images and labs come from vnode itself.
_vnode() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    read -r -a words <<< "$line"
    if [[ -z $line || $line =~ [[:blank:]]$ ]]; then
        words+=("")
    fi
    local cword=$(( ${#words[@]} - 1 ))
    local cur=${words[cword]}
    local breaks=""
    [[ $COMP_WORDBREAKS == *:* ]] && breaks+=":"
    [[ $COMP_WORDBREAKS == *=* ]] && breaks+="="
    local head=""
    if [[ -n $breaks && $cur == *[$breaks]* ]]; then
        head=${cur%"${cur##*[$breaks]}"}
    fi
    local IFS=$'\013'
    local -a replies
    replies=( $(_CLAP_IFS="$IFS" _CLAP_COMPLETE_INDEX="$cword" @VAR@=bash "@COMPLETER@" -- "${words[@]}") ) || return
    COMPREPLY=( "${replies[@]#"$head"}" )
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *[=/:] ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
complete -o bashdefault -o nosort -F _vnode @BIN@
"#;

/// The bash adapter: its own registration script, clap_complete's answer to each request.
#[derive(Clone, Copy, Debug)]
pub struct Bash;

impl EnvCompleter for Bash {
    fn name(&self) -> &'static str {
        "bash"
    }

    fn is(&self, name: &str) -> bool {
        name == "bash"
    }

    fn write_registration(
        &self,
        var: &str,
        _name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> io::Result<()> {
        let script = SCRIPT
            .replace("@VAR@", var)
            .replace("@COMPLETER@", completer)
            .replace("@BIN@", bin);
        buf.write_all(script.as_bytes())
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&Path>,
        buf: &mut dyn Write,
    ) -> io::Result<()> {
        clap_complete::env::Bash.write_complete(cmd, args, current_dir, buf)
    }
}
