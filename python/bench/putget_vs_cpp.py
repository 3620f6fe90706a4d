#!/usr/bin/python3
"""Python vs C++ client: put/get of 2 MiB blocks through the same ems-node in the same run.

The C++ side is `ems-putget-cpp` (python/bench/putget_cpp.cc) and the Python side this file:
the same loop (same prompt and chained keys, four pre-filled 2 MiB values, one reused output
buffer, one call at a time, each call timed, bytes verified outside the timing) through
ems::Client and through ems.Client with numpy buffers. Rounds alternate C++ and Python (and
who goes first) so drift on a shared machine hits both. Every byte read back is
verified on both sides. Reported: p50/p99 per-call latency and the speed ratio C++/Python
(per round, then the median over rounds; 1.0 = Python as fast as C++; the goal is >= 0.9).

    PYTHONPATH=build/python /usr/bin/python3 python/bench/putget_vs_cpp.py [--blocks 64]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import ems

REPO = pathlib.Path(__file__).resolve().parents[2]


def percentile(us, p):
    s = sorted(us)
    return s[min(int(p / 100.0 * len(s)), len(s) - 1)]


def workload_keys(ns, blocks, block_tokens):
    # The prompt ems-bench putget hashes: token t = (t * 7919) % 128000.
    t = np.arange(blocks * block_tokens, dtype=np.uint64)
    tokens = ((t * 7919) % 128000).astype(np.uint32)
    return ems.PrefixHasher(block_tokens).keys(ns, tokens)


def run_python(address, local_socket, ns, blocks, block_bytes, block_tokens):
    keys = workload_keys(ns, blocks, block_tokens)
    rng = np.random.default_rng(abs(hash(ns)) & 0xFFFFFFFF)
    values = [rng.integers(0, 256, block_bytes, dtype=np.uint8) for _ in range(4)]
    out = np.empty(block_bytes, np.uint8)
    put_us, get_us, wrong = [], [], 0
    with ems.Client(address, local_socket=local_socket) as c:
        for i, k in enumerate(keys):
            v = values[i % len(values)]
            t0 = time.perf_counter_ns()
            c.put(k, v, keys[i - 1] if i else None)
            put_us.append((time.perf_counter_ns() - t0) / 1e3)
        for i, k in enumerate(keys):
            t0 = time.perf_counter_ns()
            n = c.get(k, out)
            get_us.append((time.perf_counter_ns() - t0) / 1e3)
            if n != block_bytes or not np.array_equal(out, values[i % len(values)]):
                wrong += 1
        c.remove(keys)  # keep the arena free for the next round (no eviction in the timings)
    return {
        "put_p50_us": percentile(put_us, 50), "put_p99_us": percentile(put_us, 99),
        "get_p50_us": percentile(get_us, 50), "get_p99_us": percentile(get_us, 99),
        "wrong": wrong, "missing": 0,
    }


def run_cpp(binary, address, local_socket, ns, blocks, block_bytes, block_tokens):
    args = [binary, f"--node={address}", f"--ns={ns}", f"--blocks={blocks}",
            f"--block_bytes={block_bytes}", f"--block_tokens={block_tokens}"]
    if local_socket:
        args.append(f"--local_socket={local_socket}")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin_dir", default=os.environ.get("EMS_BIN_DIR", REPO / "build" / "bin"))
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--block_bytes", type=int, default=2 << 20)
    ap.add_argument("--block_tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", default="grpc,local", help="grpc, local (shared memory) or both")
    args = ap.parse_args()
    bin_dir = pathlib.Path(args.bin_dir)

    tmp = tempfile.TemporaryDirectory(prefix="ems-bench-")
    sock = os.path.join(tmp.name, "node.sock")
    pages = max(64, args.blocks * args.block_bytes * 3 // 2 // (2 << 20) + 1)
    node = subprocess.Popen(
        [str(bin_dir / "ems-node"), "--listen=127.0.0.1:0", "--metrics_port=-1",
         "--log_level=warn", f"--huge_page_num={pages}", f"--local_socket={sock}"],
        stdout=subprocess.PIPE, text=True)
    address = ""
    for line in node.stdout:
        if line.startswith("LISTENING "):
            address = line.split()[1]
            break
    if not address:
        sys.exit("ems-node did not start")
    try:
        print(f"ems-node {address}, {pages * 2} MiB arena; {args.blocks} blocks of "
              f"{args.block_bytes} bytes per run, {args.rounds} rounds, C++ and Python alternating")
        ok = True
        for path in args.paths.split(","):
            local = sock if path == "local" else ""
            runs = {"cpp": [], "python": []}
            for r in range(args.rounds):
                # Alternate who goes first, so neither side always meets the node warm.
                for side in ("cpp", "python") if r % 2 == 0 else ("python", "cpp"):
                    ns = f"bench/{side}/{path}/{r}"
                    if side == "cpp":
                        res = run_cpp(str(bin_dir / "ems-putget-cpp"), address, local, ns,
                                      args.blocks, args.block_bytes, args.block_tokens)
                    else:
                        res = run_python(address, local, ns, args.blocks, args.block_bytes,
                                         args.block_tokens)
                    ok = ok and res["wrong"] == 0 and res["missing"] == 0
                    runs[side].append(res)
            med = {side: {m: statistics.median(x[m] for x in rs) for m in rs[0]
                          if m.endswith("_us")} for side, rs in runs.items()}
            print(f"\n[{path}] median over rounds, per-call latency in us "
                  f"(MB/s = block / p50)")
            print(f"  {'':8}{'put p50':>10}{'put p99':>10}{'get p50':>10}{'get p99':>10}"
                  f"{'put MB/s':>10}{'get MB/s':>10}")
            for side in ("cpp", "python"):
                m = med[side]
                print(f"  {side:8}{m['put_p50_us']:10.0f}{m['put_p99_us']:10.0f}"
                      f"{m['get_p50_us']:10.0f}{m['get_p99_us']:10.0f}"
                      f"{args.block_bytes / m['put_p50_us']:10.0f}"
                      f"{args.block_bytes / m['get_p50_us']:10.0f}")
            # Ratio per round (the two sides ran back to back), then the median over rounds:
            # load from other processes moves both sides of a round alike.
            put_ratio = statistics.median(c["put_p50_us"] / p["put_p50_us"]
                                          for c, p in zip(runs["cpp"], runs["python"]))
            get_ratio = statistics.median(c["get_p50_us"] / p["get_p50_us"]
                                          for c, p in zip(runs["cpp"], runs["python"]))
            print(f"  python speed / C++ speed: put {put_ratio:.3f}x, get {get_ratio:.3f}x "
                  f"(goal >= 0.9x)")
            print(json.dumps({"path": path, "put_ratio": round(put_ratio, 3),
                              "get_ratio": round(get_ratio, 3), "median": med}))
        print(f"\nevery byte verified on both sides: {'yes' if ok else 'NO - MISMATCHES'}")
        return 0 if ok else 1
    finally:
        node.kill()
        node.wait()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
