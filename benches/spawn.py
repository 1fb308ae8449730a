#!/usr/bin/env python3
"""Spawn benchmark in vnode's namespace lab: for N = 1, 3, 6 nodes (TCG guests from the Debian test
image), the time to all-ready, and from each guest's journal the moment its sshd started.

Reports per run:
  all-ready     seconds from the command's start until the last node is ready
  sshd(max)     when the slowest guest's sshd started (guest journal, guest clock offset corrected)
  overhead      all-ready - sshd(max): what vnode adds after the last sshd is up (this includes
                waiting for cloud-init to finish, which vnode reports as part of ready)
  detect        per node, sshd start -> vnode saw the banner and logged in ("ssh" stage): mean/max
  seed          the seed's approach on the same runs: 30 s sleep, then an ssh try every 5 s, so a
                node counts from the first try at or after its sshd start; all-ready = the max

Usage (root): benches/spawn.py [N ...]     default: 1 3 6
              benches/spawn.py --smoke     one run of N = 1 (checks the benchmark still works)
              VNODE_BIN=target/debug/vnode benches/spawn.py ...   (a given binary; default: release)
Needs the packages of .ci/install-deps; builds the release binary and the test image if needed.
Everything runs in a lab named "bench" that is torn down at the end.
"""
import json, math, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VNODE = os.path.abspath(os.environ.get("VNODE_BIN") or os.path.join(ROOT, "target/release/vnode"))
LAB = "bench"


def run(args, check=True, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        sys.exit(f"{args} failed ({p.returncode}):\n{p.stderr}")
    return p


def main():
    args = sys.argv[1:]
    counts = [1] if args == ["--smoke"] else [int(a) for a in args] or [1, 3, 6]
    if not os.environ.get("VNODE_BIN"):
        run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    image = run(["bash", os.path.join(ROOT, "tests/image/build.sh")]).stdout.strip().splitlines()[-1]
    site = f"/var/lib/vnode/bench-{os.getpid()}"
    os.makedirs(site + "/images", mode=0o755)
    os.makedirs(site + "/nodes", mode=0o755)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", site + "/id"])
    key = open(site + "/id.pub").read().strip()
    config = site + "/config.toml"
    with open(config, "w") as f:
        f.write(f'virt_type = "qemu"\ncache_dir = "{site}/images"\nstate_dir = "{site}/nodes"\n'
                f'ssh_keys = ["{key}"]\n[resources]\nmemory_mib = 512\ndisk_gib = 4\n')
    env = dict(os.environ, HOME=site)
    v = lambda *a, **kw: run([VNODE, f"--lab={LAB}", "--config", config, *a], env=env, **kw)
    rows = []
    try:
        v("lab", "up")
        v("images", "import", image, "--name", "bench", "--osinfo", "debian11")
        for n in counts:
            specs = [str(i) for i in range(10, 10 + n)]
            t0 = time.time()
            p = v("--json", "-d", "bench", "--timeout", "900", *specs, check=False)
            report = json.loads(p.stdout)
            nodes = []
            for node in report["nodes"]:
                name = node["name"]
                if node["outcome"] != "ready":
                    sys.exit(f"{name} not ready: {node}")
                # Guest clock offset: host time at the midpoint of a `date` round trip.
                h0 = time.time()
                g = float(v("ssh", name, "--", "date", "+%s.%N").stdout.strip())
                h1 = time.time()
                offset = g - (h0 + h1) / 2
                j = v("ssh", name, "--", "journalctl", "-b", "-u", "ssh.service", "-o", "json").stdout
                started = [json.loads(l) for l in j.splitlines() if l.strip()]
                started = [e for e in started if "Started" in e.get("MESSAGE", "")]
                sshd = int(started[0]["__REALTIME_TIMESTAMP"]) / 1e6 - offset - t0
                stages = dict(node["stages"])
                nodes.append({"sshd": sshd, "ssh": stages["ssh"], "ready": stages["ready"]})
            v("destroy", *specs)
            all_ready = max(x["ready"] for x in nodes)
            sshd_max = max(x["sshd"] for x in nodes)
            detect = [x["ssh"] - x["sshd"] for x in nodes]
            seed = max(30 + 5 * max(0, math.ceil((x["sshd"] - 30) / 5)) for x in nodes)
            rows.append((n, all_ready, sshd_max, all_ready - sshd_max, sum(detect) / n, max(detect), seed))
    finally:
        v("lab", "down", check=False)
        run(["rm", "-rf", site], check=False)
    print(f"{'N':>3} {'all-ready':>10} {'sshd(max)':>10} {'overhead':>9} {'detect mean':>12} {'detect max':>11} {'seed all-ready':>15}")
    for r in rows:
        print(f"{r[0]:>3} {r[1]:>9.1f}s {r[2]:>9.1f}s {r[3]:>8.1f}s {r[4]:>11.2f}s {r[5]:>10.2f}s {r[6]:>14.1f}s")


if __name__ == "__main__":
    main()
