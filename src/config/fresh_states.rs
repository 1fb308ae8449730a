//! `fresh_states`: when a cold-booted node's state is saved ([docs/fresh-states.md]).

use toml::Spanned;

use super::file::{FreshStatesFile, Span};

/// When a node that boots cold gets its fresh state saved at its first ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreshStates {
    /// Never (`false`, `--no-fresh-states`).
    Off,
    /// Always (`true`, `--fresh-states`): a spawn that would return at the ssh login waits for
    /// cloud-init's end first, since a state is saved only then.
    On,
    /// When the node waits for cloud-init anyway (`--wait cloud-init`, or `auto` with work for
    /// cloud-init's later stages): the save then costs about half a second, not cloud-init's end.
    Auto,
}

impl FreshStates {
    /// Whether a node is saved, given whether its spawn waits for cloud-init anyway.
    pub fn saves(self, waits_for_cloud_init: bool) -> bool {
        match self {
            FreshStates::Off => false,
            FreshStates::On => true,
            FreshStates::Auto => waits_for_cloud_init,
        }
    }
}

/// As the file writes it: `false`, `true` or `"auto"`.
impl serde::Serialize for FreshStates {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FreshStates::Off => s.serialize_bool(false),
            FreshStates::On => s.serialize_bool(true),
            FreshStates::Auto => s.serialize_str("auto"),
        }
    }
}

/// A `fresh_states` that is neither a boolean nor `"auto"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} is not a fresh_states value: use true, false or \"auto\"", crate::text::names::quoted(.value))]
pub struct UnknownFreshStates {
    pub value: String,
}

/// The file's value; `Auto` when it leaves it out.
pub(super) fn parse(
    value: Option<&Spanned<FreshStatesFile>>,
) -> Result<FreshStates, (Option<Span>, UnknownFreshStates)> {
    match value.map(|v| (v.get_ref(), v.span())) {
        None => Ok(FreshStates::Auto),
        Some((FreshStatesFile::Bool(true), _)) => Ok(FreshStates::On),
        Some((FreshStatesFile::Bool(false), _)) => Ok(FreshStates::Off),
        Some((FreshStatesFile::Word(w), _)) if w == "auto" => Ok(FreshStates::Auto),
        Some((FreshStatesFile::Word(w), span)) => {
            Err((Some(span), UnknownFreshStates { value: w.clone() }))
        }
        Some((FreshStatesFile::Other(v), span)) => Err((
            Some(span),
            UnknownFreshStates {
                value: v.to_string(),
            },
        )),
    }
}
