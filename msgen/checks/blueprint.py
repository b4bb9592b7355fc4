"""Findings over the blueprint itself: database per service, image
tags, credentials in env, containers running as root."""

from __future__ import annotations

import re
from collections.abc import Iterator

from msgen.findings import Finding, finding
from msgen.plan.services import owners_of

_CREDENTIAL_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE)
_CREDENTIAL_VALUE = re.compile(r"^(?:[a-z]+://[^/\s:@]+:[^@\s]+@|-----BEGIN|AKIA[0-9A-Z]{16}$|gh[pousr]_[A-Za-z0-9]{20,}$|sk_(live|test)_)")


def image_tag_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it has an explicit tag or digest."""
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return "has no tag (it means :latest)"
    if name.rsplit(":", 1)[1] == "latest":
        return "uses the moving tag :latest"
    return None


def check(context) -> Iterator[Finding]:
    blueprint = context.blueprint
    for store, owners in owners_of(blueprint).items():
        if len(owners) > 1:
            for owner in owners[1:]:
                yield finding(
                    "datastore-shared",
                    "error",
                    ("services", owner, "datastore"),
                    f"datastore {store!r} is used by {', '.join(owners)}: each service owns its own datastore",
                    "give each service its own datastore and let them call each other instead",
                )
    for name, service in sorted(blueprint.services.items()):
        problem = image_tag_problem(service.image)
        if problem:
            yield finding(
                "image-latest",
                "error",
                ("services", name, "image"),
                f"image {service.image!r} {problem}",
                "pin an explicit version tag or a digest",
            )
        for key, value in sorted(service.env.items()):
            if isinstance(value, str) and value and (_CREDENTIAL_NAME.search(key) or _CREDENTIAL_VALUE.search(value)):
                yield finding(
                    "env-credential",
                    "error",
                    ("services", name, "env", key),
                    f"env {key} looks like a credential: its value would be committed in the generated files",
                    f"list {key} under secrets: instead; msgen mounts it as /run/secrets/{key}",
                )
        if service.run_as_root:
            yield finding(
                "run-as-root",
                "warning",
                ("services", name, "run_as_root"),
                f"{name} runs as root with its capabilities kept",
                "use an image that runs as a non-root user",
            )


def inspector(context) -> None:
    """Nothing here reads built objects."""
    return None
