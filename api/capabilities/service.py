"""``/v1/capabilities``: what this server offers, derived from where each fact lives.

Names and defaults come from the job spec (``inference.spec``, torch-free); the options
of each ELBO, autoguide and optimizer, the init strategies and the k-hat readings come
from the engine (``api.capabilities.engine``, run once per process in a trial-run
process); the result formats from ``api.formats.RESULT_FORMATS``, which the result
routes negotiate with. Nothing here is a list of its own.
"""

from __future__ import annotations

import logging
import threading
import typing
from typing import Any

from api import dryrun
from api.capabilities.engine import option_tables
from api.capabilities.schemas import (
    CapabilitiesOut,
    Choice,
    ElboChoices,
    FormatOut,
    GuideChoices,
    KhatOut,
    KhatReading,
    OptimizerChoices,
    OutputOption,
    ResultOut,
)
from api.formats import EXTENSIONS, MEDIA_TYPES, RESULT_FORMATS, ResultFormat
from inference.spec import (
    AUTOGUIDE_NAMES,
    ELBO_NAMES,
    FLOAT_DTYPES,
    OPTIMIZER_NAMES,
    ElboSpec,
    InferenceSpec,
    JobSpec,
    OptimizerSpec,
    OutputsSpec,
    SchedulerSpec,
)

log = logging.getLogger("vihub.api.capabilities")

# The engine's tables, once read (they change only with the installed engine). A failed
# read is not kept: the next request tries again.
_engine_tables: dict[str, Any] | None = None
# One read at a time per process: the route needs no key, and every caller that found no
# tables used to start its own trial-run process (no tenant share applies to it), so a
# burst of anonymous requests before the first read finished could fill the trial-run
# slots that tenants' submissions wait for. Callers that find a read in flight wait for
# it (as long as for a trial-run slot) and use its tables instead of starting another.
_read_lock = threading.Lock()
READ_WAIT_S = 30.0  # a pool that does not say its queue wait (DryRunPool does)


def capabilities(pool: dryrun.DryRunPool) -> CapabilitiesOut:
    tables = engine_tables(pool) or {}

    def choices(kind: str, names: tuple[str, ...]) -> list[Choice]:
        known = tables.get(kind) or {}
        return [Choice(name=name, options=known.get(name)) for name in names]

    readings = tables.get("k_hat_readings")
    return CapabilitiesOut(
        guides=GuideChoices(auto=choices("guides", AUTOGUIDE_NAMES),
                            default=JobSpec.model_fields["guide"].get_default(call_default_factory=True).auto,
                            init_loc_fns=tables.get("init_loc_fns")),
        elbos=ElboChoices(names=choices("elbos", ELBO_NAMES), default=ElboSpec.model_fields["name"].default),
        optimizers=OptimizerChoices(names=choices("optimizers", OPTIMIZER_NAMES),
                                    default=OptimizerSpec.model_fields["name"].default,
                                    schedulers=list(_literal_values(SchedulerSpec, "name"))),
        devices=list(_literal_values(InferenceSpec, "device")),
        float_dtypes=list(FLOAT_DTYPES),
        outputs=[OutputOption(name=name, default=field.get_default(call_default_factory=True))
                 for name, field in OutputsSpec.model_fields.items()],
        formats=[FormatOut(name=f.value, media_type=MEDIA_TYPES[f], extension=EXTENSIONS[f]) for f in ResultFormat],
        results=[ResultOut(name=name, formats=[f.value for f in formats]) for name, formats in RESULT_FORMATS.items()],
        k_hat=KhatOut(readings=None if readings is None else
                      [KhatReading(reading=reading, below=bound) for bound, reading in readings]),
    )


def engine_tables(pool: dryrun.DryRunPool) -> dict[str, Any] | None:
    """The engine's option tables, read in a trial-run process the first time; ``None``
    while that cannot be done (every trial-run slot busy, or the process failed)."""
    global _engine_tables
    if _engine_tables is not None:
        return _engine_tables
    if not _read_lock.acquire(timeout=float(getattr(pool, "queue_wait_s", READ_WAIT_S))):
        return None
    try:
        if _engine_tables is None:
            try:
                outcome = pool.run(option_tables)
            except (dryrun.DryRunUnavailable, dryrun.DryRunTimedOut) as exc:
                log.warning("capabilities: the engine's option tables are not available now: %s", exc)
                return None
            if not outcome.get("ok"):
                log.warning("capabilities: reading the engine's option tables failed: %s", outcome)
                return None
            _engine_tables = outcome["tables"]
        return _engine_tables
    finally:
        _read_lock.release()


def _literal_values(model: Any, field: str) -> tuple[Any, ...]:
    """The values of a ``Literal[...]`` field of a pydantic model."""
    return typing.get_args(model.model_fields[field].annotation)
