"""`msgen host check`: a fake kernel tree (proc/stat, proc/meminfo, sys/...) under the hidden
`--root`, the two /proc/stat readings told apart by replacing the wait between them, and the
disk measured for real in a temporary folder; once on this machine for real."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from realtools import require
from typer.testing import CliRunner

from msgen import hostcheck
from msgen.cli import app
from msgen.errors import MsgenError
from msgen.findings import fails
from msgen.hostcheck import (
    CPU_STEAL_THRESHOLD,
    CpuSample,
    Disk,
    Fsync,
    Iops,
    Measurements,
    block_device,
    cpu_shares,
    judge,
    parse_cpu_list,
    parse_cpu_times,
    sample_cpu,
)
from msgen.model.load import load_blueprint
from msgen.plan import observability
from tests.test_sarif import validator

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
GI = 1024**3

BLUEPRINT = """\
version: 1
project: shop
regions:
  home: {jurisdiction: NO}
hosts:
  - {name: box-0, region: home, vcpu: 1, memory: 1Gi, storage: hdd}
  - name: box-1
    region: home
    vcpu: 2
    memory: 4Gi
    storage: nvme
    iops: 20000
services:
  web: {image: 'nginx:1.27', port: 80}
"""
# box-1's lines in BLUEPRINT
HOST_LINE, VCPU_LINE, MEMORY_LINE, STORAGE_LINE = 7, 9, 10, 11


def stat(user=10_000, nice=0, system=5_000, idle=80_000, iowait=1_000, irq=0, softirq=0, steal=0, guest=0) -> str:
    """/proc/stat with its aggregate line (guest time, as the kernel does, inside user too) and one CPU's."""
    fields = (user + guest, nice, system, idle, iowait, irq, softirq, steal, guest, 0)
    return f"cpu  {' '.join(map(str, fields))}\ncpu0 {' '.join(map(str, fields))}\nintr 12345 0 0\nctxt 99\n"


BEFORE = stat()


def after(steal: int = 0, iowait: int = 0, total: int = 1000) -> str:
    """A reading `total` jiffies after BEFORE, `steal` and `iowait` of them stolen and waiting."""
    return stat(user=10_000 + total - steal - iowait, steal=steal, iowait=1_000 + iowait)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def kernel(tmp_path, data_dir, monkeypatch):
    """A directory laid out like /, whose block device entry is the one `data_dir` is really on;
    the wait between the two /proc/stat readings writes `kernel.after` instead of sleeping.
    The disk measurements are cut short: the fake-tree tests are not about them."""
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "sys/devices/system/cpu").mkdir(parents=True)
    (root / "sys/dev/block").mkdir(parents=True)

    class Kernel:
        def __init__(self):
            self.path = root
            self.after = stat(user=11_000)  # 1000 jiffies later, nothing stolen or waited
            self.waited: list[float] = []

        def set(self, vcpus="0-1", memtotal_kb=4 * 1024**2 - 150 * 1024, rotational: str | None = "0", partition=False):
            (root / "proc/meminfo").write_text(f"MemTotal:       {memtotal_kb} kB\nMemFree:         1000 kB\n")
            (root / "sys/devices/system/cpu/online").write_text(f"{vcpus}\n")
            device = os.stat(data_dir).st_dev
            link = root / "sys/dev/block" / f"{os.major(device)}:{os.minor(device)}"
            if link.is_symlink():
                link.unlink()
            if rotational is not None:
                disk = root / "sys/devices/virtual/block/fakedisk"
                (disk / "queue").mkdir(parents=True, exist_ok=True)
                (disk / "queue/rotational").write_text(f"{rotational}\n")
                target = disk
                if partition:
                    target = disk / "fakedisk1"
                    target.mkdir(exist_ok=True)
                    (target / "partition").write_text("1\n")
                link.symlink_to(os.path.relpath(target, link.parent))
            return self

    state = Kernel().set()

    def wait(seconds: float) -> None:
        state.waited.append(seconds)
        (root / "proc/stat").write_text(state.after)

    monkeypatch.setattr(hostcheck, "sleep", wait)
    # these tests judge the fake kernel's answers: the real disk's fsync latency (slow on a busy
    # machine) would decide their storage finding; the measurement itself runs for real below
    monkeypatch.setattr(hostcheck, "measure_fsync", lambda fd: Fsync(3, 0.3, 0.5))
    monkeypatch.setattr(hostcheck, "IOPS_SECONDS", 0.01)
    monkeypatch.setattr(hostcheck, "IOPS_MAX_WRITES", 5)
    return state


@pytest.fixture
def blueprint(write_blueprint) -> Path:
    path = write_blueprint(BLUEPRINT)
    assert load_blueprint(path).blueprint.hosts[1].name == "box-1"
    assert "name: box-1" in path.read_text().splitlines()[HOST_LINE - 1]
    return path


def check(blueprint: Path, kernel, data_dir: Path, *more: str, host: str = "box-1"):
    (kernel.path / "proc/stat").write_text(BEFORE)  # the first reading; the wait writes the second
    arguments = ["host", "check", str(blueprint), "--host", host, "--seconds", "5", "--path", str(data_dir), "--root", str(kernel.path)]
    return runner.invoke(app, [*arguments, *more])


def findings_of(result) -> list[dict]:
    return json.loads(result.stdout)


def check_json(blueprint, kernel, data_dir, *more, host="box-1") -> tuple[int, list[dict]]:
    result = check(blueprint, kernel, data_dir, "--format", "json", *more, host=host)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, findings_of(result)


def ids(findings: list[dict]) -> list[tuple[str, str]]:
    return [(item["id"], item["severity"]) for item in findings]


# --- the CPU counters ---------------------------------------------------------------------


def test_the_cpu_line_leaves_guest_time_out_of_the_total():
    times = parse_cpu_times(stat(user=100, guest=40, steal=7))
    assert times["user"] == 140 and times["steal"] == 7 and "guest" not in times
    assert set(times) == set(hostcheck.CPU_FIELDS)


def test_steal_and_iowait_are_shares_of_the_summed_deltas():
    sample = cpu_shares(parse_cpu_times(BEFORE), parse_cpu_times(after(steal=50, iowait=120)), 5.0)
    assert (sample.steal, sample.iowait, sample.jiffies) == (5.0, 12.0, 1000)


def test_a_counter_that_goes_back_counts_as_zero_and_no_time_is_no_verdict():
    back = cpu_shares(parse_cpu_times(BEFORE), parse_cpu_times(stat(user=10_100, iowait=900)), 1.0)
    assert (back.iowait, back.jiffies) == (0.0, 100)  # user +100; iowait -100 counts as 0
    still = cpu_shares(parse_cpu_times(BEFORE), parse_cpu_times(BEFORE), 1.0)
    assert still.jiffies == 0 and still.steal == 0.0


def test_a_cpu_line_without_steal_is_refused():
    with pytest.raises(MsgenError, match="steal"):
        parse_cpu_times("cpu  1 2 3 4\n")
    with pytest.raises(MsgenError, match="no aggregate cpu line"):
        parse_cpu_times("cpu0 1 2 3 4 5 6 7 8\n")


def test_sample_cpu_reads_around_an_injected_wait(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/stat").write_text(BEFORE)
    waited = []

    def wait(seconds):
        waited.append(seconds)
        (tmp_path / "proc/stat").write_text(after(steal=20, iowait=10))

    sample = sample_cpu(tmp_path, 3, wait)
    assert waited == [3] and (sample.steal, sample.iowait) == (2.0, 1.0)


@pytest.mark.parametrize(("text", "count"), [("0", 1), ("0-1\n", 2), ("0-3,6,8-9", 7), ("0,2", 2)])
def test_cpu_lists(text, count):
    assert parse_cpu_list(text) == count


def test_the_threshold_is_the_observability_constant():
    assert hostcheck.CPU_STEAL_THRESHOLD is observability.CPU_STEAL_THRESHOLD == 2.0


# --- through the command, on a fake tree ----------------------------------------------------


def test_steal_of_5_percent_is_an_error_and_exits_1(blueprint, kernel, data_dir):
    kernel.after = after(steal=50)
    result = check(blueprint, kernel, data_dir)
    assert result.exit_code == 1, result.output
    assert "error: host-steal: hosts[1]: host box-1: CPU steal 5.0%" in result.stdout
    assert kernel.waited == [5.0]


def test_steal_of_1_percent_passes(blueprint, kernel, data_dir):
    kernel.after = after(steal=10)
    code, findings = check_json(blueprint, kernel, data_dir)
    assert code == 0 and ids(findings) == [("host-measured", "info")]
    assert "steal 1.00%, iowait 0.00% of 1000 jiffies" in findings[0]["message"]


def test_steal_exactly_at_the_threshold_passes(blueprint, kernel, data_dir):
    kernel.after = after(steal=int(CPU_STEAL_THRESHOLD * 10))
    assert check_json(blueprint, kernel, data_dir)[0] == 0


def test_high_iowait_is_a_warning(blueprint, kernel, data_dir):
    kernel.after = after(iowait=150)
    code, findings = check_json(blueprint, kernel, data_dir)
    assert code == 0 and ("host-iowait", "warning") in ids(findings)
    assert check(blueprint, kernel, data_dir, "--strict").exit_code == 1


def test_rotational_behind_nvme_is_a_storage_finding(blueprint, kernel, data_dir):
    kernel.set(rotational="1")
    _, findings = check_json(blueprint, kernel, data_dir)
    storage = next(item for item in findings if item["id"] == "host-storage")
    assert storage["severity"] == "warning" and "fakedisk" in storage["message"] and "declares nvme" in storage["message"]
    assert storage["path"] == "hosts[1].storage" and storage["line"] == STORAGE_LINE


def test_a_partition_is_judged_by_its_disk(blueprint, kernel, data_dir):
    kernel.set(rotational="1", partition=True)
    _, findings = check_json(blueprint, kernel, data_dir)
    assert ("host-storage", "warning") in ids(findings)
    kernel.set(rotational="0", partition=True)
    assert ids(check_json(blueprint, kernel, data_dir)[1]) == [("host-measured", "info")]


def test_rotational_behind_hdd_is_fine(blueprint, kernel, data_dir):
    kernel.set(rotational="1", vcpus="0", memtotal_kb=1024**2 - 100 * 1024)
    code, findings = check_json(blueprint, kernel, data_dir, host="box-0")
    assert code == 0 and ids(findings) == [("host-measured", "info")]


def test_a_filesystem_without_a_block_device_is_said_as_info(blueprint, kernel, data_dir):
    kernel.set(rotational=None)
    code, findings = check_json(blueprint, kernel, data_dir)
    assert code == 0 and ids(findings) == [("host-measured", "info"), ("host-storage", "info")]
    assert "cannot tell whether the disk" in findings[1]["message"] and "no block device" in findings[1]["message"]


def test_fewer_vcpus_and_less_memory_than_declared(blueprint, kernel, data_dir):
    kernel.set(vcpus="0", memtotal_kb=3 * 1024**2)
    result = check(blueprint, kernel, data_dir, "--format", "json")
    assert result.exit_code == 1
    found = {item["id"]: item for item in findings_of(result)}
    assert found["host-vcpu"]["severity"] == "error" and "1 vCPU(s) online, the blueprint declares 2" in found["host-vcpu"]["message"]
    assert found["host-memory"]["severity"] == "error" and "MemTotal 3.00 GiB" in found["host-memory"]["message"]
    assert (found["host-vcpu"]["line"], found["host-memory"]["line"]) == (VCPU_LINE, MEMORY_LINE)


def test_memory_within_the_kernels_reservation_passes(blueprint, kernel, data_dir):
    """4Gi declared: the tolerance is max(5%, 512Mi) = 512Mi."""
    kernel.set(memtotal_kb=4 * 1024**2 - 512 * 1024)
    assert check_json(blueprint, kernel, data_dir)[0] == 0
    kernel.set(memtotal_kb=4 * 1024**2 - 512 * 1024 - 1)
    code, findings = check_json(blueprint, kernel, data_dir)
    assert code == 1 and ("host-memory", "error") in ids(findings)


def test_more_than_declared_is_fine(blueprint, kernel, data_dir):
    kernel.set(vcpus="0-15", memtotal_kb=64 * 1024**2)
    assert check_json(blueprint, kernel, data_dir)[0] == 0


def test_findings_are_located_at_the_hosts_entry(blueprint, kernel, data_dir):
    kernel.after = after(steal=50, iowait=150)
    _, findings = check_json(blueprint, kernel, data_dir)
    where = {item["id"]: (item["file"], item["line"], item["path"]) for item in findings}
    assert where["host-steal"] == (str(blueprint), HOST_LINE, "hosts[1]")
    assert where["host-iowait"] == (str(blueprint), HOST_LINE, "hosts[1]")
    assert where["host-measured"] == (str(blueprint), HOST_LINE, "hosts[1]")
    text = check(blueprint, kernel, data_dir).stdout
    assert f"{blueprint}:{HOST_LINE}:5: error: host-steal: hosts[1]:" in text


def test_json_and_sarif_are_valid_documents(blueprint, kernel, data_dir):
    kernel.set(vcpus="0")
    kernel.after = after(steal=50)
    as_json = check(blueprint, kernel, data_dir, "--format", "json")
    sarif = check(blueprint, kernel, data_dir, "--format", "sarif")
    assert as_json.exit_code == sarif.exit_code == 1
    log = json.loads(sarif.stdout)
    assert sorted(validator().iter_errors(log), key=str) == []
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        (item["id"], item["line"]) for item in findings_of(as_json)
    ]
    assert {r["ruleId"] for r in results} == {"host-steal", "host-vcpu", "host-measured"}
    assert as_json.stderr == sarif.stderr == ""  # the progress line is for the text format only


def test_a_suppress_entry_silences_a_host_finding_and_validate_leaves_it_alone(write_blueprint, kernel, data_dir):
    path = write_blueprint(
        BLUEPRINT + "suppress:\n  - {id: host-storage, at: 'hosts[1].storage', reason: virtio reports every disk rotational}\n"
    )
    kernel.set(rotational="1")
    result = check(path, kernel, data_dir, "--strict", "--format", "json")
    assert result.exit_code == 0
    storage = next(item for item in findings_of(result) if item["id"] == "host-storage")
    assert storage["suppressed"] == "virtio reports every disk rotational"
    validated = runner.invoke(app, ["validate", str(path), "--format", "json"])
    assert "suppress-unused" not in {item["id"] for item in json.loads(validated.stdout)}


def test_env_overlays_the_hosts(write_blueprint, kernel, data_dir):
    path = write_blueprint(BLUEPRINT + "environments:\n  small:\n    hosts:\n      - {name: box-1, region: home, vcpu: 1, memory: 2Gi, storage: ssd}\n")
    assert check_json(path, kernel, data_dir, "--env", "small")[0] == 0
    kernel.set(vcpus="0")
    assert ("host-vcpu", "error") in ids(check_json(path, kernel, data_dir)[1])


# --- bad input: exit 2, a message, no traceback, nothing measured ----------------------------


def test_an_unknown_host_exits_2_naming_the_known_ones(blueprint, kernel, data_dir):
    result = check(blueprint, kernel, data_dir, host="box-9")
    assert result.exit_code == 2 and result.stdout == ""
    assert "unknown host 'box-9'" in result.stderr and "known hosts: box-0, box-1" in result.stderr
    assert "Traceback" not in result.output and kernel.waited == []


def test_a_blueprint_without_hosts(write_blueprint, kernel, data_dir):
    path = write_blueprint("version: 1\nproject: shop\nservices:\n  web: {image: 'nginx:1.27', port: 80}\n")
    result = check(path, kernel, data_dir)
    assert result.exit_code == 2 and "declares no hosts" in result.stderr


def test_an_unreadable_blueprint_exits_2(tmp_path, kernel, data_dir):
    result = check(tmp_path / "missing.yaml", kernel, data_dir)
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_without_proc_stat_it_is_not_linux(blueprint, kernel, data_dir, tmp_path):
    elsewhere = tmp_path / "not-linux"
    elsewhere.mkdir()
    result = runner.invoke(app, ["host", "check", str(blueprint), "--host", "box-1", "--path", str(data_dir), "--root", str(elsewhere)])
    assert result.exit_code == 2 and kernel.waited == []
    assert f"{elsewhere}/proc/stat not found: `msgen host check` reads Linux's kernel counters" in result.stderr


@pytest.mark.parametrize("kind", ["missing", "file", "symlink"])
def test_a_bad_path_fails_before_the_wait(blueprint, kernel, data_dir, kind):
    bad = data_dir.parent / "bad"
    if kind == "file":
        bad.write_text("x")
    elif kind == "symlink":
        bad.symlink_to(data_dir)
    result = check(blueprint, kernel, bad)
    assert result.exit_code == 2 and f"--path {bad}" in result.stderr and kernel.waited == []
    if kind == "symlink":
        assert "symbolic link" in result.stderr and list(data_dir.iterdir()) == []


def test_the_temporary_file_goes_even_when_a_measurement_fails(blueprint, kernel, data_dir, monkeypatch):
    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(hostcheck, "measure_fsync", broken)
    result = check(blueprint, kernel, data_dir)
    assert result.exit_code == 2 and "cannot measure the disk" in result.stderr and "Input/output error" in result.stderr
    assert list(data_dir.iterdir()) == []


# --- judging measurements (no I/O) ----------------------------------------------------------


def measurements(**changes) -> Measurements:
    base = Measurements(
        cpu=CpuSample(0.5, 0.5, 1000, 5.0),
        vcpus=2,
        usable_vcpus=None,
        memory=4 * GI,
        path="/var/lib/docker",
        disk=Disk("259:0", "nvme0n1", False),
        fsync=Fsync(50, 0.3, 1.2),
        iops=Iops(900, 1.0),
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("storage", "median", "flagged"),
    [("nvme", 2.0, False), ("nvme", 2.5, True), ("ssd", 9.0, False), ("ssd", 12.0, True), ("hdd", 30.0, False), ("hdd", 60.0, True)],
)
def test_fsync_latency_bounds_per_class(blueprint, storage, median, flagged):
    host = load_blueprint(blueprint).blueprint.hosts[1].model_copy(update={"storage": storage})
    found = judge(host, 1, measurements(fsync=Fsync(50, median, median * 3)))
    slow = [item for item in found if item.id == "host-storage"]
    assert bool(slow) is flagged
    if flagged:
        assert slow[0].severity == "warning" and f"{median:.2f} ms (median of 50)" in slow[0].message


def test_the_measured_numbers_name_the_queue_depth_and_no_time_is_no_verdict(blueprint):
    host = load_blueprint(blueprint).blueprint.hosts[1]
    found = judge(host, 1, measurements(cpu=CpuSample(0.0, 0.0, 0, 0.1), usable_vcpus=1))
    assert [item.id for item in found] == ["host-measured"]
    text = found[0].message
    assert "900 IOPS at queue depth 1" in text and "cannot confirm a datasheet's IOPS" in text and "declared iops 20000" in text
    assert "no CPU time passed" in text and "1 usable by this process" in text and "fsync median 0.30 ms, max 1.20 ms" in text
    assert not fails(found, strict=True)


def test_block_device_of_a_real_root_entry():
    """This machine's root filesystem: a device or not, never an exception."""
    disk = block_device(Path("/"), os.stat("/").st_dev)
    assert disk.rotational in (True, False, None)
    assert (disk.rotational is None) == bool(disk.unknown)


# --- the command line -----------------------------------------------------------------------


def test_help_lists_host_check_without_importing_it():
    code = (
        "import sys\nfrom msgen.cli import app\n"
        "try:\n    app(['--help'], prog_name='msgen')\nexcept SystemExit:\n    pass\n"
        "print('msgen.hostcheck' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and "host" in result.stdout and result.stdout.strip().endswith("False")
    help_text = runner.invoke(app, ["host", "check", "--help"]).stdout
    assert "--seconds" in help_text and "--path" in help_text and "--root" not in help_text


# --- this machine, for real ------------------------------------------------------------------


def test_on_this_machine(write_blueprint, tmp_path, monkeypatch):
    require("/proc/stat", "a Linux /proc", "msgen host check reads Linux's /proc and /sys")
    vcpus = parse_cpu_list(Path("/sys/devices/system/cpu/online").read_text()) if Path("/sys/devices/system/cpu/online").is_file() else os.cpu_count()
    memtotal_kb = int(re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE).group(1))
    path = write_blueprint(
        f"version: 1\nproject: shop\nhosts:\n  - {{name: here, region: home, vcpu: {vcpus}, memory: {memtotal_kb}Ki, storage: hdd}}\n"
        "regions:\n  home: {jurisdiction: NO}\nservices:\n  web: {image: 'nginx:1.27', port: 80}\n"
    )
    folder = tmp_path / "measure-here"
    folder.mkdir()
    seen: list[Measurements] = []
    real_measure = hostcheck.measure

    def spy(*arguments, **keywords):
        seen.append(real_measure(*arguments, **keywords))
        return seen[-1]

    monkeypatch.setattr(hostcheck, "measure", spy)
    result = runner.invoke(app, ["host", "check", str(path), "--host", "here", "--seconds", "1", "--path", str(folder), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    found = {item["id"] for item in json.loads(result.stdout)}
    assert "host-measured" in found and not found & {"host-vcpu", "host-memory"}
    (measured,) = seen
    assert 0 <= measured.cpu.steal <= 100 and 0 <= measured.cpu.iowait <= 100 and measured.cpu.jiffies > 0
    assert measured.vcpus == vcpus and measured.memory == memtotal_kb * 1024
    assert measured.fsync.writes >= 1 and 0 < measured.fsync.median_ms <= measured.fsync.max_ms
    assert measured.iops.writes >= 1 and measured.iops.iops > 0
    assert list(folder.iterdir()) == []
