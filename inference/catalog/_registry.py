"""What the catalog knows about each built-in model besides its source and data.

One dict per model: the entry function, the data schema (dtype, shape with symbolic
sizes that name integer fields or sizes shared between fields, description), the
settings that suit it in the job-body format, and known posterior facts. Sources live
in ``models/<name>.py`` and example datasets in ``data/<name>.json``.
"""

from __future__ import annotations

from typing import Any


def _field(dtype: str, shape: list, description: str) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "description": description}


def _autoguide(
    name: str,
    *,
    lr: float,
    steps: int,
    elbo: str = "Trace_ELBO",
    elbo_options: dict[str, Any] | None = None,
    expose: list[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    guide: dict[str, Any] = {"auto": name}
    if options:
        guide["options"] = options
    if expose:
        # Autoguides do not skip enumerated discrete sites by themselves.
        guide["expose"] = expose
    return {
        "guide": guide,
        "inference": {
            "elbo": {"name": elbo, **(elbo_options or {})},
            "optimizer": {"name": "Adam", "lr": lr},
            "steps": steps,
        },
    }


_EIGHT_SCHOOLS_SCHEMA = {
    "J": _field("int", [], "number of schools"),
    "y": _field("float", ["J"], "estimated coaching effect in each school"),
    "sigma": _field("float", ["J"], "standard error of each school's estimate"),
}

# posteriordb's reference posterior for eight_schools (NUTS draws); the centered and
# non-centered forms share it.
_EIGHT_SCHOOLS_REFERENCE = {
    "source": "posteriordb reference posterior (eight_schools, NUTS)",
    "posterior": {"mu": {"mean": 4.4, "sd": 3.3}, "tau": {"mean": 3.6, "sd": 3.2}},
}

ENTRIES: dict[str, dict[str, Any]] = {
    "eight_schools_centered": {
        "data_schema": _EIGHT_SCHOOLS_SCHEMA,
        "suggested": _autoguide("AutoNormal", lr=0.05, steps=3000),
        "reference": _EIGHT_SCHOOLS_REFERENCE,
    },
    "eight_schools_noncentered": {
        "data_schema": _EIGHT_SCHOOLS_SCHEMA,
        "suggested": _autoguide("AutoNormal", lr=0.05, steps=2000),
        "reference": _EIGHT_SCHOOLS_REFERENCE,
    },
    "linear_regression": {
        "data_schema": {
            "N": _field("int", [], "number of children"),
            "mom_iq": _field("float", ["N"], "mother's IQ score"),
            "kid_score": _field("float", ["N"], "child's test score (observed)"),
        },
        # Started at the prior median: from AutoNormal's default start (alpha = 0, far
        # below the scores) the fit crawls towards alpha ~ 87.
        "suggested": _autoguide(
            "AutoNormal", lr=0.1, steps=2000, options={"init_loc_fn": "init_to_median"}
        ),
        "reference": {
            "source": "least-squares fit of the example data (the posterior under these "
            "weak priors is close to it)",
            "posterior": {
                "alpha": {"mean": 86.8},
                "beta": {"mean": 0.61},
                "sigma": {"mean": 18.3},
            },
        },
    },
    "logistic_regression": {
        "data_schema": {
            "X": _field("float", ["N", "D"], "design matrix, one row per observation"),
            "y": _field("float", ["N"], "binary outcome, 0.0 or 1.0 (observed)"),
        },
        "suggested": _autoguide("AutoNormal", lr=0.05, steps=1500),
        "reference": {
            "source": "values used to simulate the example data",
            "true_values": {"alpha": -0.5, "beta": [1.5, -1.0, 0.5]},
        },
    },
    "poisson_regression": {
        "data_schema": {
            "N": _field("int", [], "number of observations"),
            "x": _field("float", ["N"], "covariate"),
            "counts": _field("int", ["N"], "non-negative counts (observed)"),
        },
        "suggested": _autoguide("AutoNormal", lr=0.05, steps=1500),
        "reference": {
            "source": "values used to simulate the example data",
            "true_values": {"alpha": 1.0, "beta": 0.6},
        },
    },
    "hierarchical_intercept": {
        "data_schema": {
            "J": _field("int", [], "number of groups"),
            "N": _field("int", [], "number of observations"),
            "group": _field("int", ["N"], "group of each observation, 0..J-1"),
            "y": _field("float", ["N"], "outcome (observed)"),
        },
        "suggested": _autoguide("AutoNormal", lr=0.05, steps=2000),
        "reference": {
            "source": "values used to simulate the example data",
            "true_values": {"mu": 2.0, "tau": 1.0, "sigma": 0.5},
        },
    },
    "gaussian_mixture": {
        "data_schema": {
            "N": _field("int", [], "number of points"),
            "y": _field("float", ["N"], "observed points"),
        },
        "suggested": _autoguide(
            "AutoDelta",
            lr=0.05,
            steps=1000,
            elbo="TraceEnum_ELBO",
            elbo_options={"max_plate_nesting": 1},
            expose=["weights", "locs", "scales"],
        ),
        "reference": {
            "source": "maximum-likelihood fit (EM) of the example data "
            "(posteriordb low_dim_gauss_mix)",
            "posterior": {
                "weights": {"mean": [0.62, 0.38]},
                "locs": {"mean": [-2.73, 2.87]},
                "scales": {"mean": [1.03, 1.02]},
            },
        },
    },
    "hmm": {
        "data_schema": {
            "N": _field("int", [], "number of sequences"),
            "T": _field("int", [], "length of each sequence"),
            "y": _field("float", ["N", "T"], "observed sequences, one per row"),
        },
        "suggested": _autoguide(
            "AutoDelta",
            lr=0.05,
            steps=500,
            elbo="TraceEnum_ELBO",
            elbo_options={"max_plate_nesting": 1},
            expose=["probs_x", "locs", "scale"],
        ),
        "reference": {
            "source": "values used to simulate the example data",
            "true_values": {"locs": [-2.0, 0.0, 2.0], "scale": 0.5},
        },
    },
    "vae": {
        "guide_entry": "guide",
        "data_schema": {
            "x": _field("float", ["N", 16], "binary vectors, 0.0 or 1.0 (observed)"),
        },
        "suggested": {
            # The guide is the encoder written in the model's own source.
            "guide": {"source": None, "entry": "guide"},
            "inference": {
                "elbo": {"name": "Trace_ELBO"},
                "optimizer": {"name": "Adam", "lr": 0.01},
                "steps": 2000,
            },
        },
        "reference": None,
    },
    "arK": {
        "data_schema": {
            "K": _field("int", [], "order of the autoregression"),
            "T": _field("int", [], "length of the series"),
            "y": _field("float", ["T"], "observed series"),
        },
        "suggested": _autoguide("AutoNormal", lr=0.05, steps=2000),
        "reference": {
            "source": "least-squares fit of the example data",
            "posterior": {
                "alpha": {"mean": 0.0},
                "beta": {"mean": [0.69, 0.44, 0.11, -0.04, -0.30]},
                "sigma": {"mean": 0.15},
            },
        },
    },
    "garch": {
        "data_schema": {
            "T": _field("int", [], "length of the series"),
            "y": _field("float", ["T"], "observed series"),
            "sigma1": _field("float", [], "volatility at the first time point"),
        },
        "suggested": _autoguide("AutoNormal", lr=0.02, steps=2000),
        "reference": None,
    },
    "gp_pois_regr": {
        "data_schema": {
            "N": _field("int", [], "number of inputs"),
            "x": _field("float", ["N"], "input locations"),
            "k": _field("int", ["N"], "counts at each input (observed)"),
        },
        "suggested": _autoguide("AutoNormal", lr=0.05, steps=2000),
        "reference": None,
    },
}
