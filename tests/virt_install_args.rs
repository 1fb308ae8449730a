//! `virt_install_args` against the installed virt-install's own parser: every way argparse
//! could read an argument as one of vnode's options (short aliases, attached values, short
//! flags run together, `--opt=value`, unambiguous prefixes) is refused, and no long option
//! virt-install reads as another option is.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use vnode::config::virt_install_args::{check_virt_install_arg, vnode_owns};

/// Builds virt-install's parser (its own `parse_args`, stopped before it parses) and reports
/// its options, its options without a value, and which options each candidate sets.
const PROBE: &str = r#"
import argparse, contextlib, io, json, sys
sys.path.insert(0, "/usr/share/virt-manager")
from virtinst import virtinstall
captured = {}
def grab(self, *a, **k):
    captured["p"] = self
    raise SystemExit(0)
real = argparse.ArgumentParser.parse_known_args
argparse.ArgumentParser.parse_args = grab
try:
    virtinstall.parse_args()
except SystemExit:
    pass
p = captured["p"]
defaults = vars(real(p, [])[0])
def resolve(args):
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            ns, _ = real(p, args)
        except SystemExit:
            return None
    return sorted(k for k, v in vars(ns).items() if v != defaults.get(k))
cands = json.load(sys.stdin)
print(json.dumps({
    "options": {o: a.dest for a in p._actions for o in a.option_strings},
    "zero_arg": sorted(o for a in p._actions for o in a.option_strings if a.nargs == 0),
    "resolved": [resolve(c) for c in cands],
}))
"#;

#[derive(serde::Deserialize)]
struct Probe {
    options: BTreeMap<String, String>,
    zero_arg: Vec<String>,
    /// Per candidate: the destinations it sets, or None when virt-install refuses it.
    resolved: Vec<Option<Vec<String>>>,
}

fn probe(candidates: &[Vec<String>]) -> Probe {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PROBE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs virt-install (Debian package virtinst)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(candidates).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "virt-install's parser could not be loaded (install virtinst)"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every argument (with a value after it where one is needed) that could reach an option:
/// each prefix of each long option, bare and `=x`; each short option bare, attached and `=x`,
/// and after each short flag without a value.
fn candidates(options: &[String], zero_arg_shorts: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for o in options {
        if let Some(long) = o.strip_prefix("--") {
            for k in 1..=long.len() {
                let p = format!("--{}", &long[..k]);
                out.push(vec![p.clone(), "x".into()]);
                out.push(vec![format!("{p}=x")]);
            }
        } else {
            out.push(vec![o.clone(), "x".into()]);
            out.push(vec![format!("{o}x")]);
            out.push(vec![format!("{o}=x")]);
            for z in zero_arg_shorts {
                out.push(vec![format!("{z}{}", &o[1..]), "x".into()]);
            }
        }
    }
    out
}

#[test]
fn vnodes_options_are_refused_in_every_form_virt_install_reads_them() {
    let first = probe(&[]);
    let owned: Vec<&String> = vnode_owns()
        .map(|o| {
            first
                .options
                .get(o)
                .unwrap_or_else(|| panic!("virt-install has no option {o}"))
        })
        .collect();
    let options: Vec<String> = first.options.keys().cloned().collect();
    let shorts: Vec<String> = first
        .zero_arg
        .iter()
        .filter(|o| !o.starts_with("--"))
        .cloned()
        .collect();
    let cands = candidates(&options, &shorts);
    let probe = probe(&cands);
    let (mut refused, mut accepted) = (0, 0);
    for (cand, dests) in cands.iter().zip(&probe.resolved) {
        let Some(dests) = dests else { continue };
        let arg = &cand[0];
        let verdict = check_virt_install_arg(arg);
        if dests.iter().any(|d| owned.contains(&d)) {
            assert!(verdict.is_err(), "{arg:?} sets {dests:?} but is accepted");
            refused += 1;
        } else if arg.starts_with("--") && !dests.is_empty() {
            assert!(
                verdict.is_ok(),
                "{arg:?} sets only {dests:?} but is refused"
            );
            accepted += 1;
        }
    }
    eprintln!(
        "{} candidates: {refused} refused, {accepted} accepted",
        cands.len()
    );
    assert!(refused > 40 && accepted > 500, "{refused} {accepted}");
}
