"""How many live instances fit in one process, per strategy and guard size.

    python scripts/scale.py [--configs cow:2g cow:32m copy:32m pooling:32m ...] [--max 40000]

Each configuration runs in a fresh child: instantiate a 1-page module with a small data
image until something runs out, then report the count, the wall that was hit (the
AllocationError's ``limit``: address space or vm.max_map_count, or a pool limit), the
mappings per memory and the time per instantiation. Default kernel limits: a 47-bit
(128 TiB) user address space and vm.max_map_count (65,530 here).
"""
import argparse
import bisect
import json
import subprocess
import sys
import time

from _strategies import ROOT  # this folder is sys.path[0] when run as a script

SIZES = {"2g": 2 << 30, "32m": 32 << 20, "64k": 64 << 10}
DEFAULT = ["cow:2g", "cow:32m", "copy:32m", "pooling:32m"]
WAT = '(module (memory (export "m") 1) (data (i32.const 0) "scale"))'


def _maps():
    """(start, end) of every mapping of this process."""
    with open("/proc/self/maps") as f:
        return [tuple(int(x, 16) for x in line.split(None, 1)[0].split("-")) for line in f]


def _overlaps(ranges, lo, hi) -> bool:
    """Whether [lo, hi) overlaps one of the sorted (start, end) ``ranges``."""
    i = bisect.bisect_right(ranges, (hi,)) - 1
    while i >= 0 and ranges[i][1] > lo:
        if ranges[i][0] < hi:
            return True
        i -= 1
    return False


def child(strategy, guard, limit):
    import runtime
    import wasmenv
    import wasmtime
    tunables = wasmenv.Tunables(static_memory_offset_guard_size=guard,
                                guard_before_linear_memory=strategy != "pooling")
    if strategy == "pooling":
        alloc = runtime.PoolingAllocator(max_instances=limit, max_memories_per_instance=1,
                                         max_memory_pages=65536, max_tables_per_instance=0,
                                         max_table_elements=0)
        engine = runtime.Engine(tunables, allocator=alloc)
    else:
        engine = runtime.Engine(tunables, memory_init_cow=strategy == "cow")
    module = runtime.Module(engine, wasmtime.wat2wasm(WAT))
    from tqdm import tqdm
    tqdm.monitor_interval = 0  # no monitor thread: its stack would count as mappings
    bar = tqdm(total=limit, desc=f"{strategy} guard {guard >> 20} MiB", file=sys.stderr, leave=False,
               mininterval=0.5)
    maps_before = set(_maps())
    live, wall, message = [], None, ""
    t0 = time.perf_counter()
    try:
        while len(live) < limit:
            live.append(runtime.Instance(module))
            bar.update(1)
    except runtime.AllocationError as exc:
        wall, message = exc.limit, str(exc)
    bar.close()
    took = time.perf_counter() - t0
    n = len(live)
    ranges = sorted(r for inst in live for r in inst.reservation_ranges())
    new_maps = [m for m in _maps() if m not in maps_before]
    # Mappings the memories added: new VMAs that overlap a live instance's reservation (the
    # interpreter's own heap arenas, which also show up as new anonymous mappings, are not
    # a memory's cost).
    ours = sum(1 for lo, hi in new_maps if _overlaps(ranges, lo, hi))
    return {"strategy": strategy, "guard": guard, "instances": n, "wall": wall or f"--max {limit}",
            "message": message, "maps_per_memory": ours / max(n, 1),
            "us_per_instance": took / max(n, 1) * 1e6}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=DEFAULT)
    ap.add_argument("--max", type=int, default=40_000, help="stop counting here")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return 0
    rows = []
    for config in args.configs:
        strategy, size = config.split(":")
        proc = subprocess.run([sys.executable, __file__, "--child", strategy, str(SIZES[size]), str(args.max)],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            rows.append({"strategy": strategy, "guard": SIZES[size], "error": proc.stderr.strip()[-300:]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'strategy':>10} {'guard':>8} {'instances':>10} {'maps/memory':>12} {'us/inst':>9}  wall")
    for r in rows:
        if "error" in r:
            print(f"{r['strategy']:>10} {r['guard'] >> 20:>6}Mi  error: {r['error']}")
            continue
        print(f"{r['strategy']:>10} {r['guard'] >> 20:>6}Mi {r['instances']:>10,} {r['maps_per_memory']:>12.2f} "
              f"{r['us_per_instance']:>9.1f}  {r['wall']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
