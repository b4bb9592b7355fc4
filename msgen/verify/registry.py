"""The verification modules, run by `--deep` and by the tests."""

from __future__ import annotations

from msgen.findings import Finding
from msgen.verify import VerifyContext, as_verification, datastores, kubernetes, observability, traefik

VERIFIERS = (traefik, kubernetes, datastores, observability)


def verify(context: VerifyContext) -> list[Finding]:
    return [item for module in VERIFIERS for item in as_verification(module.verify(context))]
