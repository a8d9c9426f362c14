"""The ``vihub`` command line (client side): submit, follow and fetch jobs from a shell.

Exit codes: 0 success; 1 the job failed or was cancelled; 2 usage error (bad option, a
file that does not exist); 3 the API refused the request or could not be reached (the
problem's title and detail are printed on stderr).

``client_app`` holds the client commands. ``main`` builds the ``vihub`` program: the client
commands, plus whatever installed packages register in the ``vihub.commands`` entry-point
group (each entry point names a ``typer.Typer`` whose commands and groups join the top
level). This package registers ``vihub_client.cli_sweeps:app`` there (``sweep``,
``compare``: that module imports this one, so this one cannot import it), the server
package ``vihub.cli:app`` (``up``, ``api``, ``worker``, ``migrate``, ``keys``); this module
never imports the server.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from vihub_client import _ops
from vihub_client._version import __version__
from vihub_client.client import Client, Job
from vihub_client.errors import JobFailed, VihubError, WaitTimeout

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_API_ERROR = 0, 1, 2, 3

client_app = typer.Typer(
    help="Submit variational-inference jobs to a vihub server and fetch their results.",
    no_args_is_help=True,
    add_completion=False,
)
datasets_app = typer.Typer(help="Upload and inspect datasets.", no_args_is_help=True)
client_app.add_typer(datasets_app, name="datasets")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

UrlOpt = Annotated[Optional[str], typer.Option("--url", envvar="VIHUB_URL", help="Server URL [env VIHUB_URL]", show_default=False)]
KeyOpt = Annotated[Optional[str], typer.Option("--api-key", envvar="VIHUB_API_KEY", help="API key [env VIHUB_API_KEY]", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw JSON")]


def _client(url: str | None, api_key: str | None) -> Client:
    return Client(url, api_key)


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def _fail(code: int, title: str, detail: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {title}" + (f"\n{detail}" if detail else ""), highlight=False)
    raise typer.Exit(code)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map exceptions to the documented exit codes and messages."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JobFailed as exc:
            _fail(EXIT_JOB_FAILED, exc.title, exc.detail)
        except WaitTimeout as exc:
            _fail(EXIT_JOB_FAILED, exc.title, exc.detail)
        except VihubError as exc:
            lines = [exc.detail] if exc.detail else []
            for item in exc.errors[:10]:
                where = item.get("pointer") or item.get("parameter") or ""
                lines.append(f"  {where}: {item.get('detail')}")
            if exc.extra.get("line") is not None:
                lines.append(f"  at line {exc.extra['line']}, column {exc.extra.get('col')}")
            status = f" ({exc.status})" if exc.status else ""
            _fail(EXIT_API_ERROR, exc.title + status, "\n".join(lines) or None)
        except (FileNotFoundError, ValueError) as exc:
            _fail(EXIT_USAGE, str(exc))

    return wrapper


def _job_table(jobs: list[Job]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("ID", "STATE", "STEP", "LOSS", "CREATED", "MODEL", "LABELS"):
        table.add_column(column)
    for job in jobs:
        p = job.progress
        model = job.raw.get("model") or {}
        table.add_row(
            job.id,
            _state(job.state),
            f"{p.step}/{p.steps}" if p.steps else str(p.step),
            "-" if p.loss is None else f"{p.loss:.5g}",
            job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else "-",
            f"catalog:{model['catalog']}" if "catalog" in model else "source",
            ",".join(f"{k}={v}" for k, v in job.labels.items()),
        )
    return table


def _state(state: str) -> str:
    color = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}.get(state, "white")
    return f"[{color}]{state}[/]"


def _show_job(job: Job) -> None:
    p = job.progress
    out.print(f"[bold]{job.id}[/]  {_state(job.state)}")
    if p.steps:
        out.print(f"  step {p.step}/{p.steps}" + (f"  loss {p.loss:.6g}" if p.loss is not None else "")
                  + (f"  {p.steps_per_s:.0f} it/s" if p.steps_per_s else "")
                  + (f"  ETA {p.eta_s:.0f}s" if p.eta_s is not None and not job.done else ""))
    for name in ("created_at", "started_at", "finished_at"):
        value = getattr(job, name)
        if value:
            out.print(f"  {name.replace('_', ' ')}: {value.isoformat()}")
    if job.labels:
        out.print("  labels: " + ", ".join(f"{k}={v}" for k, v in job.labels.items()))
    if job.error is not None:
        out.print(f"  [red]error:[/] {job.error.title}" + (f": {job.error.detail}" if job.error.detail else ""))


def _finish(job: Job, timeout: float | None) -> None:
    job.wait(timeout=timeout, progress=err.is_terminal, raise_on_failure=True)
    err.print(f"{job.id} {_state(job.state)}")


# ---------------------------------------------------------------------------------------
# Commands


def _inference(elbo: str | None, optimizer: str | None, steps: int | None, lr: float | None,
               seed: int | None, device: str | None, extra: str | None) -> dict[str, Any]:
    inference: dict[str, Any] = json.loads(extra) if extra else {}
    if not isinstance(inference, dict):
        raise ValueError("--inference must be a JSON object")
    if elbo:
        inference["elbo"] = {**inference.get("elbo", {}), "name": elbo}
    if optimizer or lr is not None:
        opt = dict(inference.get("optimizer", {}))
        if optimizer:
            opt["name"] = optimizer
        if lr is not None:
            opt["lr"] = lr
        inference["optimizer"] = opt
    for key, value in (("steps", steps), ("seed", seed), ("device", device)):
        if value is not None:
            inference[key] = value
    return inference


def _guide(guide: str | None) -> Any:
    if guide and guide.endswith(".py"):
        return Path(guide)
    return guide


@client_app.command()
@handles_errors
def submit(
    model: Annotated[str, typer.Argument(help="A .py file with the model, or catalog:NAME")],
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="CSV/NPZ/Parquet/JSON file, or a dataset id")] = None,
    guide: Annotated[Optional[str], typer.Option(help="Autoguide name (AutoNormal, ...) or a .py file with a guide")] = None,
    elbo: Annotated[Optional[str], typer.Option(help="Trace_ELBO, TraceMeanField_ELBO, TraceEnum_ELBO, ...")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="Adam, ClippedAdam, SGD, ...")] = None,
    steps: Annotated[Optional[int], typer.Option(help="SVI steps")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda or auto")] = None,
    num_samples: Annotated[Optional[int], typer.Option("--num-samples", help="Posterior draws to keep")] = None,
    predictive: Annotated[bool, typer.Option("--predictive", help="Also draw the posterior predictive")] = False,
    entry: Annotated[Optional[str], typer.Option(help="Name of the model function (default: model)")] = None,
    inference_json: Annotated[Optional[str], typer.Option("--inference", help="More inference settings as JSON")] = None,
    label: Annotated[Optional[list[str]], typer.Option("--label", "-l", help="KEY=VALUE, repeatable")] = None,
    webhook: Annotated[Optional[str], typer.Option(help="URL called when the job ends")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow progress until the job ends")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="With --watch: give up after this many seconds")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the job id")] = False,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Submit a job. Prints the job id; with --watch, follows it to the end."""
    outputs: dict[str, Any] = {}
    if num_samples is not None:
        outputs["num_samples"] = num_samples
    if predictive:
        outputs["predictive"] = True
    model_arg: Any = model
    if model.endswith(".py"):
        model_arg = Path(model)
    with _client(url, api_key) as client:
        job = client.submit(
            model_arg, guide=_guide(guide), data=data, entry=entry,
            inference=_inference(elbo, optimizer, steps, lr, seed, device, inference_json) or None,
            outputs=outputs or None, labels=label or None, webhook=webhook,
        )
        if as_json:
            _print_json(job.raw)
        elif quiet:
            print(job.id)
        else:
            out.print(f"submitted [bold]{job.id}[/] ({job.state})")
        if watch:
            _finish(job, timeout)


@client_app.command()
@handles_errors
def status(
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Show a job's state, progress, timings and error."""
    with _client(url, api_key) as client:
        job = client.job(job_id)
        _print_json(job.raw) if as_json else _show_job(job)


@client_app.command()
@handles_errors
def watch(
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    timeout: Annotated[Optional[float], typer.Option(help="Give up after this many seconds (exit 1)")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Follow a job with a live progress bar (step, loss, ETA) until it ends."""
    with _client(url, api_key) as client:
        _finish(client.job(job_id), timeout)


@client_app.command()
@handles_errors
def jobs(
    state: Annotated[Optional[list[str]], typer.Option("--state", "-s", help="queued, running, ...; repeatable")] = None,
    label: Annotated[Optional[list[str]], typer.Option("--label", "-l", help="KEY=VALUE; repeatable")] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs")] = 20,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """List jobs, newest first."""
    with _client(url, api_key) as client:
        found = list(client.list_jobs(state=state or None, label=label or None, page_size=min(limit, 500), limit=limit))
        if as_json:
            _print_json([job.raw for job in found])
        else:
            out.print(_job_table(found))


@client_app.command()
@handles_errors
def cancel(
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Cancel a job (a running job stops at the worker's next check)."""
    with _client(url, api_key) as client:
        job = client.cancel(job_id)
        if job.done:
            out.print(f"{job.id} {_state(job.state)}")
        else:
            out.print(f"{job.id} {_state(job.state)}: cancellation requested; it stops at the worker's next check")


@client_app.command()
@handles_errors
def results(
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write into")] = Path("."),
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="npz, netcdf, json, safetensors or pt; default: all useful forms")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Download a finished job's results (params, loss, samples, log-probs, diagnostics, summary)."""
    if fmt is not None and fmt not in _ops.RESULT_FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(_ops.RESULT_FORMATS)}", param_hint="--format")
    with _client(url, api_key) as client:
        written = client.job(job_id).download(out_dir, format=fmt)
        for path in written.values():
            out.print(f"{path}  ({path.stat().st_size} bytes)", highlight=False)


@client_app.command()
@handles_errors
def catalog(
    name: Annotated[Optional[str], typer.Argument(help="Show one entry (source, data schema, suggested settings)")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """List the built-in models, or show one."""
    with _client(url, api_key) as client:
        if name is None:
            items = client.catalog()
            if as_json:
                _print_json(items)
                return
            table = Table(box=None, header_style="bold")
            table.add_column("NAME")
            table.add_column("DESCRIPTION")
            for item in items:
                table.add_row(item.get("name", ""), item.get("description", ""))
            out.print(table)
            return
        entry = client.catalog_entry(name)
        if as_json:
            _print_json(entry)
            return
        out.print(f"[bold]{entry['name']}[/]: {entry.get('description', '')}")
        out.print(entry.get("source", ""), highlight=False, markup=False)
        if entry.get("data_schema"):
            out.print("[bold]data:[/]")
            _print_json(entry["data_schema"])
        if entry.get("suggested"):
            out.print("[bold]suggested:[/]")
            _print_json(entry["suggested"])


@client_app.command()
@handles_errors
def validate(
    model: Annotated[str, typer.Argument(help="A .py file with the model, or catalog:NAME")],
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="CSV/NPZ/Parquet/JSON file, or a dataset id")] = None,
    guide: Annotated[Optional[str], typer.Option(help="Autoguide name or a .py file with a guide")] = None,
    elbo: Annotated[Optional[str], typer.Option(help="ELBO name")] = None,
    entry: Annotated[Optional[str], typer.Option(help="Name of the model function")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Run the validation pass (model/guide alignment, shapes, supports) without training."""
    with _client(url, api_key) as client:
        report = client.validate(
            Path(model) if model.endswith(".py") else model, guide=_guide(guide), data=data, entry=entry,
            inference=_inference(elbo, None, None, None, None, None, None) or None,
        )
        if as_json:
            _print_json(report)
        else:
            ok = report.get("ok", True)
            out.print("[green]ok[/]" if ok else "[red]not ok[/]")
            for warning in report.get("warnings") or []:
                out.print(f"[yellow]warning:[/] {warning}", highlight=False)
        if report.get("ok") is False:
            raise typer.Exit(EXIT_JOB_FAILED)


@datasets_app.command("upload")
@handles_errors
def datasets_upload(
    file: Annotated[Path, typer.Argument(help="CSV (header row), NPZ, Parquet or JSON object")],
    name: Annotated[Optional[str], typer.Option(help="A name to remember it by")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the dataset id")] = False,
    chunked: Annotated[Optional[bool], typer.Option(
        "--chunked/--single-request",
        help="Resumable chunked upload with a progress bar (default: for files of 8 MiB or more)")] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Upload a data file; prints its id (use it as --data). Large files go up in
    checksummed parts with a progress bar; run the command again to resume a broken upload."""
    with _client(url, api_key) as client:
        if chunked is None:
            chunked = file.is_file() and file.stat().st_size >= 8 * 1024 * 1024
        if chunked:
            dataset = client.upload(file, name=name, progress=not (quiet or as_json))
        else:
            dataset = client.upload_dataset(file, name=name)
        if as_json:
            _print_json(dataset.raw)
        elif quiet:
            print(dataset.id)
        else:
            out.print(f"[bold]{dataset.id}[/]  sha256 {dataset.sha256}")
            for f in dataset.fields:
                out.print(f"  {f.get('name')}: {f.get('dtype')} {tuple(f.get('shape') or ())}", highlight=False)


@datasets_app.command("show")
@handles_errors
def datasets_show(
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Show a dataset's fields, shapes and dtypes."""
    with _client(url, api_key) as client:
        _print_json(client.dataset(dataset_id).raw)


# ---------------------------------------------------------------------------------------
# The `vihub` program


def _merge(app: typer.Typer, other: typer.Typer) -> None:
    """Add ``other``'s commands and command groups at the top level of ``app``.

    (``app.add_typer(other)`` would nest them under ``other``'s name when it has one.)"""
    have = {c.name or (c.callback.__name__.replace("_", "-") if c.callback else None) for c in app.registered_commands}
    have |= {g.name or (g.typer_instance.info.name if g.typer_instance else None) for g in app.registered_groups}
    for command in other.registered_commands:
        name = command.name or (command.callback.__name__.replace("_", "-") if command.callback else None)
        if name not in have:
            app.registered_commands.append(command)
    for group in other.registered_groups:
        name = group.name or (group.typer_instance.info.name if group.typer_instance else None)
        if name not in have:
            app.registered_groups.append(group)


#: The entry-point group through which installed packages add commands to ``vihub``.
COMMANDS_GROUP = "vihub.commands"
CLIENT_DISTRIBUTION = "vihub-client"


def registered_commands(*, only_client: bool = False) -> list[tuple[str, typer.Typer]]:
    """The ``typer.Typer`` objects registered in the ``vihub.commands`` entry-point group,
    as ``(distribution name, app)``, in a stable order (by distribution, then entry name);
    with ``only_client``, those of this distribution (``vihub-client``) alone.

    An entry point whose module cannot be imported (a half-installed server, a missing
    optional dependency) is reported on stderr and skipped: the client commands must
    keep working. An entry point that is not a ``typer.Typer`` is a packaging error and
    raises ``TypeError``.
    """
    commands = []
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: (_dist_name(e), e.name)):
        dist = _dist_name(entry)
        if only_client and dist != CLIENT_DISTRIBUTION:
            continue
        try:
            loaded = entry.load()
        except ImportError as exc:
            err.print(f"[yellow]warning:[/] the {dist or entry.name} commands ({entry.value}) "
                      f"could not be loaded: {exc}", highlight=False)
            continue
        if not isinstance(loaded, typer.Typer):
            raise TypeError(f"entry point {entry.name} = {entry.value} in {COMMANDS_GROUP} "
                            f"is a {type(loaded).__name__}, not a typer.Typer")
        commands.append((dist, loaded))
    return commands


def _dist_name(entry: EntryPoint) -> str:
    # Normalised (PEP 503): metadata may spell it vihub_client or vihub-client.
    return re.sub(r"[-_.]+", "-", entry.dist.name).lower() if entry.dist is not None else ""


def _registered_versions() -> list[str]:
    """``"<distribution> <version>"`` for every other distribution that registers commands."""
    seen: dict[str, str] = {}
    for entry in entry_points(group=COMMANDS_GROUP):
        if entry.dist is not None and _dist_name(entry) != CLIENT_DISTRIBUTION:
            seen.setdefault(entry.dist.name, entry.dist.version)
    return [f"{name} {version}" for name, version in sorted(seen.items())]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vihub-client {__version__}")
        for line in _registered_versions():
            typer.echo(line)
        raise typer.Exit()


def make_app(*, with_server: bool = True) -> typer.Typer:
    """The whole ``vihub`` program: the client commands, plus every command registered in
    the ``vihub.commands`` entry-point group: the client's own further commands
    (``sweep``, ``compare``) and the server package's (``up``, ``api``, ``worker``,
    ``migrate``, ``keys``). ``with_server=False`` takes this distribution's entries only.
    A registered name the program already has is skipped: the client's own commands come
    first."""
    app = typer.Typer(
        name="vihub",
        help="vihub: hosted variational inference. Client commands talk to a server over HTTP"
        " ($VIHUB_URL, $VIHUB_API_KEY).",
        no_args_is_help=True,
        add_completion=False,
    )

    @app.callback()
    def _root(
        version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                              help="Print the version(s) and exit.")] = False,
    ) -> None:
        """vihub: hosted variational inference."""

    _merge(app, client_app)
    registered = registered_commands(only_client=not with_server)
    # This distribution's entries first: a server command never shadows a client one.
    for _, commands in sorted(registered, key=lambda item: item[0] != CLIENT_DISTRIBUTION):
        _merge(app, commands)
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``vihub = "vihub_client.cli:main"``)."""
    app = make_app()
    app(args=argv if argv is not None else sys.argv[1:], prog_name="vihub")


if __name__ == "__main__":  # pragma: no cover
    main()
