"""``vihub sweep`` and ``vihub compare``: sweeps and comparison tables from a shell.

``app`` is registered in the ``vihub.commands`` entry-point group (client/pyproject.toml),
through which ``vihub_client.cli.make_app`` composes the ``vihub`` program: this module
imports ``vihub_client.cli`` (its options and helpers), never the other way round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from vihub_client import cli as _cli
from vihub_client.cli import JsonOpt, KeyOpt, UrlOpt, _print_json, _state, err, handles_errors, out

app = typer.Typer(add_completion=False)

def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pm(value: Any, se: Any) -> str:
    return "-" if value is None else f"{value:.5g} ± {_num(se, 2)}"


def _what(row: dict[str, Any]) -> str:
    point = row.get("point")
    if point:
        return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in point.items())
    return f"{row.get('guide')} lr={row.get('lr')}"


COLUMNS: tuple[tuple[str, Any], ...] = (
    ("job", lambda r: str(r["job_id"])[:8]),
    ("fit", _what),
    ("ELBO ± SE", lambda r: _pm(r.get("elbo"), r.get("elbo_se"))),
    ("k-hat", lambda r: f"{_num(r.get('k_hat'), 2)} {r.get('k_hat_reading')}"),
    ("elpd_loo ± SE", lambda r: _pm(r.get("elpd_loo"), r.get("elpd_loo_se"))),
    ("Δelpd ± SE", lambda r: _pm(r.get("elpd_diff"), r.get("elpd_diff_se"))),
    ("weight", lambda r: _num(r.get("loo_weight"), 2)),
    ("steps", lambda r: str(r.get("steps"))),
    ("wall s", lambda r: _num(r.get("wall_s"), 3)),
    ("conv.", lambda r: {True: "yes", False: "no"}.get(r.get("converged"), "-")),
)


MIN_TABLE_WIDTH = 150


def comparison_table(table: dict[str, Any]) -> Table:
    """A rich table of a comparison: the recommended row starred and bold, untrusted fits red."""
    rich_table = Table(header_style="bold", box=None, pad_edge=False)
    rich_table.add_column("")
    for title, _ in COLUMNS:
        rich_table.add_column(title, no_wrap=True)
    for row in table.get("rows", []):
        mark = "★" if row.get("recommended") else ("!" if not row.get("trusted") else "")
        style = "bold green" if row.get("recommended") else ("red" if not row.get("trusted") else None)
        rich_table.add_row(mark, *(cell(row) for _, cell in COLUMNS), style=style)
    return rich_table


def _print_comparison(table: dict[str, Any]) -> None:
    # Never squeezed below a readable width: a narrow terminal wraps the lines instead of
    # rich folding every number in two.
    wide = Console(file=out.file, width=max(out.width, MIN_TABLE_WIDTH), force_terminal=out.is_terminal)
    wide.print(comparison_table(table))
    rule = table.get("rule") or {}
    out.print(f"recommended: [bold]{table.get('recommended') or '-'}[/] ({rule.get('reason', '')})")
    out.print("! = k-hat > 0.7: not to be trusted", style="dim")
    for note in table.get("notes") or []:
        out.print(f"note: {note}", style="dim")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_axes(specs: list[str]) -> dict[str, list[Any]]:
    """``PATH=V1,V2`` (JSON values where they parse, else strings); ``PATH=[json list]`` too."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        path, sep, values = spec.partition("=")
        if not sep or not path or not values:
            raise ValueError(f"--axis {spec!r}: write PATH=VALUE,VALUE (e.g. inference.optimizer.lr=0.01,0.05)")
        parsed = _parse_value(values) if values.lstrip().startswith("[") else [
            _parse_value(v) for v in values.split(",")]
        axes[path.strip()] = parsed if isinstance(parsed, list) else [parsed]
    return axes


@app.command()
@handles_errors
def sweep(
    base: Annotated[Path, typer.Argument(help="JSON file with the base job body (model, guide, data, inference...)")],
    axis: Annotated[Optional[list[str]], typer.Option("--axis", "-a", help="PATH=V1,V2 over a spec field; repeat for a grid")] = None,
    points: Annotated[Optional[Path], typer.Option(help="JSON file with a list of override objects (instead of --axis)")] = None,
    name: Annotated[Optional[str], typer.Option(help="A name for the sweep")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for every member, then print the comparison")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="With --wait: give up after this many seconds")] = None,
    sort: Annotated[str, typer.Option(help="Sort the table by this column")] = "elbo",
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Start a sweep over spec fields; with --wait, print its comparison table."""
    if not base.is_file():
        raise FileNotFoundError(f"{base} does not exist")
    body = json.loads(base.read_text())
    point_list = json.loads(points.read_text()) if points is not None else None
    if point_list is not None and axis:
        raise ValueError("give --axis or --points, not both")
    with _cli._client(url, api_key) as client:
        handle = client.sweep(base=body, axes=parse_axes(axis or []) if point_list is None else None,
                              points=point_list, name=name)
        if not wait:
            if as_json:
                _print_json(handle.raw)
            else:
                out.print(f"sweep [bold]{handle.id}[/] with {len(handle.members)} jobs ({handle.state})")
            return
        err.print(f"sweep {handle.id}: waiting for {len(handle.members)} jobs")
        handle.wait(timeout=timeout)
        err.print(f"sweep {handle.id}: " + ", ".join(f"{n} {_state(s)}" for s, n in handle.counts.items() if n))
        table = handle.comparison(sort=sort, raw=True)
        _print_json(table) if as_json else _print_comparison(table)


@app.command()
@handles_errors
def compare(
    jobs: Annotated[Optional[list[str]], typer.Argument(help="Job ids (same data), or use --sweep")] = None,
    sweep_id: Annotated[Optional[str], typer.Option("--sweep", help="Compare the members of this sweep")] = None,
    sort: Annotated[str, typer.Option(help="elbo, elpd_loo, k_hat, steps, wall_s, ...")] = "elbo",
    ascending: Annotated[bool, typer.Option("--asc", help="Smallest first")] = False,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Print the comparison table of jobs (ELBO ± SE, k-hat, PSIS-LOO, the recommended fit)."""
    if bool(jobs) == bool(sweep_id):
        raise ValueError("give job ids or --sweep ID")
    order = "asc" if ascending else "desc"
    with _cli._client(url, api_key) as client:
        if sweep_id:
            table = client.get_sweep(sweep_id).comparison(sort=sort, order=order, raw=True)
        else:
            table = client.compare(list(jobs or []), sort=sort, order=order, raw=True)
    _print_json(table) if as_json else _print_comparison(table)
