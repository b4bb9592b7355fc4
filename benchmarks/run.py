"""Time `msgen validate` and `msgen render` on generated blueprints (`make bench`).

Each measurement is a whole process (interpreter start, imports, load, plan, render,
checks, write), the median wall time of 5 runs, and the peak resident memory of the
largest run (from wait4's rusage). First come the reference starter's `validate` and
`msgen --help` (start-up), then the generated sizes. `render` writes into a new folder every run, so every file is really written; the
folders are removed only after all runs, because on ext4 creating files right after
deleting thousands costs more than msgen's work (the inode allocator reads every recently
deleted inode: +1.7 s of system time at 1000 services, seen with `perf record`). Leave a few
minutes between two benchmark runs for the same reason.
`render again` renders into the folder of the last run: nothing changes, as in CI's
`render --check` or a re-render of an unchanged blueprint. Results go to stdout and
benchmarks/out/results.json; nothing here is committed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from generate import write_blueprint  # noqa: E402

OUT = HERE / "out"
MSGEN = [sys.executable, "-m", "msgen"]
SIZES = (10, 100, 1000, 5000)
RUNS = 5
REFERENCE_STARTER = HERE.parent / "blueprints" / "reference.yaml"


def measure(command: list[str]) -> tuple[float, int, int, float]:
    """Wall seconds, peak RSS in MiB, exit code, and CPU seconds (user + system, its
    children included) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    process.stderr.close()
    if process.returncode not in (0,):
        print(f"  exit {process.returncode}: {' '.join(command[2:])}\n{error[:2000]}", file=sys.stderr)
    return elapsed, usage.ru_maxrss // 1024, process.returncode, usage.ru_utime + usage.ru_stime


# two fixed pieces of Python, timed in their own process (median of 5, the cyclic collector
# off so that the number measures the machine, not the collector): a loop of arithmetic, and
# building and dropping 300,000 small dicts (msgen's work is mostly the latter)
REFERENCE = """
import gc, json, statistics, time
gc.disable()

def arithmetic():
    total = 0
    for number in range(2_000_000):
        total += number * number

def objects():
    built = [{"name": str(n), "items": [n, n + 1], "nested": {"k": n}} for n in range(300_000)]
    del built

speed = {}
for name, work in (("loop_s", arithmetic), ("objects_s", objects)):
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    speed[name] = round(statistics.median(timings), 3)
print(json.dumps(speed))
"""


def machine_speed() -> dict[str, float]:
    """REFERENCE's seconds on this machine now. This virtual machine's speed varies by ~20%
    from hour to hour, so numbers from two runs compare only beside these."""
    return json.loads(subprocess.run([sys.executable, "-c", REFERENCE], capture_output=True, text=True, check=True).stdout)


def startup() -> dict:
    """The reference starter's `validate` and `msgen --help`: what every user waits for."""
    result = {}
    for name, command in (("reference validate", [*MSGEN, "validate", str(REFERENCE_STARTER)]), ("--help", [*MSGEN, "--help"])):
        runs = [measure(command) for _ in range(RUNS)]
        result[name] = {"median_s": round(statistics.median(run[0] for run in runs), 3), "peak_mib": max(run[1] for run in runs)}
    return result


def bench(count: int) -> dict:
    blueprint = write_blueprint(count, OUT)
    result: dict = {"services": count, "blueprint_kib": blueprint.stat().st_size // 1024}
    folders = []
    for name in ("validate", "render", "render again"):
        times, peaks, codes, cpu = [], [], [], []
        for run in range(RUNS):
            if name == "render":
                folders.append(OUT / f"render-{count}-{run}")
                shutil.rmtree(folders[-1], ignore_errors=True)
            command = [*MSGEN, "validate", str(blueprint)] if name == "validate" else [*MSGEN, "render", str(blueprint), "-o", str(folders[-1])]
            elapsed, peak, code, seconds = measure(command)
            times.append(elapsed)
            peaks.append(peak)
            codes.append(code)
            cpu.append(seconds)
        result[name] = {
            "median_s": round(statistics.median(times), 3),
            "cpu_s": round(statistics.median(cpu), 3),
            "peak_mib": max(peaks),
            "exit": max(codes),
        }
    files = [path for path in folders[-1].rglob("*") if path.is_file()]
    result["files_written"] = len(files)
    result["output_mib"] = round(sum(path.stat().st_size for path in files) / 2**20, 1)
    result["folders"] = [str(folder) for folder in folders]
    return result


def profile(count: int, top: int) -> None:
    """Where the time of one in-process render goes (cumulative, top functions)."""
    from msgen import api

    blueprint = write_blueprint(count, OUT)
    target = OUT / f"profile-{count}"
    shutil.rmtree(target, ignore_errors=True)
    profiler = cProfile.Profile()
    profiler.runcall(api.render, api.RenderRequest(blueprint, target))
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description="time msgen validate/render on N-service blueprints")
    parser.add_argument("sizes", nargs="*", type=int, default=list(SIZES))
    parser.add_argument("--profile", type=int, metavar="N", help="profile one in-process render of N services instead")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.top)
        return
    results = []
    speed = machine_speed()
    print(f"machine speed (seconds, lower is faster): arithmetic {speed['loop_s']}, objects {speed['objects_s']}")
    start = startup()
    for name, numbers in start.items():
        print(f"{name}: {numbers['median_s']:.3f} s, {numbers['peak_mib']} MiB", flush=True)
    print(f"{'N':>6} {'KiB':>6} {'validate s':>11} {'MiB':>6} {'render s':>9} {'cpu s':>6} {'MiB':>6} {'again s':>8} {'files':>6} {'out MiB':>8}")
    for count in args.sizes:
        row = bench(count)
        results.append(row)
        validate, render, again = row["validate"], row["render"], row["render again"]
        codes = {validate["exit"], render["exit"], again["exit"]}
        print(
            f"{count:>6} {row['blueprint_kib']:>6} {validate['median_s']:>11.3f} {validate['peak_mib']:>6} "
            f"{render['median_s']:>9.3f} {render['cpu_s']:>6.2f} {render['peak_mib']:>6} {again['median_s']:>8.3f} {row['files_written']:>6} {row['output_mib']:>8}"
            + ("" if codes == {0} else f"  (exit codes {sorted(codes)})"),
            flush=True,
        )
    for row in results:  # only now: see the module's docstring
        for folder in row.pop("folders"):
            shutil.rmtree(folder)
    (OUT / "results.json").write_text(json.dumps({"machine_speed": speed, "startup": start, "sizes": results}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
