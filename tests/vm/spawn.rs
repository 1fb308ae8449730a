//! vnode's main job, for real: nodes spawned in parallel in the namespace lab (TCG guests from the
//! Debian test image), reachable with their pinned host keys, with the addresses the plan says;
//! beside them nodes whose boot dies before the network, each of which fails clearly and at once
//! (as its console says) while they go on: a blank disk (vnode06: the firmware), and copies of
//! the test image without grub.cfg (vnode07: GRUB's prompt), without its kernel (vnode08) and
//! with a root UUID that is on no disk (vnode09: the initramfs gives up).
//! Three real boots serve every check (boots are the suite's cost; the broken ones stop early
//! and cost little): vnode03, vnode05 and the broken vnode06-09 (the ready ones saved by
//! default: they wait for cloud-init); then vnode03 again with `--force --cold`.

use crate::budget;
use crate::common;

use std::net::Ipv4Addr;

use common::broken_disk::{Breakage, broken_copy};
use common::e2e::{VmLab, assert_no_nodes};

#[test]
fn three_nodes_and_a_broken_one_in_parallel_then_refuse_replace_and_destroy() {
    let Some(vms) = VmLab::up("spawn") else {
        return;
    };
    let (lab, site) = (&vms.lab, &vms.site);
    for name in ["debian-12-test", "debtest"] {
        lab.import(&vms.image, name, "debian11");
    }
    // A blank disk: the firmware finds nothing to boot.
    lab.import(&site.blank_disk("blank.qcow2", "2G"), "broken", "debian11");
    // Real images broken after their boot loader: (node, image, breakage, what the console says,
    // what the error says it means).
    let dying = [
        (
            "vnode07",
            Breakage::NoGrubCfg,
            "'grub>'",
            "GRUB cannot boot a kernel",
        ),
        (
            "vnode08",
            Breakage::NoKernel,
            // (GRUB's serial mirror may move the cursor inside its earlier `error:` line.)
            "'error: you need to load the kernel first.' after 'error: ",
            "GRUB cannot boot a kernel",
        ),
        (
            "vnode09",
            Breakage::WrongRootUuid,
            "Gave up waiting for root",
            "cannot find or mount its root filesystem",
        ),
    ];
    for (_, breakage, _, _) in dying {
        let copy = broken_copy(&vms.image, &site.root, breakage);
        lab.import(&copy, breakage.name(), "debian11");
        std::fs::remove_file(copy).unwrap();
    }

    // Two nodes, two image names, and the broken one, in parallel: exit 3 for the broken one.
    // Two real boots, and two guests that spin at GRUB's prompt (no-grub-cfg, no-kernel: GRUB
    // waits for a key without halting the CPU, and under TCG each took as much CPU as a boot):
    // the whole budget.
    let boots = budget::boots(3);
    let report = lab
        .spawn([
            "-d",
            "debian-12-test",
            "3",
            "5:debtest",
            "6:broken",
            "7:no-grub-cfg",
            "8:no-kernel",
            "9:wrong-root-uuid",
            "--timeout",
            "600",
        ])
        .expect_code(3);
    drop(boots);
    let broken = report.node("vnode06");
    assert_eq!(broken["outcome"], "failed");
    assert_eq!(broken["stage"], "booting", "{broken:#}");
    // The firmware said so on the serial console: failed within seconds, not at the timeout.
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("its disk does not boot")
            && error.contains("Boot failed: not a bootable disk")
            && error.contains("image broken"),
        "{error}"
    );
    // (From its boot's start: with two boots at once it may have queued for a slot first.)
    let booting_at = broken["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == "booting")
        .map(|s| s[1].as_f64().unwrap())
        .expect("it reached booting");
    let failed_after = broken["seconds"].as_f64().unwrap() - booting_at;
    assert!(failed_after < 60.0, "{failed_after} s: {broken:#}");
    assert!(
        broken["console_tail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("Booting from Hard Disk")),
        "{broken:#}"
    );
    for (name, breakage, says, meaning) in dying {
        let n = report.node(name);
        assert_eq!(n["outcome"], "failed", "{n:#}");
        assert_eq!(n["stage"], "booting", "{n:#}");
        let error = n["error"].as_str().unwrap();
        assert!(
            error.contains("its boot died before the network")
                && error.contains(says)
                && error.contains(meaning)
                && error.contains(&format!("image {}", breakage.name())),
            "{name}: {error}"
        );
    }
    let plan = lab.json(["plan", "3-5"]);
    let check_node = |report: &common::lab::Spawned, name: &str| {
        let n = report.node(name);
        assert_eq!(n["outcome"], "ready", "{n:#}");
        assert_eq!(n["hostname"], name);
        assert!(n["os"].as_str().unwrap().contains("Debian"), "{n:#}");
        let private: Ipv4Addr = n["private_ip"].as_str().unwrap().parse().unwrap();
        assert_eq!(private.octets()[..3], [192, 168, 122], "{n:#}");
        let entry = common::json::plan_entry(&plan, name);
        assert_eq!(
            n["public_ip"], entry["public_ip"],
            "public address is not the plan's: {n:#}"
        );
        // The system ssh with vnode's known_hosts and StrictHostKeyChecking=yes.
        assert_eq!(lab.ssh(name, &["hostname"]), name);
    };
    for name in ["vnode03", "vnode05"] {
        check_node(&report, name);
        // An imported image names no renderer, so the node waits for cloud-init: the default
        // (fresh_states = "auto") saves its state at its first ready.
        assert_eq!(
            report.node(name)["fresh"]["how"],
            "saved",
            "{:#}",
            report.report
        );
    }
    assert_eq!(report.node("vnode05")["image"], "debtest");
    // The broken node's domain and files stay (its console is there to read) until destroyed.
    let listed = lab.json(["list"]);
    assert_eq!(listed["nodes"].as_array().unwrap().len(), 6, "{listed:#}");
    // The broken nodes have shown what they fail with: gone, so GRUB's prompt stops spinning.
    lab.vnode_ok(["destroy", "6-9"]);

    // Again without --force: refused and left alone.
    let instance_id = || lab.ssh("vnode03", &["cat", "/var/lib/cloud/data/instance-id"]);
    let instance = instance_id();
    let again = lab.spawn(["-d", "debian-12-test", "3"]).expect_code(3);
    assert_eq!(again.node("vnode03")["outcome"], "exists");
    assert_eq!(instance_id(), instance);

    // With --force --cold: re-created by a boot (--force alone would restore the state saved
    // above), a new instance, and the new host key is pinned.
    let first = report;
    let boots = budget::boots(1);
    let report = lab
        .spawn([
            "-d",
            "debian-12-test",
            "--force",
            "--cold",
            "3",
            "--timeout",
            "600",
        ])
        .expect_ready();
    drop(boots);
    assert_ne!(instance_id(), instance);
    check_node(&report, "vnode03");
    // Public LAN: a sibling's public address (vnode05, up since the first spawn) and the host
    // side of the bridge answer.
    let sibling = first.node("vnode05")["public_ip"]
        .as_str()
        .unwrap()
        .to_string();
    lab.ssh("vnode03", &["ping", "-c1", "-W5", &sibling]);
    let gateway = plan["entries"][0]["public_ip"]
        .as_str()
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string()
        + ".254";
    lab.ssh("vnode03", &["ping", "-c1", "-W5", &gateway]);

    // Destroy leaves nothing of the nodes.
    lab.vnode_ok(["destroy", "3-9"]);
    assert_no_nodes(lab, site);
    let known = std::fs::read_to_string(site.nodes().join("known_hosts")).unwrap_or_default();
    assert!(!known.contains("vnode0"), "{known}");
}
