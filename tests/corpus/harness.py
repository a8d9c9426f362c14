"""Run a corpus model through vihub and through plain Pyro; compare the first losses.

vihub side: ``inference.fit`` (the path the service uses), the model text as data.
Plain Pyro side (the reference): the same text executed as trusted test code with the
same seed and the same steps the run loop takes -- seed, compile (module-level code),
seed again, create the params by tracing guide and model once, then ``SVI.step``.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyro
import torch
from pyro import poutine

MODELS = pathlib.Path(__file__).parent / "models"
PROVENANCE = json.loads((pathlib.Path(__file__).parent / "provenance.json").read_text())


@dataclass
class Case:
    name: str
    data: Callable[[np.random.Generator], dict]
    entry: str = "model"
    #: ``{"auto": ...}`` (an autoguide of the job spec) or ``{"entry": name}`` (a guide in the same source)
    guide: dict = field(default_factory=lambda: {"auto": "AutoNormal"})
    elbo: dict = field(default_factory=lambda: {"name": "Trace_ELBO"})
    steps: int = 3
    seed: int = 0
    lr: float = 0.01

    @property
    def source(self) -> str:
        return (MODELS / f"{self.name}.py").read_text()

    def spec(self) -> dict:
        guide = dict(self.guide)
        if "entry" in guide:
            guide = {"source": self.source, "entry": guide["entry"]}
        return {
            "model": {"source": self.source, "entry": self.entry},
            "guide": guide,
            "inference": {"elbo": self.elbo, "optimizer": {"name": "Adam", "lr": self.lr},
                          "steps": self.steps, "seed": self.seed, "jit": False,
                          "checkpoint_every_s": None,
                          # Pyro's own loop on both sides: the fast path draws its noise
                          # differently (its ELBO equality is tested in tests/inference/engine),
                          # and every step is compared, so no early stop.
                          "fast_path": False, "stop": "steps"},
            "outputs": {"num_samples": 2, "elbo_terms_every": 0, "elbo_terms_particles": 1,
                        "grad_norms_every": 0, "log_prob_draws": 2, "log_probs": False},
        }


class Record(dict):
    """The reference's stand-in for a nested data field: items and attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def reference_value(value: Any) -> Any:
    """Data as ``bind_data`` converts it (float32 / int64 / bool tensors, numbers kept)."""
    if isinstance(value, dict):
        return Record({k: reference_value(v) for k, v in value.items()})
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    array = np.asarray(value)
    if array.ndim == 0:
        return array.item()
    if array.dtype.kind == "f":
        return torch.as_tensor(array).to(torch.float32)
    if array.dtype.kind in "iu":
        return torch.as_tensor(array.astype(np.int64))
    return torch.as_tensor(array)


def _resolve(namespace: dict, entry: str) -> Any:
    obj = namespace[entry.split(".")[0]]
    for part in entry.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def _params(fn: Callable) -> set[str] | None:
    import inspect

    if isinstance(fn, torch.nn.Module):
        fn = fn.forward
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def run_pyro(case: Case) -> list[float]:
    from inference.engine.global_state import isolated, seed_all
    from inference.engine.guides import build_guide
    from inference.spec import JobSpec

    spec = JobSpec.model_validate(case.spec())
    data = {k: reference_value(v) for k, v in case.data(np.random.default_rng(case.seed)).items()}
    with isolated(seed=case.seed, float_dtype=torch.float32):
        pyro.clear_param_store()
        seed_all(case.seed)
        namespace: dict = {"__name__": f"corpus_{case.name}"}
        exec(compile(case.source, f"<corpus {case.name}>", "exec"), namespace)  # trusted test code
        model = _resolve(namespace, case.entry)
        names = _params(model)
        model_kw = {k: v for k, v in data.items() if names is None or k in names}
        if "entry" in case.guide:
            guide = _resolve(namespace, case.guide["entry"])
            gnames = _params(guide)
            guide_kw = {k: v for k, v in data.items() if gnames is None or k in gnames}
        else:
            guide = build_guide(spec.guide, model, float_dtype=torch.float32, device=torch.device("cpu"))
            guide_kw = model_kw

        def model_call(**kw: Any) -> Any:
            return model(**{k: v for k, v in kw.items() if k in model_kw})

        def guide_call(**kw: Any) -> Any:
            return guide(**{k: v for k, v in kw.items() if k in guide_kw})

        kwargs = {**guide_kw, **model_kw}
        pyro.enable_validation(False)
        pyro.clear_param_store()
        seed_all(case.seed)
        with poutine.block():
            trace = poutine.trace(guide_call).get_trace(**kwargs)
            poutine.trace(poutine.replay(model_call, trace=trace)).get_trace(**kwargs)
        elbo_cls = getattr(pyro.infer, spec.inference.elbo.name)
        options = {"num_particles": spec.inference.elbo.num_particles or 1}
        if spec.inference.elbo.max_plate_nesting is not None:
            options["max_plate_nesting"] = spec.inference.elbo.max_plate_nesting
        svi = pyro.infer.SVI(model_call, guide_call, pyro.optim.Adam({"lr": case.lr}), elbo_cls(**options))
        return [float(svi.step(**kwargs)) for _ in range(case.steps)]


def run_vihub(case: Case) -> list[float]:
    from inference import fit

    result = fit(case.spec(), case.data(np.random.default_rng(case.seed)))
    return [float(x) for x in result.loss[: case.steps]]


def losses_match(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-4) for x, y in zip(a, b)
    )
