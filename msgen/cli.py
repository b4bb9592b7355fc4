"""The command line: parse options, call one API function, print, exit. Nothing else."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from msgen import __version__
from msgen.errors import BlueprintError, InternalError, MsgenError


class _NoFlagPlaceholder:
    """A flag takes no value, so its help shows none (typer would show `<bool>`); nor does a list argument with a metavar."""

    def get_params(self, ctx):
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            if isinstance(param, typer.core.TyperArgument) and param.nargs == -1 and param.metavar:
                # its metavar names it already (FILE...): no `<list[Path]>` beside it
                param.display_type = lambda ctx: None
        return params


class Command(_NoFlagPlaceholder, typer.core.TyperCommand):
    pass


class Group(_NoFlagPlaceholder, typer.core.TyperGroup):
    pass


def example(*lines: str) -> str:
    """A command's help ends with how it is typed (one example a line)."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    cls=Group,
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Generate a microservice platform's infrastructure from one blueprint.",
)
# an error msgen did not expect: neither findings (1) nor bad input (2), so CI never mistakes it for either
INTERNAL_ERROR = InternalError.exit_code
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def _upgrade_note(written_by: str) -> str:
    return (
        f"note: msgen {written_by} wrote this folder and this is msgen {__version__}: some of the drift may come from "
        f"the upgrade; CHANGELOG.md says, release by release, what changed in the output and what to check"
    )


def _write_whole(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a temporary file beside it, then one rename (which
    replaces a symbolic link at `path` rather than writing through it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.msgen-tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _fail(MsgenError(f"cannot write {path}: {error.strerror}")) from None


def _print_plain(text: str, end: str = "\n") -> None:
    """Text as it is on stdout: JSON, SARIF, diffs and tables that can run to megabytes, which
    rich would lay out first."""
    out.file.write(text + end)
    out.file.flush()

BlueprintArg = Annotated[
    Path, typer.Argument(help="the blueprint YAML file; - reads it from stdin (its config files then from the current directory)", show_default=False)
]
EnvOption = Annotated[str | None, typer.Option("--env", metavar="NAME", help="overlay environments.NAME before validating")]
DeepOption = Annotated[
    bool, typer.Option("--deep", help="also verify msgen's own output (schemas, client models, references): slower; a problem is a bug in msgen")
]


class FindingsFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"
    codequality = "codequality"


FormatOption = Annotated[
    FindingsFormat,
    typer.Option("--format", help="text, json, sarif (SARIF 2.1.0) or codequality (GitLab Code Quality)"),
]
BaseDirOption = Annotated[
    Path | None,
    typer.Option(
        "--base-dir",
        metavar="DIR",
        help="sarif and codequality: paths relative to this directory (default: the git checkout holding the blueprint, else the current one)",
        show_default=False,
    ),
]


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    error = "error"


QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="text: only failing findings and the summary; on success print nothing (the exit code says it)"),
]


def min_severity_option(default: Severity) -> object:
    return typer.Option(
        "--min-severity",
        metavar="LEVEL",
        help=f"show findings of this severity and above: info, warning or error (default {default.value}); failing ones always show",
        show_default=False,
    )


# the target registry's names, spelled out so that `msgen --help` need not import every target
# (tests/test_cli_terminal.py keeps them equal)
TARGET_NAMES = ("base", "compose", "traefik", "kubernetes", "datastores", "observability")


class PlanFormat(StrEnum):
    text = "text"
    json = "json"


class Starter(StrEnum):
    minimal = "minimal"
    reference = "reference"


def _fail(error: MsgenError) -> typer.Exit:
    if isinstance(error, BlueprintError):
        for issue in error.issues:
            err.print(f"error: {issue}", markup=False)
    else:
        err.print(f"error: {error}", markup=False)
    return typer.Exit(error.exit_code)


def _version(value: bool) -> None:
    if value:
        out.print(f"msgen {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    """msgen: one typed blueprint in, the platform's infrastructure as code out."""


@app.command(cls=Command, epilog=example("msgen init platform --starter reference"))
def init(
    directory: Annotated[Path, typer.Argument(help="where to write blueprint.yaml and msgen.schema.json")] = Path("."),
    starter: Annotated[Starter, typer.Option(help="which starter blueprint")] = Starter.minimal,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing files")] = False,
) -> None:
    """Write a starter blueprint and its JSON Schema."""
    from msgen.starters import write_starter

    try:
        written = write_starter(directory, starter.value, force)
    except MsgenError as error:
        raise _fail(error) from None
    for path in written:
        out.print(f"wrote {path}", markup=False)


@app.command(cls=Command, epilog=example("msgen validate blueprint.yaml --strict", "msgen validate blueprint.yaml --format sarif > msgen.sarif"))
def validate(
    blueprint: BlueprintArg,
    env: EnvOption = None,
    format: FormatOption = FindingsFormat.text,
    strict: Annotated[bool, typer.Option("--strict", help="warnings fail too")] = False,
    deep: DeepOption = False,
    base_dir: BaseDirOption = None,
    quiet: QuietOption = False,
    min_severity: Annotated[Severity, min_severity_option(Severity.info)] = Severity.info,
) -> None:
    """Run every check; exit 0 ok, 1 findings that fail, 2 the blueprint cannot be read."""
    from msgen.api import analyse
    from msgen.findings import fails

    try:
        analysis = analyse(blueprint, env, deep)
    except MsgenError as error:
        raise _fail_as_findings(error, blueprint, format, base_dir) from None
    findings = list(analysis.findings)
    if format is FindingsFormat.text:
        _print_findings_text(findings, strict, quiet, min_severity)
    else:
        _print_findings(_shown(findings, strict, False, min_severity), format, base_dir or _default_base_dir(blueprint))
    raise typer.Exit(1 if fails(findings, strict) else 0)


def _shown(findings: list, strict: bool, quiet: bool, min_severity: Severity) -> list:
    """The findings to print: the failing ones always (the exit code names them), the rest
    when at or above `min_severity` and not `quiet`."""
    from msgen.findings import SEVERITY_ORDER, fails

    def enough(item) -> bool:
        return not quiet and SEVERITY_ORDER[item.severity] <= SEVERITY_ORDER[min_severity.value]

    return [item for item in findings if fails([item], strict) or enough(item)]


def _print_findings_text(findings: list, strict: bool, quiet: bool, min_severity: Severity) -> None:
    from msgen import report
    from msgen.findings import fails

    if quiet and not fails(findings, strict):
        return
    shown = _shown(findings, strict, quiet, min_severity)
    if shown:
        _print_plain(report.findings_text(shown))
    out.print(report.summary(findings), markup=False)


def _default_base_dir(blueprint: Path) -> Path:
    from msgen.report import default_base_dir

    return default_base_dir(str(blueprint))


def _fail_as_findings(error: MsgenError, blueprint: Path, format: FindingsFormat, base_dir: Path | None) -> typer.Exit:
    """A machine format still prints a whole document, the load errors as its results, so a CI
    job that uploads it shows why the blueprint did not load; the exit code stays the error's."""
    from msgen.report import load_error_findings

    if format is not FindingsFormat.text:
        _print_findings(load_error_findings(error, str(blueprint)), format, base_dir or _default_base_dir(blueprint))
    return _fail(error)


def _print_findings(findings, format: FindingsFormat, base_dir: Path) -> None:
    from msgen import report

    if format is FindingsFormat.json:
        _print_plain(report.findings_json(findings))
    elif format is FindingsFormat.sarif:
        _print_plain(json.dumps(report.findings_sarif(findings, base_dir), indent=2))
    elif format is FindingsFormat.codequality:
        _print_plain(json.dumps(report.findings_codequality(findings, base_dir), indent=2))
    else:
        if findings:
            _print_plain(report.findings_text(findings))
        out.print(report.summary(findings), markup=False)


@app.command(cls=Command, epilog=example("msgen render blueprint.yaml -o deploy", "msgen render blueprint.yaml -o deploy --check --diff"))
def render(
    blueprint: BlueprintArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="DIR", help="the output folder; - with --target kubernetes: every object as one YAML stream on stdout")
    ],
    env: EnvOption = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            metavar="TARGET",
            help=f"render only these targets (repeatable): {', '.join(TARGET_NAMES)}",
            autocompletion=lambda: list(TARGET_NAMES),
        ),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 if the folder differs")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="with --check: show unified diffs (implies --check)")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="warnings fail too")] = False,
    deep: DeepOption = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite or prune files a person edited since msgen wrote them")] = False,
    quiet: QuietOption = False,
    min_severity: Annotated[Severity, min_severity_option(Severity.warning)] = Severity.warning,
) -> None:
    """Validate, then write the generated files (or compare them with --check)."""
    from msgen import api

    if output == STANDARD_STREAM:
        _render_stream(blueprint, env, tuple(target or ()), check or diff, strict, deep, quiet, min_severity)
        return
    mode = api.Mode.diff if diff else api.Mode.check if check else api.Mode.write
    progress = Progress(err, PROGRESS_AFTER)
    request = api.RenderRequest(
        blueprint, output, env=env, targets=tuple(target or ()), mode=mode, strict=strict, deep=deep, force=force, progress=progress.file
    )
    try:
        outcome = api.render(request)
    except MsgenError as error:
        raise _fail(error) from None
    finally:
        progress.stop()
    _report_render_findings(list(outcome.analysis.findings), strict, quiet, min_severity)
    changes = outcome.changes
    assert changes is not None
    if outcome.not_rendered:
        err.print(f"not rendered now: {', '.join(outcome.not_rendered)} (files the compose stack mounts may be missing)", markup=False)
    if check or diff:
        for text in changes.diffs:
            _print_plain(text, end="")
        labelled = (
            ("changed", changes.changed),
            ("missing", changes.created),
            ("would be pruned", changes.pruned),
            ("edited by hand", changes.edited),
            ("left by an interrupted render", changes.leftovers),
        )
        for label, paths in labelled:
            for path in paths:
                out.print(f"drift: {label}: {path}", markup=False)
        if changes.drift:
            out.print(f"{output}: out of date; run `msgen render` and commit the result", markup=False)
            if changes.upgraded:
                out.print(_upgrade_note(changes.written_by), markup=False)
            raise typer.Exit(1)
        if not quiet:
            out.print(f"{output}: up to date ({len(changes.unchanged)} files)", markup=False)
        return
    if changes.pruned_datastores():
        err.print(
            f"WARNING: removed the files of datastore(s) {', '.join(changes.pruned_datastores())}: "
            "their data volumes may be deleted with them when this is deployed",
            markup=False,
        )
    if changes.edited:
        err.print(f"WARNING: --force overwrote or pruned files edited by hand: {', '.join(changes.edited)}", markup=False)
    if quiet:
        return
    _print_missing_secrets(outcome, blueprint, output)
    out.print(
        f"{output}: {len(changes.created)} created, {len(changes.changed)} updated, "
        f"{len(changes.unchanged)} unchanged, {len(changes.pruned)} pruned",
        markup=False,
    )


# a render that takes longer than this (seconds) shows what it is building, on a terminal
PROGRESS_AFTER = 1.0


class Progress:
    """A status line on `console` (stderr) naming the file being built, once a render has taken
    `after` seconds, and only when the console is a terminal: logs and pipes get nothing."""

    def __init__(self, console: Console, after: float) -> None:
        self.console = console
        self.deadline = time.monotonic() + after
        self.built = 0
        self.status = None

    def file(self, path: str) -> None:
        self.built += 1
        if self.status is None:
            if not self.console.is_terminal or time.monotonic() < self.deadline:
                return
            self.status = self.console.status("", spinner="line")
            self.status.start()
        self.status.update(Text(f"rendering {path} ({self.built} built)", overflow="ellipsis", no_wrap=True))

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()  # transient: the line is erased before the findings and the summary print
            self.status = None


def _report_render_findings(findings: list, strict: bool, quiet: bool, min_severity: Severity) -> None:
    """Findings on stderr (stdout stays the command's output); exit 1 when they fail the render."""
    from msgen.findings import fails
    from msgen.report import findings_text

    # render shows what needs attention (warnings and errors by default); `msgen validate` lists all
    notable = _shown(findings, strict, quiet, min_severity)
    if notable:
        err.print(findings_text(notable), markup=False)
    if len(notable) < len(findings) and not quiet:
        err.print(f"{_hidden_counts(findings, notable)} finding(s): see `msgen validate`", markup=False)
    if fails(findings, strict):
        err.print("nothing written: fix the findings above (or suppress them with a reason)", markup=False)
        raise typer.Exit(1)


# `-o -`: standard output, as `-` for the blueprint is standard input
STANDARD_STREAM = Path("-")


def _render_stream(
    blueprint: Path, env: str | None, targets: tuple[str, ...], comparing: bool, strict: bool, deep: bool, quiet: bool, min_severity: Severity
) -> None:
    """`render -o -`: the Kubernetes objects as one YAML stream on stdout, like `helm template`."""
    from msgen import api

    if targets != ("kubernetes",) or comparing:
        raise _fail(MsgenError("-o - prints the Kubernetes objects: use it with --target kubernetes alone, without --check or --diff"))
    try:
        outcome = api.render_kubernetes_stream(blueprint, env, strict, deep)
    except MsgenError as error:
        raise _fail(error) from None
    _report_render_findings(list(outcome.analysis.findings), strict, quiet, min_severity)
    assert outcome.stream is not None
    _print_plain(outcome.stream, end="")


def _hidden_counts(findings: list, shown: list) -> str:
    """How many findings of each severity were not shown, e.g. '1 warning, 3 info'."""
    hidden = [item for item in findings if item not in shown]
    counts = {severity: sum(1 for item in hidden if item.severity == severity) for severity in ("error", "warning", "info")}
    return ", ".join(f"{count} {severity}" for severity, count in counts.items() if count)


@app.command(cls=Command, epilog=example("msgen plan blueprint.yaml --env staging"))
def plan(
    blueprint: BlueprintArg,
    env: EnvOption = None,
    format: Annotated[PlanFormat, typer.Option("--format", help="text or json")] = PlanFormat.text,
    wide: Annotated[bool, typer.Option("--wide", help="every column, each value on one line, whatever the terminal's width")] = False,
) -> None:
    """Show every derived and defaulted value, and why."""
    from msgen.model.load import load_blueprint
    from msgen.patches import PatchFailure
    from msgen.plan import build_plan
    from msgen.views import plan_sections

    try:
        loaded = load_blueprint(blueprint, env)
        try:
            sections = plan_sections(build_plan(loaded.blueprint, env, loaded.files))
        except PatchFailure as failure:
            raise failure.located(loaded.source) from None
    except MsgenError as error:
        raise _fail(error) from None
    if format is PlanFormat.json:
        _print_plain(json.dumps([section.to_dict() for section in sections], indent=2))
        return
    # piped or in CI there is no terminal width to respect: a cut cell would hide the value
    fit = out.is_terminal and not wide
    console = out if fit else Console(highlight=False, emoji=False, width=1000)
    for section in sections:
        _print_section(console, section.title, section.columns, section.text_rows(), out.width if fit else None)


# at a terminal a table keeps at most as many columns as get this many characters each
# (border and padding included): narrower, a column folds every value into a tall stack
MIN_COLUMN_WIDTH = 10


def _print_section(console: Console, title: str, columns: tuple[str, ...], rows: tuple[tuple[str, ...], ...], width: int | None) -> None:
    """One section as a table; with a `width`, the table fits it: rich folds long values onto
    more lines, and columns from the right are left out when there are too many to read."""
    plain = len(rows) >= PLAIN_TABLE_FROM
    kept = len(columns) if width is None else _columns_that_fit(columns, rows, width, plain)
    shown_columns, shown_rows = columns[:kept], tuple(row[:kept] for row in rows)
    if plain:
        text = plain_table(title, shown_columns, shown_rows)
        if width is not None:  # a plain table does not fold: a line still too long is cut
            text = "".join(_cut(line, width) + "\n" for line in text.splitlines())
        _print_plain(text, end="")
    else:
        table = Table(title=title, title_justify="left")
        for column in shown_columns:
            table.add_column(column, overflow="fold")
        for row in shown_rows:
            table.add_row(*(Text(cell, overflow="fold") for cell in row))  # Text: a '[' in a value is not markup
        console.print(table, soft_wrap=False)
    if kept < len(columns):
        console.print(f"(not shown: {', '.join(columns[kept:])}; --wide shows every column)", markup=False, soft_wrap=False)


def _columns_that_fit(columns: tuple[str, ...], rows: tuple[tuple[str, ...], ...], width: int, plain: bool) -> int:
    """How many columns, from the left, a table of `width` characters shows (at least one)."""
    widths = [max(len(column), *(len(row[index]) for row in rows)) for index, column in enumerate(columns)]
    if plain:  # columns side by side, two spaces apart
        kept = 1
        while kept < len(columns) and sum(widths[: kept + 1]) + 2 * kept <= width:
            kept += 1
        return kept
    if sum(widths) + 3 * len(columns) + 1 <= width:  # a rich table with its borders and padding
        return len(columns)
    return max(1, min(len(columns), (width - 1) // MIN_COLUMN_WIDTH))


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


# rich measures and wraps every cell, which is slow for long tables: from this many rows a
# table is printed as plain aligned columns instead (a presentation choice, same values).
PLAIN_TABLE_FROM = 200


def plain_table(title: str, columns: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    """A table as text: the title, the column names, a rule, then one line a row, each column
    as wide as its widest cell (nothing is wrapped or cut)."""
    widths = [max(len(column), *(len(row[index]) for row in rows)) for index, column in enumerate(columns)]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([title, line(columns), line(["-" * width for width in widths]), *(line(row) for row in rows)]) + "\n"


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    png = "png"


@app.command(cls=Command, epilog=example("msgen graph blueprint.yaml --format svg -o graph.svg"))
def graph(
    blueprint: BlueprintArg,
    env: EnvOption = None,
    format: Annotated[GraphFormat, typer.Option("--format", help="mermaid or dot (text); svg or png (need Graphviz dot)")] = GraphFormat.mermaid,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write to this file instead of stdout")] = None,
) -> None:
    """Draw the call graph: regions, RTTs, datastores, personal data, services over budget in red."""
    from msgen.graph import graph_output
    from msgen.model.load import load_blueprint
    from msgen.plan import build_plan

    if format is GraphFormat.png and output is None and sys.stdout.isatty():
        # a PNG's bytes would garble the terminal (and can change its settings)
        raise _fail(MsgenError("--format png writes binary: use -o FILE, or pipe it (msgen graph ... --format png > graph.png)"))
    try:
        loaded = load_blueprint(blueprint, env)
        data = graph_output(build_plan(loaded.blueprint, env, loaded.files), format.value)
        if output is not None:
            output.write_bytes(data)
    except OSError as error:
        raise _fail(MsgenError(f"cannot write {output}: {error.strerror}")) from None
    except MsgenError as error:
        raise _fail(error) from None
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        err.print(f"wrote {output}", markup=False)


@app.command(cls=Command, epilog=example("msgen schema -o msgen.schema.json"))
def schema(output: Annotated[Path | None, typer.Option("-o", "--output", help="write to this file instead of stdout")] = None) -> None:
    """Print (or write) the blueprint's JSON Schema."""
    from msgen.starters import schema_text

    text = schema_text()
    if output is None:
        _print_plain(text, end="")
        return
    _write_whole(output, text)
    out.print(f"wrote {output}", markup=False)


host_app = typer.Typer(cls=Group, no_args_is_help=True, help="Check a real machine against the blueprint's entry for it.")
app.add_typer(host_app, name="host")


@host_app.command("check", cls=Command, epilog=example("msgen host check blueprint.yaml --host db-1 --seconds 10"))
def host_check(
    blueprint: BlueprintArg,
    host: Annotated[str, typer.Option("--host", metavar="NAME", help="the host's name in the blueprint's hosts", show_default=False)],
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.1, max=3600, help="how long to sample CPU steal and I/O wait")
    ] = 5.0,
    path: Annotated[
        Path, typer.Option("--path", help="where to measure the disk (fsync, IOPS): a directory on the datastores' filesystem")
    ] = Path("."),
    env: EnvOption = None,
    format: FormatOption = FindingsFormat.text,
    strict: Annotated[bool, typer.Option("--strict", help="warnings fail too")] = False,
    base_dir: BaseDirOption = None,
    root: Annotated[Path, typer.Option("--root", hidden=True, help="read the kernel's files under this directory (tests)")] = Path("/"),
) -> None:
    """Run on the host: measure CPU steal, I/O wait, vCPUs, memory and the disk against its entry; exit 0 ok, 1 findings that fail, 2 bad input or not Linux."""
    from msgen.findings import fails
    from msgen.hostcheck import check_host

    def announce(text: str) -> None:
        if format is FindingsFormat.text:
            err.print(text, markup=False)

    try:
        checked = check_host(blueprint, host, env, seconds, path, root, announce=announce)
    except MsgenError as error:
        raise _fail_as_findings(error, blueprint, format, base_dir) from None
    _print_findings(list(checked.findings), format, base_dir or _default_base_dir(blueprint))
    raise typer.Exit(1 if fails(list(checked.findings), strict) else 0)


class SecretsFormat(StrEnum):
    text = "text"
    json = "json"


@app.command(cls=Command, epilog=example("msgen secrets blueprint.yaml -o deploy", "sudo msgen secrets blueprint.yaml -o deploy --create"))
def secrets(
    blueprint: BlueprintArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="DIR", help="the output folder (compose's secret files are under DIR/secrets/)")
    ],
    env: EnvOption = None,
    format: Annotated[SecretsFormat, typer.Option("--format", metavar="FORMAT", help="text or json")] = SecretsFormat.text,
    create: Annotated[bool, typer.Option("--create", help="write each missing compose secret msgen can make up: a random value, mode 0400")] = False,
) -> None:
    """List every secret the stack reads (compose files, Kubernetes Secrets); exit 0 when every compose file exists, 1 some are missing, 2 bad input. Never prints a value."""
    from msgen import secrets as stack_secrets
    from msgen.api import plan_blueprint

    try:
        planned = plan_blueprint(blueprint, env)
        listed = stack_secrets.secrets_list(planned, output)
        created = stack_secrets.create(listed, output) if create else stack_secrets.Created()
        if created.paths:
            listed = stack_secrets.secrets_list(planned, output)
    except MsgenError as error:
        raise _fail(error) from None
    if format is SecretsFormat.json:
        _print_plain(json.dumps({**listed.to_dict(), "created": created.paths, "chown": created.chown}, indent=2))
    else:
        _print_plain(stack_secrets.secrets_text(listed, created, output, blueprint), end="")
    raise typer.Exit(1 if listed.unready else 0)


def _print_missing_secrets(outcome, blueprint: Path, output: Path) -> None:
    """After a render: the compose secret files still missing, and the command that makes them."""
    from msgen import secrets as stack_secrets

    if "compose" not in outcome.targets:
        return
    try:
        missing = stack_secrets.secrets_list(outcome.analysis.planned, output).missing
    except MsgenError as error:
        err.print(f"WARNING: {error}", markup=False)
        return
    if missing:
        err.print(stack_secrets.missing_note(missing, blueprint, output), markup=False)


@app.command(
    "import",
    cls=Command,
    epilog=example("msgen import docker-compose.yml -o blueprint.yaml", "msgen import docker-compose.yml docker-compose.override.yml --dry-run"),
)
def import_(
    compose_files: Annotated[list[Path], typer.Argument(metavar="COMPOSE_FILE", help="the compose files, merged in order as `docker compose -f` merges them", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE", help="the blueprint to write")] = Path("blueprint.yaml"),
    project: Annotated[str | None, typer.Option("--project", metavar="NAME", help="the project name (default: compose's name:, else the first file's folder)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite FILE when it exists")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the blueprint to stdout; write nothing")] = False,
) -> None:
    """Start a blueprint from existing docker-compose files; list what could not be mapped. Exit 0 written, 2 bad input or FILE exists."""
    from msgen.api import analyse
    from msgen.importer import import_compose

    if not dry_run and output.exists() and not force:
        raise _fail(MsgenError(f"{output} exists: choose another -o FILE, or pass --force to overwrite it"))
    try:
        imported = import_compose(compose_files, project)
    except MsgenError as error:
        raise _fail(error) from None
    if dry_run:
        _print_plain(imported.text, end="")
    else:
        _write_whole(output, imported.text)
        err.print(f"wrote {output}", markup=False)
    err.print(f"not mapped ({len(imported.unmapped)}, each a TODO(import) comment in the blueprint):" if imported.unmapped else "everything was mapped", markup=False)
    for entry in imported.unmapped:
        err.print(f"  - {entry}", markup=False)
    if dry_run:
        return
    try:
        findings = analyse(output).findings
    except MsgenError as error:
        raise _fail(error) from None
    counts = Counter(finding.severity for finding in findings if finding.suppressed is None)
    summary = ", ".join(f"{counts[severity]} {severity}" for severity in ("error", "warning", "info"))
    err.print(f"findings: {summary}; run `msgen validate {output}` to see them", markup=False)


def main() -> None:
    try:
        app(prog_name="msgen")  # also names the completion variable: _MSGEN_COMPLETE
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:  # a bug in msgen: one line, its own exit code, and how to see more
        if os.environ.get("MSGEN_DEBUG") == "1":
            raise
        err.print(
            f"internal error: {type(error).__name__}: {error}; please report it with the blueprint "
            "(MSGEN_DEBUG=1 shows the traceback)",
            markup=False,
        )
        sys.exit(INTERNAL_ERROR)
