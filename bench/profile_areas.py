"""Reads `perf script -F ip,sym,dso` of a runner sampled with call chains
(scripts/profile) and prints where its CPU went, by area and by function,
as shares of the samples and as microseconds per job.

A sample in the kernel counts under the system call that led there (a
futex wake is a wake-up whichever function made it); a sample in user
space counts under the function it was in, grouped by crate.
"""
import argparse
import collections
import re
import sys

# Kernel samples, by what their chain passed through: the first area
# whose words appear in a kernel frame's name names it (a page fault inside
# a system call counts as memory; a futex wait as a wait).
KERNEL_AREAS = [
    ("memory: mappings, resets, page faults", ("page_fault", "madvise", "mmap", "munmap", "mprotect",
                                                "pagemap", "zap_", "do_brk")),
    ("wake-ups and waits (futex)", ("futex",)),
    ("socket I/O", ("tcp_", "sock_", "unix_stream", "inet_", "sendto", "recvfrom", "skb")),
    ("polling and timers (epoll, sleeps)", ("ep_poll", "epoll", "nanosleep", "hrtimer")),
]

# User samples, by the function they were in: the first pattern that
# matches names the area.
USER_AREAS = [
    ("allocation (malloc, free)", re.compile(r"^(malloc|free|realloc|calloc|cfree|_int_\w+|__libc_(malloc|free|"
                                             r"calloc|realloc)|malloc_consolidate|tcache_\w+|unlink_chunk|"
                                             r"_?mi_\w+|mi_\w+|mimalloc)")),
    ("memory copies (memcpy, memset)", re.compile(r"^__(memmove|memcpy|memset|memcmp|mempcpy)\w*")),
    ("sandbox (wasmtime, cranelift)", re.compile(r"wasmtime|cranelift|wiggle|wasi|pulley|wast|wasmparser")),
    ("JSON (serde_json)", re.compile(r"serde_json|serde::")),
    ("Redis client", re.compile(r"\bredis::|combine::")),
    ("tracing", re.compile(r"tracing|sharded_slab")),
    ("clocks (clock_gettime)", re.compile(r"clock_gettime|SystemTime|Instant")),
    ("mail (lettre)", re.compile(r"lettre")),
    ("metrics", re.compile(r"prometheus")),
    ("tokio scheduling and sync", re.compile(r"tokio::|tokio_util::|parking_lot|std::sync|std::thread|__lll_lock|"
                                             r"pthread_|__GI___lll|syscall$")),
    ("the runner's own code", re.compile(r"jobrunner")),
]


def samples(lines):
    """Yields each sample's frames, leaf first, as (symbol, dso) pairs."""
    frames = []
    for line in lines:
        line = line.strip()
        if not line:
            if frames:
                yield frames
                frames = []
            continue
        parts = line.split(" ", 1)
        rest = parts[1] if len(parts) > 1 else ""
        dso = rest[rest.rfind("(") + 1:-1] if rest.endswith(")") else ""
        sym = rest[:rest.rfind("(")].strip() if "(" in rest else rest
        frames.append((sym, dso))
    if frames:
        yield frames


def area_of(frames):
    """The area and the function a sample is counted under."""
    kernel = [sym for sym, dso in frames if dso == "[kernel.kallsyms]"]
    user = [(sym, dso) for sym, dso in frames if dso != "[kernel.kallsyms]"]
    leaf_user = user[0] if user else ("[kernel]", "[kernel.kallsyms]")
    if kernel:
        for area, words in KERNEL_AREAS:
            if any(word in sym for sym in kernel for word in words):
                return area, f"[k] {kernel[0]} <- {leaf_user[0]}"
        return "kernel, other (interrupts, scheduling)", f"[k] {kernel[0]}"
    sym, dso = leaf_user
    if dso.startswith("[JIT]") or "/perf-" in dso:
        # Named through the runner's perf map (JOBRUNNER_PERF_MAP).
        return "guest code (compiled wasm)", f"[guest] {sym}"
    if sym in ("[unknown]", "") and ("anon" in dso or dso in ("[unknown]", "")):
        return "guest code (compiled wasm)", "[guest code]"
    for area, pattern in USER_AREAS:
        if pattern.search(sym):
            return area, sym
    return "other", sym


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=float, required=True)
    parser.add_argument("--wall-seconds", type=float, required=True)
    parser.add_argument("--functions", required=True, help="where to write the per-function list")
    args = parser.parse_args()

    areas, functions = collections.Counter(), collections.Counter()
    total = 0
    for frames in samples(sys.stdin):
        area, function = area_of(frames)
        areas[area] += 1
        functions[re.sub(r"::h[0-9a-f]{16}$", "", function)] += 1
        total += 1
    if total == 0:
        sys.exit("no samples: the drain ended before perf started (give it more jobs), or perf may not record the runner")
    us_per_job = args.cpu_seconds / args.jobs * 1e6
    print(args.title)
    print(f"{args.jobs / args.wall_seconds:.0f} jobs/s, runner CPU {us_per_job:.1f} µs/job, {total} samples")
    print()
    print(f"{'area':42} {'share':>7} {'µs/job':>8}")
    for area, count in areas.most_common():
        print(f"{area:42} {count / total:7.1%} {count / total * us_per_job:8.2f}")
    print()
    print("top functions (self):")
    for function, count in functions.most_common(15):
        print(f"  {count / total:6.1%}  {function[:110]}")
    with open(args.functions, "w") as out:
        for function, count in functions.most_common():
            out.write(f"{count / total:7.2%} {count / total * us_per_job:8.3f} µs  {function}\n")


main()
