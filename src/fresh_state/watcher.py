#!/usr/bin/python3
"""vnode's fresh-state watcher (vnode's docs/fresh-states.md).

vnode starts it in a node just before it saves the node's state, so it is running in every
restore of that state. It first sets the clock exactly at an edge of the RTC's second (the RTC
follows the host's clock), so that the clock then trails the RTC's whole seconds by less than
a second. When the clock falls behind the RTC by 1 s or more, the node was restored (vnode
restores a state at least 2.1 s after its snapshot, so such a jump is always seen): the watcher reseeds the kernel's RNG from the
host (virtio-rng, /dev/hwrng), sets the clock from the RTC (to the middle of its second: within
0.5 s), says so on the kernel log (and so on the serial console, which vnode reads before its
first login), then sets the clock again at the RTC's next second edge.
"""
import fcntl
import struct
import time

RTC = "/sys/class/rtc/rtc0/since_epoch"
RNDADDENTROPY = 0x40085203
RNDRESEEDCRNG = 0x5207
POLL = 0.2
JUMP = 1.0


def rtc():
    with open(RTC) as f:
        return int(f.read())


def reseed():
    try:
        with open("/dev/hwrng", "rb", buffering=0) as f:
            data = f.read(64)
    except OSError as e:
        return "RNG not reseeded (no /dev/hwrng: %s)" % e.strerror
    with open("/dev/urandom", "wb", buffering=0) as r:
        fcntl.ioctl(r, RNDADDENTROPY, struct.pack("ii", len(data) * 8, len(data)) + data)
        fcntl.ioctl(r, RNDRESEEDCRNG)
    return "RNG reseeded from the host (virtio-rng)"


def set_clock():
    time.clock_settime(time.CLOCK_REALTIME, rtc() + 0.5)
    return "clock set from the RTC"


def set_clock_at_edge():
    """The clock set again when the RTC's second turns (at most 1.5 s later): exact to the poll."""
    start = rtc()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        now = rtc()
        if now != start:
            time.clock_settime(time.CLOCK_REALTIME, float(now))
            return
        time.sleep(0.005)


def main():
    try:
        set_clock_at_edge()
    except (OSError, ValueError):
        pass
    while True:
        time.sleep(POLL)
        try:
            behind = rtc() - time.time()
        except (OSError, ValueError):
            continue
        if behind < JUMP:
            continue
        said = []
        for step in (reseed, set_clock):
            try:
                said.append(step())
            except OSError as e:
                said.append("%s failed: %s" % (step.__name__, e.strerror))
        try:
            with open("/dev/kmsg", "w") as k:
                k.write("<3>vnode-fresh: restored %d s later: %s\n" % (behind, ", ".join(said)))
        except OSError:
            pass
        try:
            set_clock_at_edge()
        except (OSError, ValueError):
            pass


main()
