"""`msgen host check`: does the machine this runs on match the blueprint's entry for it?

The blueprint declares each host's `vcpu`, `memory`, `storage` class and `iops`; the capacity
checks and the datastore tuning trust them. This module measures the real machine, in this
order, and compares:

1. CPU steal and I/O wait: the aggregate `cpu` line of /proc/stat is read, `seconds` pass,
   and it is read again; steal% and iowait% are each field's share of the summed deltas of
   user, nice, system, idle, iowait, irq, softirq and steal (guest time is already counted in
   user and nice). The counters tick in USER_HZ (100 a second on every architecture Linux
   runs KVM guests on), per CPU: 5 s on 8 vCPUs is 4000 jiffies, 0.025% each. Sampled first,
   while msgen does no I/O of its own.
2. vCPUs: /sys/devices/system/cpu/online (else the `processor` lines of /proc/cpuinfo);
   memory: MemTotal of /proc/meminfo.
3. The disk behind `path`: the filesystem's device (st_dev of a file created there) ->
   /sys/dev/block/MAJ:MIN -> queue/rotational, taken from the whole disk for a partition.
   overlay, tmpfs, btrfs, NFS and a container's root have no such device: that is said as
   an info finding.
4. fsync latency: one temporary file, created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW) inside
   `path` opened as a directory that is not a symbolic link; a 4 KiB block rewritten and
   fsync'ed FSYNC_WRITES times (at most FSYNC_SECONDS); median and max in ms.
5. Random-write IOPS, information only: 4 KiB writes at random aligned offsets of the same
   file (IOPS_FILE_BYTES, written in full first), each followed by fdatasync, for
   IOPS_SECONDS: queue depth 1, so a latency figure in disguise that cannot confirm a
   datasheet's IOPS (measured at queue depth 32 or more). The file is removed afterwards,
   also when interrupted.

Everything read from the kernel is read under `root` ("/" on the machine): the tests point
it at a directory laid out like / (proc/stat, proc/meminfo, sys/devices/system/cpu/online,
sys/dev/block/...), the CLI's hidden `--root`. The two /proc/stat readings of a static tree
would be equal, so the wait between them is a seam: `sample_cpu` and `measure` take `wait`
(a function of seconds), by default this module's `sleep` looked up when called. A test
passes (or, through the CLI, monkeypatches `sleep` with) a function that rewrites the tree's
proc/stat, so the second reading differs with no real waiting. The disk is always measured
for real, in `path`.

`judge` turns the measurements and the host's entry into findings (pure: the tests give it
measurements they build), and `check_host` is the command's one call: load, find the host,
measure, judge, apply the blueprint's suppressions, locate.
"""

from __future__ import annotations

import errno
import os
import random
import re
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import sleep

from msgen.errors import BlueprintError, MsgenError
from msgen.findings import Finding, apply_suppressions, finding, locate
from msgen.model.blueprint import Host
from msgen.model.load import LoadedBlueprint, load_blueprint
from msgen.plan.observability import CPU_STEAL_THRESHOLD, IOWAIT_THRESHOLD

Wait = Callable[[float], None]

# MemTotal is the RAM minus what the kernel keeps for itself (its image, firmware areas, a
# crashkernel reservation: Ubuntu's kdump reserves 320M on 2-4G, 512M on 4-32G). A host
# with less than declared - max(5%, 512Mi) is the error host-memory; a smaller instance size
# is a step of 25% or more, far beyond the tolerance.
MEMORY_TOLERANCE_RATIO = 0.05
MEMORY_TOLERANCE_FLOOR = 512 * 1024**2
# the median fsync latency (ms) beyond which the disk does not perform as its declared class
# (warning host-storage): about 4x what the class does at worst, so a finding is another class
# of device, or a saturated or throttled one, and not a slow sample. nvme: a local NVMe flush
# takes well under 1 ms with power-loss protection, ~1 ms without; above 2 ms is network block
# storage or SATA. ssd: etcd's disk guidance keeps the p99 of WAL fsync under 10 ms on SSDs; a
# median above it is a seeking disk. hdd: an ext4 fsync on a 7200 rpm disk is a data write and a
# journal commit, two seeks and rotations, 10-25 ms; above 50 ms the disk is saturated or shared.
FSYNC_MEDIAN_BOUND_MS = {"nvme": 2.0, "ssd": 10.0, "hdd": 50.0}
BLOCK = 4096
FSYNC_WRITES = 50
FSYNC_SECONDS = 3.0
IOPS_FILE_BYTES = 16 * 1024**2
IOPS_SECONDS = 1.0
IOPS_MAX_WRITES = 100_000
TEMP_PREFIX = ".msgen-host-check-"
# /proc/stat's cpu line: the fields summed as the CPU time (guest and guest_nice follow, and are
# already part of user and nice)
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


# --- CPU: /proc/stat ------------------------------------------------------------------------


def parse_cpu_times(text: str) -> dict[str, int]:
    """The aggregate `cpu` line of /proc/stat as {field: jiffies}."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            if len(parts) < 1 + len(CPU_FIELDS) or not all(part.isdigit() for part in parts[1 : 1 + len(CPU_FIELDS)]):
                raise MsgenError(f"/proc/stat: the cpu line has no steal field (Linux 2.6.11 or later): {line.strip()!r}")
            return dict(zip(CPU_FIELDS, map(int, parts[1:]), strict=False))
    raise MsgenError("/proc/stat has no aggregate cpu line")


def read_cpu_times(root: Path) -> dict[str, int]:
    return parse_cpu_times(_read(root, "proc/stat"))


@dataclass(frozen=True)
class CpuSample:
    steal: float  # percent of the CPU time between the readings
    iowait: float
    jiffies: int  # the summed CPU time between the readings (0: nothing to judge)
    seconds: float  # the time that passed between the readings


def cpu_shares(before: dict[str, int], after: dict[str, int], seconds: float) -> CpuSample:
    """Steal and iowait as percentages of the CPU time between two readings. A field that went
    back (iowait can: proc.rst) counts as 0."""
    delta = {field: max(0, after[field] - before[field]) for field in CPU_FIELDS}
    total = sum(delta.values())
    if total == 0:
        return CpuSample(0.0, 0.0, 0, seconds)
    return CpuSample(100 * delta["steal"] / total, 100 * delta["iowait"] / total, total, seconds)


def sample_cpu(root: Path, seconds: float, wait: Wait | None = None) -> CpuSample:
    """Read /proc/stat, wait `seconds` (`wait`, else this module's `sleep`), read it again."""
    before = read_cpu_times(root)
    start = time.monotonic()
    (wait or sleep)(seconds)
    elapsed = time.monotonic() - start
    return cpu_shares(before, read_cpu_times(root), elapsed)


# --- CPUs and memory ------------------------------------------------------------------------


def parse_cpu_list(text: str) -> int:
    """How many CPUs a kernel CPU list names: '0-3,6,8-9' -> 7."""
    count = 0
    for chunk in filter(None, text.strip().split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", chunk.strip())
        if match is None:
            raise MsgenError(f"sys/devices/system/cpu/online: cannot read the CPU list {text.strip()!r}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        count += max(0, last - first + 1)
    return count


def read_vcpus(root: Path) -> int:
    """The online CPUs; without sysfs, the processors /proc/cpuinfo lists."""
    online = root / "sys/devices/system/cpu/online"
    if online.is_file():
        return parse_cpu_list(_read(root, "sys/devices/system/cpu/online"))
    count = sum(1 for line in _read(root, "proc/cpuinfo").splitlines() if re.match(r"processor\s*:", line))
    if count == 0:
        raise MsgenError("cannot count the CPUs: no sys/devices/system/cpu/online, and /proc/cpuinfo lists no processor")
    return count


def read_memory(root: Path) -> int:
    """MemTotal of /proc/meminfo, in bytes."""
    match = re.search(r"^MemTotal:\s+(\d+) kB$", _read(root, "proc/meminfo"), re.MULTILINE)
    if match is None:
        raise MsgenError("/proc/meminfo has no MemTotal line")
    return int(match.group(1)) * 1024


# --- the disk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disk:
    device: str  # MAJ:MIN of the filesystem
    name: str | None  # the disk's name (vda, nvme0n1, dm-0) when sysfs has it
    rotational: bool | None  # None: cannot be determined
    unknown: str = ""  # why it cannot be determined


def block_device(root: Path, st_dev: int) -> Disk:
    """Whether the block device of a filesystem (its st_dev) is rotational, from
    sys/dev/block/MAJ:MIN, going up to the whole disk when it is a partition."""
    device = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    link = root / "sys/dev/block" / device
    if not link.exists():
        return Disk(device, None, None, f"device {device} is no block device (overlay, tmpfs, btrfs, NFS or a container's filesystem)")
    disk = link.resolve()
    if (disk / "partition").is_file():
        disk = disk.parent
    flag = disk / "queue" / "rotational"
    try:
        value = flag.read_text(encoding="ascii").strip()
    except OSError:
        return Disk(device, disk.name, None, f"{disk.name} ({device}) has no queue/rotational")
    if value not in ("0", "1"):
        return Disk(device, disk.name, None, f"{disk.name} ({device}): queue/rotational reads {value!r}")
    return Disk(device, disk.name, value == "1")


@dataclass(frozen=True)
class Fsync:
    writes: int
    median_ms: float
    max_ms: float


@dataclass(frozen=True)
class Iops:
    writes: int
    seconds: float

    @property
    def iops(self) -> float:
        return self.writes / self.seconds if self.seconds > 0 else 0.0


def measure_fsync(fd: int) -> Fsync:
    """Rewrite the file's first 4 KiB and fsync, FSYNC_WRITES times or for FSYNC_SECONDS."""
    block = os.urandom(BLOCK)
    latencies: list[float] = []
    deadline = time.perf_counter() + FSYNC_SECONDS
    while len(latencies) < FSYNC_WRITES and (not latencies or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        os.pwrite(fd, block, 0)
        os.fsync(fd)
        latencies.append((time.perf_counter_ns() - start) / 1e6)
    return Fsync(len(latencies), statistics.median(latencies), max(latencies))


def measure_iops(fd: int) -> Iops:
    """4 KiB writes at random aligned offsets of the (filled) file, each made durable with
    fdatasync before the next: queue depth 1, for IOPS_SECONDS."""
    block = os.urandom(BLOCK)
    blocks = IOPS_FILE_BYTES // BLOCK
    pick = random.Random()
    writes = 0
    start = time.perf_counter()
    deadline = start + IOPS_SECONDS
    while writes < IOPS_MAX_WRITES and (writes == 0 or time.perf_counter() < deadline):
        os.pwrite(fd, block, pick.randrange(blocks) * BLOCK)
        os.fdatasync(fd)
        writes += 1
    return Iops(writes, time.perf_counter() - start)


@dataclass(frozen=True)
class DiskMeasurements:
    disk: Disk
    fsync: Fsync
    iops: Iops


def open_directory(path: Path) -> int:
    """`path` opened as a directory, refusing a symbolic link: the temporary file goes exactly there."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and path.is_symlink()):
            raise MsgenError(f"--path {path} is a symbolic link: give the directory it points to") from None
        raise MsgenError(f"--path {path}: {error.strerror}") from None


def measure_disk(root: Path, directory: int, path: Path) -> DiskMeasurements:
    """The disk behind the open `directory` (`path`), its fsync latency and random-write IOPS,
    through one temporary file created exclusively there and removed afterwards."""
    name = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=directory)
    except OSError as error:
        raise MsgenError(f"cannot create a temporary file in {path}: {error.strerror}") from None
    try:
        disk = block_device(root, os.fstat(fd).st_dev)
        chunk = os.urandom(1024**2)
        for offset in range(0, IOPS_FILE_BYTES, len(chunk)):
            os.pwrite(fd, chunk, offset)
        os.fsync(fd)
        return DiskMeasurements(disk, measure_fsync(fd), measure_iops(fd))
    except OSError as error:
        raise MsgenError(f"cannot measure the disk in {path}: {error.strerror}") from None
    finally:
        os.close(fd)
        os.unlink(name, dir_fd=directory)


# --- all of it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurements:
    cpu: CpuSample
    vcpus: int  # online
    usable_vcpus: int | None  # the ones this process may run on (a cpuset), on the machine itself
    memory: int  # MemTotal, bytes
    path: str
    disk: Disk
    fsync: Fsync
    iops: Iops


def measure(root: Path, path: Path, seconds: float, wait: Wait | None = None, announce: Callable[[str], None] | None = None) -> Measurements:
    """Every measurement, the CPU sample first (while msgen does no I/O of its own). What cannot
    work (not Linux, a bad `path`) fails before the wait; `announce` hears what is measured."""
    if not (root / "proc/stat").is_file():
        where = "/proc/stat" if root == Path("/") else str(root / "proc/stat")
        raise MsgenError(f"{where} not found: `msgen host check` reads Linux's kernel counters, run it on the Linux host itself")
    directory = open_directory(path)
    try:
        if announce is not None:
            announce(f"measuring this machine: the CPU counters for {seconds:g} s, then the disk in {path}")
        cpu = sample_cpu(root, seconds, wait)
        vcpus = read_vcpus(root)
        usable = len(os.sched_getaffinity(0)) if root == Path("/") and hasattr(os, "sched_getaffinity") else None
        memory = read_memory(root)
        disk = measure_disk(root, directory, path)
    finally:
        os.close(directory)
    return Measurements(cpu, vcpus, usable, memory, str(path), disk.disk, disk.fsync, disk.iops)


def _read(root: Path, relative: str) -> str:
    try:
        return (root / relative).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise MsgenError(f"cannot read /{relative}: {error.strerror}") from None


# --- judging --------------------------------------------------------------------------------


def memory_tolerance(declared: int) -> int:
    return max(int(declared * MEMORY_TOLERANCE_RATIO), MEMORY_TOLERANCE_FLOOR)


def _gib(size: int) -> str:
    return f"{size / 1024**3:.2f} GiB"


def judge(host: Host, index: int, measured: Measurements) -> list[Finding]:
    """The findings of one host's measurements against its entry `hosts[index]` (unlocated)."""
    at = ("hosts", index)
    found: list[Finding] = []
    cpu = measured.cpu
    if cpu.jiffies and cpu.steal > CPU_STEAL_THRESHOLD:
        found.append(
            finding(
                "host-steal",
                "error",
                at,
                f"host {host.name}: CPU steal {cpu.steal:.1f}% over {cpu.seconds:.1f} s, above {CPU_STEAL_THRESHOLD:g}%: the "
                "hypervisor runs other guests on this host's vCPUs, and whatever runs here stalls meanwhile",
                "ask the provider for dedicated vCPUs or another instance; confirm with a longer --seconds",
            )
        )
    if cpu.jiffies and cpu.iowait > IOWAIT_THRESHOLD:
        found.append(
            finding(
                "host-iowait",
                "warning",
                at,
                f"host {host.name}: I/O wait {cpu.iowait:.1f}% over {cpu.seconds:.1f} s, above {IOWAIT_THRESHOLD:g}%: work "
                "waits on the storage",
                "see which processes wait (e.g. `pidstat -d`, `iostat -x`); a throttled or shared volume shows it too",
            )
        )
    if measured.vcpus < host.vcpu:
        found.append(
            finding(
                "host-vcpu",
                "error",
                (*at, "vcpu"),
                f"host {host.name}: {measured.vcpus} vCPU(s) online, the blueprint declares {host.vcpu}",
                "resize the instance, or declare what it has (the capacity checks count the declared vCPUs)",
            )
        )
    declared = host.memory.bytes
    if declared - measured.memory > memory_tolerance(declared):
        found.append(
            finding(
                "host-memory",
                "error",
                (*at, "memory"),
                f"host {host.name}: MemTotal {_gib(measured.memory)}, the blueprint declares {host.memory.text} "
                f"({_gib(declared)}); the kernel's own reservation explains up to {_gib(memory_tolerance(declared))}",
                "resize the instance, or declare what it has (the capacity checks count the declared memory)",
            )
        )
    found.extend(_storage(host, index, measured))
    found.append(finding("host-measured", "info", at, _measured_text(host, measured)))
    return found


def _storage(host: Host, index: int, measured: Measurements) -> list[Finding]:
    at = ("hosts", index, "storage")
    disk, found = measured.disk, []
    if disk.rotational is None:
        found.append(
            finding(
                "host-storage",
                "info",
                at,
                f"host {host.name}: cannot tell whether the disk behind {measured.path} is rotational: {disk.unknown}",
                "run it with --path on the filesystem the datastores keep their data on",
            )
        )
    elif disk.rotational and host.storage in ("nvme", "ssd"):
        found.append(
            finding(
                "host-storage",
                "warning",
                at,
                f"host {host.name}: the disk behind {measured.path} ({disk.name}) reports itself rotational, the blueprint "
                f"declares {host.storage}",
                "on bare metal it is a spinning disk; a virtual disk (virtio) often reports rotational whatever backs it: "
                "the fsync latency tells more",
            )
        )
    bound = FSYNC_MEDIAN_BOUND_MS[host.storage]
    if measured.fsync.median_ms > bound:
        found.append(
            finding(
                "host-storage",
                "warning",
                at,
                f"host {host.name}: fsync in {measured.path} takes {measured.fsync.median_ms:.2f} ms (median of "
                f"{measured.fsync.writes}), above the {bound:g} ms a {host.storage} disk stays under",
                "declare the class the disk performs as (the datastore tuning follows it), or move the data to faster storage",
            )
        )
    return found


def _measured_text(host: Host, measured: Measurements) -> str:
    cpu, fsync, iops, disk = measured.cpu, measured.fsync, measured.iops, measured.disk
    if cpu.jiffies:
        sampled = f"steal {cpu.steal:.2f}%, iowait {cpu.iowait:.2f}% of {cpu.jiffies} jiffies over {cpu.seconds:.1f} s"
    else:
        sampled = f"no CPU time passed in {cpu.seconds:.1f} s: steal and iowait not judged"
    vcpus = f"{measured.vcpus} vCPU(s) online (declared {host.vcpu})"
    if measured.usable_vcpus is not None and measured.usable_vcpus < measured.vcpus:
        vcpus += f", {measured.usable_vcpus} usable by this process"
    if disk.rotational is None:
        device = f"disk {disk.device} of unknown kind"
    else:
        device = f"disk {disk.name} ({disk.device}) {'rotational' if disk.rotational else 'non-rotational'}"
    declared_iops = f", declared iops {host.iops}" if host.iops else ""
    return (
        f"host {host.name}: {sampled}; {vcpus}; MemTotal {_gib(measured.memory)} (declared {host.memory.text}); "
        f"{measured.path}: {device} (declared {host.storage}), fsync median {fsync.median_ms:.2f} ms, max {fsync.max_ms:.2f} ms "
        f"over {fsync.writes} writes; random 4 KiB writes {iops.iops:.0f} IOPS at queue depth 1 ({iops.writes} in "
        f"{iops.seconds:.1f} s, fdatasync each{declared_iops}): a queue-depth-1 loop cannot confirm a datasheet's IOPS"
    )


# --- the command's one call -----------------------------------------------------------------


@dataclass(frozen=True)
class HostCheck:
    host: Host
    measurements: Measurements
    findings: tuple[Finding, ...]


def find_host(loaded: LoadedBlueprint, name: str) -> tuple[int, Host]:
    """The host called `name` and its index in `hosts`; else a load error naming the known ones."""
    hosts = loaded.blueprint.hosts
    for index, host in enumerate(hosts):
        if host.name == name:
            return index, host
    known = ", ".join(host.name for host in hosts)
    hint = f"known hosts: {known}" if hosts else "the blueprint declares no hosts"
    raise BlueprintError([loaded.source.issue(("hosts",), f"unknown host {name!r}", hint)])


def check_host(
    blueprint: Path,
    name: str,
    env: str | None = None,
    seconds: float = 5.0,
    path: Path = Path("."),
    root: Path = Path("/"),
    wait: Wait | None = None,
    announce: Callable[[str], None] | None = None,
) -> HostCheck:
    """Load the blueprint, find the host, measure this machine, and judge. `announce` hears
    what is about to be measured (the CPU sample takes `seconds`)."""
    loaded = load_blueprint(blueprint, env)
    index, host = find_host(loaded, name)
    measured = measure(root, path, seconds, wait, announce)
    found = judge(host, index, measured)
    # the blueprint's suppress entries for host findings apply; the others are validate's
    found = [item for item in apply_suppressions(found, loaded.blueprint) if item.id != "suppress-unused"]
    return HostCheck(host, measured, tuple(locate(found, loaded.source)))
