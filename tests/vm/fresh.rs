//! Fresh states, for real, in one namespace lab, two nodes throughout: `warm 3 4` (two cold
//! boots, each state saved, nothing left running; again: nothing to do), a spawn that restores
//! both (the watcher's reseed on the console, the pinned host key, both addresses, the clock), a
//! reset twice (no trace of the earlier run, different `/dev/urandom` at the first login), Ctrl-C
//! during a reset's restore (nothing half-made, the state intact), then a state that no longer
//! matches (memory changed) and a corrupt one (memory.save cut short): a `--wait cloud-init`
//! spawn boots both cold, says why, and saves new states by default (`auto`). `reset` of an unknown node and `destroy --purge` close it.

use crate::budget;
use crate::common;
use crate::running::{Running, has_domain};

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::e2e::{VmLab, assert_no_nodes};
use common::lab::{Lab, Spawned};
use serde_json::Value;

const NODES: [&str; 2] = ["vnode03", "vnode04"];

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The node is the restored one: the watcher reseeded its RNG and set its clock before the first
/// login, which read 16 bytes of /dev/urandom first; both addresses are the plan's; the system
/// ssh logs in with the pinned key; its clock is within a second of the host's.
pub(crate) fn check_restored(lab: &Lab, report: &Spawned, name: &str, plan: &Value) -> String {
    let n = report.node(name);
    assert_eq!(n["outcome"], "ready", "{n:#}");
    let fresh = &n["fresh"];
    assert_eq!(fresh["how"], "restored", "{n:#}");
    let guest = fresh["restored_guest"].as_str().unwrap_or_default();
    assert!(
        guest.contains("RNG reseeded from the host (virtio-rng)")
            && guest.contains("clock set from the RTC"),
        "{n:#}"
    );
    // (Whole seconds of the RTC and the clock: one apart at most when the clock is right.)
    let offset = fresh["clock_offset_seconds"].as_i64().unwrap();
    assert!(offset.abs() <= 1, "{n:#}");
    assert_eq!(fresh["dhcp_renewed_by"], "networkd", "{n:#}");
    let private: Ipv4Addr = n["private_ip"].as_str().unwrap().parse().unwrap();
    assert_eq!(private.octets()[..3], [192, 168, 122], "{n:#}");
    let entry = common::json::plan_entry(plan, name);
    assert_eq!(n["public_ip"], entry["public_ip"], "{n:#}");
    assert_eq!(lab.ssh(name, &["hostname"]), name);
    let before = now();
    let guest_time: f64 = lab.ssh(name, &["date", "+%s.%N"]).parse().unwrap();
    let after = now();
    assert!(
        guest_time > before - 1.0 && guest_time < after + 1.0,
        "{name}: guest clock {guest_time}, host {before}..{after}"
    );
    fresh["urandom_at_login"].as_str().unwrap().to_string()
}

#[test]
fn warm_respawn_reset_ctrl_c_and_cold_fallbacks() {
    let Some(vms) = VmLab::up("fresh") else {
        return;
    };
    let (lab, site) = (&vms.lab, &vms.site);
    lab.import(&vms.image, "debian-12-test", "debian11");
    let states = site.nodes().join(".fresh-states");

    // warm: two cold boots, each state saved, the nodes removed.
    let boots = budget::boots(2);
    let warm = lab
        .spawn(["warm", "-d", "debian-12-test", "3", "4", "--timeout", "600"])
        .expect_ready();
    drop(boots);
    for name in NODES {
        let n = warm.node(name);
        assert_eq!(n["fresh"]["how"], "saved", "{n:#}");
        eprintln!(
            "{name}: warm {} s, saving {} s (snapshot {} s), state {} bytes",
            n["seconds"],
            n["fresh"]["saving_seconds"],
            n["fresh"]["snapshot_seconds"],
            n["fresh"]["state_bytes"]
        );
        assert!(states.join(name).join("state.json").exists());
    }
    assert_no_nodes(lab, site);
    // Again: the states are there and match; nothing is booted.
    let again = lab
        .spawn(["warm", "-d", "debian-12-test", "3", "4"])
        .expect_ready();
    for name in NODES {
        assert_eq!(again.node(name)["outcome"], "warm", "{:#}", again.report);
    }
    assert_no_nodes(lab, site);
    let listed = lab.json(["states"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed:#}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "usable")
    );

    // A spawn restores both.
    let plan = lab.json(["plan", "3-4"]);
    let boots = budget::alone();
    let spawned = lab.spawn(["-d", "debian-12-test", "3", "4"]).expect_ready();
    drop(boots);
    let mut seen = Vec::new();
    for name in NODES {
        seen.push(check_restored(lab, &spawned, name, &plan));
        eprintln!("{name}: respawn {} s", spawned.node(name)["seconds"]);
    }

    // Reset twice: the earlier run's file is gone, the first login reads other random bytes.
    for round in 0..2 {
        lab.ssh("vnode03", &["touch", "/root/earlier-run"]);
        let boots = budget::alone();
        let reset = lab.spawn(["reset", "3", "4"]).expect_ready();
        drop(boots);
        for name in NODES {
            seen.push(check_restored(lab, &reset, name, &plan));
            eprintln!("{name}: reset {round}: {} s", reset.node(name)["seconds"]);
        }
        assert_eq!(
            lab.ssh("vnode03", &["ls", "/root"]),
            "",
            "the earlier run's file survived a reset"
        );
    }
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "urandom repeated: {seen:?}");

    // Ctrl-C during a reset's restore: a node directory exists exactly when its domain does,
    // nothing half-made stays, and the state is intact (the next spawn restores it).
    let boots = budget::alone();
    let run = Running::start(lab.cli().args(["--json", "reset", "3"]));
    run.wait_for(&["vnode03", "restoring"], Duration::from_secs(120));
    run.interrupt();
    let (code, report, stderr) = {
        let (code, report, stderr, _) = run.finish();
        (code, report, stderr)
    };
    assert!(code == 130 || code == 0, "{code}: {report:#}\n{stderr}");
    let dir = site.nodes().join("vnode03").exists();
    assert_eq!(dir, has_domain(lab, "vnode03"), "{report:#}");
    let staging: Vec<_> = std::fs::read_dir(site.nodes())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".vnode"))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
    let again = lab
        .spawn(["-d", "debian-12-test", "--force", "3"])
        .expect_ready();
    drop(boots);
    check_restored(lab, &again, "vnode03", &plan);

    // vnode03's state no longer matches (the memory changed), vnode04's memory image is cut
    // short: a spawn --force boots both cold, says why, and saves new states — by default
    // (fresh_states = "auto", no flag), since the spawn waits for cloud-init anyway.
    lab.set_config(
        &site
            .config("")
            .replace("memory_mib = 512", "memory_mib = 640"),
    );
    let memory = states.join("vnode04").join("memory.save");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&memory)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let boots = budget::boots(2);
    let fell = lab
        .spawn([
            "-d",
            "debian-12-test",
            "--force",
            "--wait",
            "cloud-init",
            "3",
            "4",
            "--timeout",
            "600",
        ])
        .expect_ready();
    drop(boots);
    let note = |name: &str| {
        let n = fell.node(name);
        assert_eq!(n["fresh"]["how"], "saved", "{n:#}");
        n["fresh"]["note"].as_str().unwrap_or_default().to_string()
    };
    assert!(
        note("vnode03").contains("its fresh state does not match (memory changed): booting cold"),
        "{:#}",
        fell.report
    );
    assert!(
        note("vnode04").contains("its fresh state is unusable (memory.save is 1048576 bytes"),
        "{:#}",
        fell.report
    );
    let listed = lab.json(["states"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "usable"),
        "{listed:#}"
    );

    // reset of a node vnode has no record of: exit 2, nothing touched.
    let (code, err) = lab.cli().args(["reset", "9"]).fails();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("vnode09: no such node"), "{err}");

    // destroy --purge: the nodes and their states.
    lab.vnode_ok(["destroy", "--purge", "3", "4"]);
    assert!(!states.join("vnode03").exists() && !states.join("vnode04").exists());
    assert_no_nodes(lab, site);
}
