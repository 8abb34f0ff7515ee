"""Times one drain for scripts/bench and scripts/profile: waits for the
worker to take its first job, then for the last to be done, and prints
`t0 t1 c0 c1 r0 r1`: the wall clock, the worker's CPU ticks and the Redis
server's CPU seconds at each end.

One process on one Redis connection does the watching. Each look costs a
few microseconds; a `redis-cli` started every 10 ms, as the scripts did
before, cost the machine about 0.4 of its 2 cores while the drain ran,
taken from whichever worker was measured. With `--during CMD`, CMD (a
profiler) runs from the first job to the last and is stopped with SIGINT.
"""
import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time


class Redis:
    """Just enough of RESP for GET, LLEN and INFO."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.replies = self.sock.makefile("rb")

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            arg = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(parts))
        line = self.replies.readline()
        kind, rest = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.replies.read(size + 2)[:-2].decode()
        if kind == b"+":
            return rest.decode()
        raise RuntimeError(f"Redis answered {line!r} to {args[0]}")

    def number(self, *args):
        value = self.call(*args)
        return int(value) if value is not None else 0

    def cpu_seconds(self):
        info = self.call("INFO", "cpu")
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


def cpu_ticks(pid, children):
    """User and system ticks of `pid` (and of the children it waited for)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks + (int(fields[13]) + int(fields[14]) if children else 0)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="the Redis server's port")
    parser.add_argument("--pid", type=int, required=True, help="the worker process measured")
    parser.add_argument("--label", default="the worker", help="its name, for errors")
    parser.add_argument("--jobs", type=int, required=True, help="jobs pushed to queue:default")
    parser.add_argument("--until", choices=("processed", "empty"), default="processed",
                        help="the end: stat:processed reaches --jobs, or the queue is empty "
                             "(Sidekiq writes its counter only with its heartbeat)")
    parser.add_argument("--children", action="store_true", help="count the CPU of children it waited for")
    parser.add_argument("--during", help="a command run from the first job to the last")
    args = parser.parse_args()

    redis = Redis(args.port)
    while redis.number("LLEN", "queue:default") >= args.jobs:
        if not alive(args.pid):
            sys.exit(f"{args.label} exited early")
        time.sleep(0.001)
    t0, c0, r0 = time.time(), cpu_ticks(args.pid, args.children), redis.cpu_seconds()
    during = subprocess.Popen(shlex.split(args.during)) if args.during else None
    while True:
        if args.until == "processed":
            done = redis.number("GET", "stat:processed") >= args.jobs
        else:
            done = redis.number("LLEN", "queue:default") == 0
        if done:
            break
        if not alive(args.pid):
            sys.exit(f"{args.label} exited during the drain")
        time.sleep(0.002)
    t1, c1, r1 = time.time(), cpu_ticks(args.pid, args.children), redis.cpu_seconds()
    if during:
        during.send_signal(signal.SIGINT)
        during.wait()
    print(f"{t0:.6f} {t1:.6f} {c0} {c1} {r0:.6f} {r1:.6f}")


if __name__ == "__main__":
    main()
