"""Durations, memory sizes and CPU amounts as the blueprint writes them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION = re.compile(r"([0-9]{1,19})(ms|s|m|h|d)")
# the longest duration Go (Traefik, Prometheus, compose) can hold: 2^63 - 1 nanoseconds
MAX_DURATION_MS = (2**63 - 1) // 1_000_000
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MEMORY = re.compile(r"([0-9]{1,19})(Ki|Mi|Gi|Ti)?")
# the largest size every consumer reads: a signed 64-bit number of bytes
MAX_BYTES = 2**63 - 1
# the smallest memory limit Docker accepts for a container (and more than Redis needs to keep a limit)
MIN_BYTES = 6 * 1024**2
_MEMORY_FACTOR = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
_MILLICORES = re.compile(r"([0-9]{1,15})m")

KI, MI, GI = 1024, 1024**2, 1024**3
# more cores than any host has: a bound that keeps every CPU amount exact as millicores
MAX_CORES = 1_000_000


@dataclass(frozen=True, order=True)
class Duration:
    """A duration in milliseconds, keeping the text the blueprint wrote."""

    ms: int
    text: str

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, Duration):
            return value
        if not isinstance(value, str):
            raise ValueError("a duration is a string such as '250ms', '10s', '2m', '1h' or '15d' (bare numbers are rejected)")
        match = _DURATION.fullmatch(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. '250ms', '10s', '2m', '1h', '15d'")
        ms = int(match.group(1)) * _DURATION_MS[match.group(2)]
        if ms > MAX_DURATION_MS:
            raise ValueError(f"{value!r} is longer than the longest duration the gateway and Prometheus accept (about 292 years)")
        return cls(ms, value)

    @classmethod
    def parse_positive(cls, value: object) -> Duration:
        """A duration that something is divided by or waits for: it must be longer than 0."""
        duration = cls.parse(value)
        if duration.ms <= 0:
            raise ValueError(f"{duration.text!r} must be longer than 0")
        return duration

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    @property
    def whole_seconds(self) -> int:
        """Rounded up: an API that counts in seconds must never get less than was asked for."""
        return -(-self.ms // 1000)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, order=True)
class Memory:
    """A memory size in bytes, keeping the text the blueprint wrote."""

    bytes: int
    text: str

    @classmethod
    def parse(cls, value: object) -> Memory:
        """A container's memory: at least MIN_BYTES."""
        size = cls.parse_size(value)
        if size.bytes < MIN_BYTES:
            raise ValueError(
                f"{size.text!r} is below 6Mi: Docker refuses a smaller container limit, and Redis would read a 0 maxmemory as no limit"
            )
        return size

    @classmethod
    def parse_size(cls, value: object) -> Memory:
        """A size in bytes greater than 0 (a request body, a file)."""
        if isinstance(value, Memory):
            return value
        if not isinstance(value, str):
            raise ValueError("a memory size is a string with a binary suffix such as '512Mi' or '2Gi'")
        match = _MEMORY.fullmatch(value)
        if not match or match.group(2) is None:
            raise ValueError(f"{value!r} is not a memory size; write e.g. '512Ki', '128Mi', '2Gi', '1Ti'")
        amount = int(match.group(1)) * _MEMORY_FACTOR[match.group(2)]
        if amount <= 0:
            raise ValueError(f"{value!r} must be larger than 0")
        if amount > MAX_BYTES:
            raise ValueError(f"{value!r} is larger than a 64-bit number of bytes, the most any consumer reads")
        return cls(amount, value)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, order=True)
class Cpu:
    """A CPU amount in millicores, keeping the text the blueprint wrote."""

    millicores: int
    text: str

    @classmethod
    def parse(cls, value: object) -> Cpu:
        if isinstance(value, Cpu):
            return value
        if isinstance(value, bool):
            raise ValueError("a CPU amount is a number of cores (0.5, 2) or millicores ('250m')")
        if isinstance(value, (int, float)):
            if not 0 < value <= MAX_CORES:
                raise ValueError(f"{value} is not a CPU amount between 0 and {MAX_CORES:,} cores")
            millicores = round(value * 1000)
            if abs(value * 1000 - millicores) > 1e-6:
                raise ValueError(f"{value} cores is finer than a millicore")
            text = str(value)
        elif isinstance(value, str) and _MILLICORES.fullmatch(value):
            millicores, text = int(value[:-1]), value
            if millicores > MAX_CORES * 1000:
                raise ValueError(f"{value} is more than {MAX_CORES:,} cores")
        else:
            raise ValueError(f"{value!r} is not a CPU amount; write cores (0.5, 2) or millicores ('250m')")
        if millicores <= 0:
            raise ValueError("a CPU amount must be greater than zero")
        return cls(millicores, text)

    @property
    def cores(self) -> float:
        return self.millicores / 1000

    @property
    def written(self) -> int | float | str:
        """As the blueprint writes it: millicores as their text ('250m'), cores as a number."""
        if self.text.endswith("m"):
            return self.text
        cores = float(self.text)
        return int(cores) if cores.is_integer() else cores

    def __str__(self) -> str:
        return self.text


def format_bytes(amount: int) -> str:
    """The largest binary suffix that states `amount` exactly (Kubernetes quantity form)."""
    for suffix, factor in (("Ti", 1024**4), ("Gi", GI), ("Mi", MI), ("Ki", KI)):
        if amount % factor == 0:
            return f"{amount // factor}{suffix}"
    return str(amount)


def format_millicores(millicores: int) -> str:
    """Whole cores as a plain number, anything else in millicores (Kubernetes quantity form)."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def human_bytes(amount: float) -> str:
    """A readable size for tables and messages, e.g. '11.88 GiB'."""
    for suffix, factor in (("GiB", GI), ("MiB", MI), ("KiB", KI)):
        if abs(amount) >= factor:
            return f"{amount / factor:.2f} {suffix}".replace(".00 ", " ")
    return f"{amount:.0f} B"


def compose_cpus(millicores: int) -> str:
    """CPUs as compose reads them (a decimal number of cores; compose rejects `250m`)."""
    whole, rest = divmod(millicores, 1000)
    return str(whole) if rest == 0 else f"{whole}.{rest:03d}".rstrip("0")


def compose_memory(amount: int) -> str:
    """Bytes as compose reads them (binary k/m/g suffixes; compose rejects `Mi`)."""
    for suffix, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if amount % factor == 0:
            return f"{amount // factor}{suffix}"
    return str(amount)


# quantities as compose and Kubernetes write them, read back by the checks
_COMPOSE_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?$", re.IGNORECASE)
_COMPOSE_FACTOR = {"": 1, "b": 1, "k": KI, "m": MI, "g": GI}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_QUANTITY_FACTOR = {
    None: 1, "Ki": KI, "Mi": MI, "Gi": GI, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 0.001,
}  # fmt: skip


def compose_memory_bytes(value: object) -> int | None:
    """A compose memory amount (`256m`, `4g`, `1073741824`) in bytes; None if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _COMPOSE_MEMORY.fullmatch(str(value).strip())
    if not match:
        return None
    return round(float(match.group(1)) * _COMPOSE_FACTOR[match.group(2).lower()])


def compose_cpu_m(value: object) -> int:
    """Compose `cpus` (`0.25`, `2`) in millicores; 0 if absent or unreadable."""
    try:
        return round(float(str(value)) * 1000)
    except ValueError:
        return 0


def quantity(value: object) -> float:
    """A Kubernetes quantity (`250m`, `0.5`, `256Mi`, `1G`) as a number of base units; 0 if unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _QUANTITY.fullmatch(str(value).strip())
    if not match:
        return 0.0
    return float(match.group(1)) * _QUANTITY_FACTOR[match.group(2)]
