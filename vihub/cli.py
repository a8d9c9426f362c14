"""The server-side ``vihub`` command.

- ``vihub up [--host 127.0.0.1] [--port 8000]``: the embedded default on one machine —
  migrate the SQLite store under ``VIHUB_HOME``, start a Celery worker subprocess (same
  task code, the serverless SQLAlchemy broker), the sweeper, and the API (uvicorn).
  Single-user: auth defaults to disabled on the embedded SQLite store.
- ``vihub api``: the API alone (production; run ``vihub migrate`` first).
- ``vihub worker [--queues cpu,gpu]``: a Celery worker subprocess plus the sweeper.
- ``vihub migrate``: ``alembic upgrade head`` on the configured database.
- ``vihub keys create --tenant NAME``: a new API key for a tenant, printed once.

Configuration is the ``VIHUB_*`` environment (``common.settings``).

``app`` is registered in the ``vihub.commands`` entry-point group (pyproject.toml), which
is how the client's ``vihub`` program finds these commands.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Annotated

import typer

from vihub import __version__

app = typer.Typer(name="vihub", help="vihub: hosted variational inference (server commands).",
                  no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

log = logging.getLogger("vihub")


def _settings():
    from common.settings import get_settings

    return get_settings()


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vihub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Server commands of vihub."""


def _parse_queues(queues: str) -> list[str]:
    from common.broker import QUEUES

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        raise typer.BadParameter(f"queues must be among {', '.join(QUEUES)} (got {queues!r})")
    return names


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (alembic upgrade head)."""
    from store.migrate import current_revision, upgrade

    settings = _settings()
    _logging(settings.log_level)
    upgrade(settings=settings)
    typer.echo(f"database at revision {current_revision(settings.database.url)}: {_safe_url(settings.database.url)}")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant name (created if new).")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
) -> None:
    """Create an API key for TENANT and print it (only its hash is stored)."""
    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.db import session_factory
    from store.repositories import ApiKeyRepository, TenantRepository

    settings = _settings()
    key = generate_api_key()
    with session_factory(settings).begin() as session:
        tenant_row = TenantRepository(session).get_or_create(tenant)
        ApiKeyRepository(session).create(tenant_row.id, hash_api_key(key), display_prefix(key), name=name)
    typer.echo(key)
    typer.echo(f"(tenant {tenant!r}; store this key now: it cannot be shown again)", err=True)


@keys_app.command("list")
def keys_list(tenant: Annotated[str, typer.Option("--tenant", help="Tenant name.")]) -> None:
    """List a tenant's keys (prefixes only)."""
    from store.db import session_factory
    from store.repositories import ApiKeyRepository, TenantRepository

    with session_factory(_settings()).begin() as session:
        row = TenantRepository(session).get_by_name(tenant)
        if row is None:
            raise typer.BadParameter(f"no tenant {tenant!r}", param_hint="--tenant")
        for key in ApiKeyRepository(session).list_for_tenant(row.id):
            status = "revoked" if key.revoked_at else "active"
            typer.echo(f"{key.id}  {key.prefix}…  {status}  created {key.created_at:%Y-%m-%d %H:%M}  {key.name or ''}")


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the REST API (run `vihub migrate` first)."""
    import uvicorn

    settings = _settings()
    _logging(settings.log_level)
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=settings.log_level.lower())


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: cpu, gpu.")] = "cpu",
    concurrency: Annotated[int | None, typer.Option(help="Pool processes (one job each).")] = None,
    pool: Annotated[str, typer.Option(help="prefork or solo (never threads).")] = "prefork",
    sweeper: Annotated[bool, typer.Option("--sweeper/--no-sweeper",
                                          help="Run the sweeper next to the worker.")] = True,
) -> None:
    """Run a Celery worker (subprocess) and the sweeper until SIGTERM/SIGINT."""
    from vihub.processes import SupervisedProcess, celery_worker_argv, child_env

    if pool not in ("prefork", "solo"):
        raise typer.BadParameter("pool must be prefork or solo", param_hint="--pool")
    names = _parse_queues(queues)
    settings = _settings()
    _logging(settings.log_level)
    argv = celery_worker_argv(
        names, pool=pool, concurrency=concurrency or settings.worker.concurrency,
        # GPU memory fragments over many jobs: recycle the child now and then.
        max_tasks_per_child=(settings.worker.gpu_max_tasks_per_child if "gpu" in names
                             else settings.worker.cpu_max_tasks_per_child),
        loglevel=settings.log_level,
    )
    celery_proc = SupervisedProcess("celery-worker", argv, child_env(settings), restart=False)
    _run_until_signal(settings, celery_proc, with_sweeper=sweeper)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Start everything on this machine: store, broker, worker, sweeper and API."""
    import uvicorn

    from store.migrate import upgrade
    from vihub.processes import SupervisedProcess, celery_worker_argv, child_env
    from worker.sweeper import Sweeper

    settings = _settings()
    _logging(settings.log_level)
    settings.ensure_home()
    upgrade(settings=settings)
    typer.echo(f"vihub {__version__}: store {_safe_url(settings.database.url)}, "
               f"broker {_safe_url(settings.broker.url)}, auth {settings.auth}", err=True)
    # One pool process: Pyro is process-global, and a laptop runs one job at a time.
    celery_proc = SupervisedProcess(
        "celery-worker",
        celery_worker_argv(["cpu", "gpu"], pool="prefork", concurrency=settings.worker.concurrency,
                           loglevel=settings.log_level, hostname="vihub-embedded@%h"),
        child_env(settings),
        restart=True,
    )
    celery_proc.start()
    sweeper = Sweeper(settings)
    sweeper.start()
    # uvicorn re-raises the signal it caught after its own clean shutdown, which would
    # kill this process before the `finally` below stops the worker and the sweeper
    # (`docker stop`, systemd). A SIGTERM that becomes SystemExit unwinds normally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # uvicorn handles SIGINT/SIGTERM and returns; then the children go.
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port,
                    log_level=settings.log_level.lower())
    finally:
        sweeper.stop()
        celery_proc.stop(timeout=15)


def _run_until_signal(settings, celery_proc, *, with_sweeper: bool) -> None:
    from worker.sweeper import Sweeper

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    celery_proc.start()
    sweeper = Sweeper(settings) if with_sweeper else None
    if sweeper is not None:
        sweeper.start()
    try:
        while not stop.wait(1.0):
            if celery_proc.popen is not None and celery_proc.popen.poll() is not None:
                code = celery_proc.popen.returncode
                log.error("the Celery worker exited with %s", code)
                raise typer.Exit(code or 1)
    finally:
        if sweeper is not None:
            sweeper.stop()
        celery_proc.stop()


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url.split("+", 1)[1] if url.startswith("sqla+") else url).render_as_string(
            hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1]


#: The entry-point group the client's ``vihub`` program is composed from (the contract of
#: CONTRIBUTING.md, "One vihub command"; pyproject.toml registers ``app`` in it).
COMMANDS_GROUP = "vihub.commands"


def _registered() -> bool:
    """Whether this package's ``app`` is registered in the group (it is not when the
    installed metadata predates the entry point, e.g. an editable install not redone)."""
    from importlib.metadata import entry_points

    return any(e.value.replace(" ", "") == "vihub.cli:app" for e in entry_points(group=COMMANDS_GROUP))


def main() -> None:
    """The `vihub` command: the composed program when the client is installed, else the
    server commands alone.

    Both distributions install a `vihub` script and whichever was installed last wins.
    The client composes the program (its own commands plus every `vihub.commands` entry
    point, among them this module's `app`), so this script hands over to it when that
    program would hold the server commands; the import goes one way only (the client
    never imports the server).
    """
    if _registered():
        try:
            from vihub_client.cli import main as composed_main
        except ImportError:
            pass
        else:
            composed_main()
            return
    app()


if __name__ == "__main__":
    main()
