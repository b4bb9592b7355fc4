"""Findings over the blueprint itself: database per service, image
tags, credentials in env, containers running as root."""

from __future__ import annotations

from collections.abc import Iterator

from msgen.credentials import command_credential, credential_name, credential_shape
from msgen.findings import Finding, finding
from msgen.plan.services import owners_of


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
        yield from _credentials(name, service)
        if service.run_as_root:
            yield finding(
                "run-as-root",
                "warning",
                ("services", name, "run_as_root"),
                f"{name} runs as root with its capabilities kept",
                "use an image that runs as a non-root user",
            )
    yield from _image_overrides(context)


def _image_overrides(context) -> Iterator[Finding]:
    """An override of msgen's own image that moves with :latest is flagged like a service's image."""
    for key, override in sorted(context.blueprint.images.overrides.items()):
        resolved = context.plan.images[key]
        # an engine's reference without a tag of its own takes the datastore's pinned version
        problem = None if resolved.by_version else image_tag_problem(resolved.ref())
        if problem:
            field = "image" if override.image is not None else "tag"
            yield finding(
                "image-latest",
                "error",
                ("images", "overrides", key, field),
                f"image {resolved.ref()!r} {problem}",
                "pin an explicit version tag or a digest",
            )


def _credentials(name: str, service) -> Iterator[Finding]:
    for key, value in sorted(service.env.items()):
        # a boolean holds one bit, and an empty string nothing; an integer can be a PIN or a password
        if isinstance(value, bool) or value == "":
            continue
        shape = credential_shape(value) if isinstance(value, str) else None
        if shape is not None or credential_name(key):
            why = f"its value is {shape}" if shape is not None else "its name says it is one"
            yield finding(
                "env-credential",
                "error",
                ("services", name, "env", key),
                f"env {key} looks like a credential ({why}): its value would be committed in the generated files",
                f"list {key} under secrets: instead; msgen mounts it as /run/secrets/{key}",
            )
    command = service.health.command
    found = command_credential(command) if command else None
    if found is not None:
        index, shape = found
        yield finding(
            "env-credential",
            "error",
            ("services", name, "health", "command", index),
            f"health.command holds {shape}: it would be committed in the generated files",
            "list the credential under secrets: and read it in the command, e.g. $(cat /run/secrets/NAME) with CMD-SHELL",
        )


def inspector(context) -> None:
    """Nothing here reads built objects."""
    return None
