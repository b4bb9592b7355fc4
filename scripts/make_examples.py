"""Regenerate examples/<starter>/: each starter blueprint and its rendered output (`make examples`).

Each example folder is wholly generated, so it is rebuilt from scratch: files of a target
that no longer applies do not linger. The rendered files are golden output reviewed in diffs.
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


def make_example(blueprint: Path, folder: Path) -> int:
    """Render one starter into `folder`; returns the number of files written."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    copy = folder / "blueprint.yaml"
    shutil.copyfile(blueprint, copy)
    outcome = api.render(api.RenderRequest(copy, folder))
    if fails(outcome.analysis.findings) or not outcome.wrote:
        raise SystemExit(f"{blueprint.name}: not rendered\n{findings_text(outcome.analysis.findings)}")
    return len(outcome.changes.created)


def main() -> None:
    for blueprint in sorted((ROOT / "blueprints").glob("*.yaml")):
        folder = ROOT / "examples" / blueprint.stem
        count = make_example(blueprint, folder)
        print(f"examples/{blueprint.stem}/: {count} files")


if __name__ == "__main__":
    main()
