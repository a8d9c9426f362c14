"""The engine's option tables, computed in a sandbox child (``api.dryrun``).

They come from Pyro's and torch's constructor signatures, so reading them imports torch
and Pyro; the API process never does (``import inference`` stays cheap there), so
``option_tables`` runs where the dry runs do. It imports nothing heavy at module level:
the child imports this module by name.
"""

from __future__ import annotations

import math
from typing import Any


def option_tables(time_limit_s: float) -> dict[str, Any]:
    """``{"ok": True, "tables": {...}}``: options per ELBO, autoguide and optimizer, the
    init strategies, and the k-hat readings as ``[[upper bound or None, reading], ...]``.

    ``time_limit_s`` is the dry-run pool's calling convention; nothing here can hang.
    """
    from inference.engine.elbos import allowed_elbo_options
    from inference.engine.guides import INIT_LOC_FNS, allowed_options
    from inference.engine.optim import allowed_optimizer_options
    from inference.results.psis import KHAT_READINGS
    from inference.spec import AUTOGUIDE_NAMES, ELBO_NAMES, OPTIMIZER_NAMES

    return {"ok": True, "tables": {
        "elbos": {name: allowed_elbo_options(name) for name in ELBO_NAMES},
        "guides": {name: allowed_options(name) for name in AUTOGUIDE_NAMES},
        "optimizers": {name: allowed_optimizer_options(name) for name in OPTIMIZER_NAMES},
        "init_loc_fns": list(INIT_LOC_FNS),
        "k_hat_readings": [[None if math.isinf(bound) else bound, reading] for bound, reading in KHAT_READINGS],
    }}
