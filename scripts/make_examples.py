"""Regenerate examples/: each starter blueprint and its rendered output, and the hand-written
examples' output (`make examples`).

A starter's example folder is wholly generated, so it is rebuilt from scratch: files of a
target that no longer applies do not linger. A hand-written example (WRITTEN) keeps its
blueprint and config files, which are its sources, and is rendered in place: msgen prunes the
files it wrote that no longer apply. The rendered files are golden output reviewed in diffs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msgen import api  # noqa: E402
from msgen.findings import fails  # noqa: E402
from msgen.report import findings_text  # noqa: E402

# examples whose blueprint and config files are written in examples/<name>/, not a starter
WRITTEN = ("job-queue",)


def make_example(blueprint: Path, folder: Path) -> int:
    """Render one starter into `folder`; returns the number of files written."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    copy = folder / "blueprint.yaml"
    shutil.copyfile(blueprint, copy)
    return render_in_place(copy)


def render_in_place(blueprint: Path) -> int:
    """Render a blueprint into its own folder; returns the number of files created or updated."""
    outcome = api.render(api.RenderRequest(blueprint, blueprint.parent))
    if fails(outcome.analysis.findings) or not outcome.wrote:
        raise SystemExit(f"{blueprint}: not rendered\n{findings_text(outcome.analysis.findings)}")
    return len(outcome.changes.created) + len(outcome.changes.changed)


def main() -> None:
    for blueprint in sorted((ROOT / "blueprints").glob("*.yaml")):
        folder = ROOT / "examples" / blueprint.stem
        count = make_example(blueprint, folder)
        print(f"examples/{blueprint.stem}/: {count} files")
    for name in WRITTEN:
        count = render_in_place(ROOT / "examples" / name / "blueprint.yaml")
        print(f"examples/{name}/: {count} files written")


if __name__ == "__main__":
    main()
