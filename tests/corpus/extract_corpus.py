"""Extract the corpus models from a pyro-ppl/pyro checkout (a development tool).

    python tests/corpus/extract_corpus.py --pyro-git-dir /path/to/pyro/.git

Writes ``models/<name>.py`` and ``provenance.json`` next to this file: each model is
the named top-level definitions of a tutorial cell or an example file, in order, under
the import lines a user would paste, plus the listed edits. The committed files were
made by this script at the commit recorded in provenance.json.
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import subprocess

HERE = pathlib.Path(__file__).parent

E = []
def add(name, pieces, header, footer="", edits=None, replace=(), cut=None):
    d = {"name": name, "pieces": pieces, "header": header, "footer": footer, "replace": list(replace), "cut": cut}
    if edits: d["edits"] = edits
    E.append(d)
def P(path, names, cell=None):
    return {"path": path, "names": names, "cell": cell}

HMM_H = """import torch
import torch.nn as nn
from torch.distributions import constraints

import pyro
import pyro.distributions as dist
from pyro import poutine
from pyro.ops.indexing import Vindex
from pyro.util import ignore_jit_warnings"""
for i in (1, 2, 3, 4, 6):
    add(f"hmm_model_{i}", [P("examples/hmm.py", [f"model_{i}"])], HMM_H,
        edits="imports reduced to what the model uses (argparse/logging/SVI/data loader dropped); `args` passed as a dict data field"
        + ("; an empty guide added (the example's AutoDelta has no latent sites in this model: all are params)" if i == 6 else ""),
        footer="def empty_guide(sequences, lengths, args, batch_size=None, include_prior=False):\n    pass" if i == 6 else "")
add("hmm_model_0", [P("examples/hmm.py", ["model_0"])], HMM_H,
    edits="imports reduced; `args` as a dict data field; the first line `assert not torch._C._get_tracing_state()` (a JIT-internal check) removed",
    replace=[("    assert not torch._C._get_tracing_state()\n", "")])
add("hmm_model_5", [P("examples/hmm.py", ["TonesGenerator", "tones_generator", "model_5"])], HMM_H,
    edits="imports reduced; `args` as a dict data field")
add("hmm_model_7", [P("examples/hmm.py", ["TonesGenerator", "tones_generator", "model_7"])], HMM_H,
    edits="imports reduced; `args` as a dict data field")

CJS_H = """import torch

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine"""
for i in range(1, 6):
    add(f"cjs_model_{i}", [P("examples/capture_recapture/cjs.py", [f"model_{i}"])], CJS_H)

BB_H = """import math

import torch

import pyro
from pyro.distributions import Beta, Binomial, HalfCauchy, Normal, Pareto, Uniform
from pyro.distributions.util import scalar_like"""
for n in ("fully_pooled", "not_pooled", "partially_pooled", "partially_pooled_with_logit"):
    add(f"baseball_{n}", [P("examples/baseball.py", [n])], BB_H,
        edits="imports reduced to the model's (pandas/MCMC dropped); the entry is the model function")

add("eight_schools_svi", [P("examples/eight_schools/svi.py", ["model", "guide"])],
    """import torch
from torch.distributions import constraints, transforms

import pyro
import pyro.distributions as dist""",
    footer="",
    edits="`from data import J, sigma, y` replaced by `J` passed as a data field: model and guide take `J` as a second parameter",
    replace=[("def model(data):", "def model(data, J):"), ("def guide(data):", "def guide(data, J):")])

add("lda_model", [P("examples/lda.py", ["model"])],
    """import torch
from torch import nn
from torch.distributions import constraints

import pyro
import pyro.distributions as dist""",
    edits="the model only; its amortized guide (built with functools.partial outside the model) replaced by AutoNormal; `args` as a dict data field")

add("toy_mixture_enum", [P("examples/toy_mixture_model_discrete_enumeration.py", ["model", "guide"])],
    """import torch
from torch.distributions import constraints

import pyro
import pyro.distributions as dist
from pyro.ops.indexing import Vindex""")

add("lkj_model", [P("examples/lkj.py", ["model"])],
    """import torch

import pyro
import pyro.distributions as dist""",
    edits="the model only (MCMC replaced by AutoNormal SVI)")

add("sparse_regression", [P("examples/sparse_regression.py", ["dot", "kernel", "model"])],
    """import math

import torch

import pyro
import pyro.distributions as dist
from pyro import poutine""",
    edits="the model and its helpers; `hypers` passed as a dict data field; guide AutoDelta as in the example")

add("svi_torch_pyromodule", [P("examples/svi_torch.py", ["Model"])],
    """import torch

import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule""",
    footer="model = Model(100)",
    edits="`model = Model(100)` added at the end (the example builds it in main)")

add("vae_example", [P("examples/vae/vae.py", ["Encoder", "Decoder", "VAE"])],
    """import torch
import torch.nn as nn

import pyro
import pyro.distributions as dist""",
    footer="vae = VAE(z_dim=4, hidden_dim=16)",
    edits="`vae = VAE(z_dim=4, hidden_dim=16)` added (small sizes); entries `vae.model` / `vae.guide`")

add("cvae_example", [P("examples/cvae/baseline.py", ["BaselineNet"]), P("examples/cvae/cvae.py", ["Encoder", "Decoder", "CVAE"])],
    """import torch
import torch.nn as nn
import torch.nn.functional as F

import pyro
import pyro.distributions as dist""",
    footer="baseline_net = BaselineNet(16, 16)\ncvae = CVAE(4, 16, 16, baseline_net)",
    edits="BaselineNet (from baseline.py) pasted above the CVAE; `cvae = CVAE(4, 16, 16, baseline_net)` added; entries `cvae.model` / `cvae.guide`")

add("dmm_example", [P("examples/dmm.py", ["Emitter", "GatedTransition", "Combiner", "DMM"])],
    """import torch
import torch.nn as nn

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from pyro.distributions import TransformedDistribution
from pyro.distributions.transforms import affine_autoregressive
import pyro.contrib.examples.polyphonic_data_loader as poly""",
    footer="dmm = DMM(input_dim=8, z_dim=4, emission_dim=8, transition_dim=8, rnn_dim=8, num_iafs=0)",
    edits="`dmm = DMM(...)` added with small sizes and no IAFs; entries `dmm.model` / `dmm.guide`")

add("mixed_hmm_generic", [P("examples/mixed_hmm/model.py", ["guide_generic", "model_generic"])],
    """import torch
from torch.distributions import constraints

import pyro
import pyro.distributions as dist
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.ops.indexing import Vindex""",
    edits="`config` passed as a nested dict data field")

# ---------------- tutorials
T = "tutorial/source/"
IL_H = """import torch
import pyro
import pyro.distributions as dist
import pyro.distributions.constraints as constraints"""
add("intro_simple_model", [P(T + "intro_long.ipynb", ["simple_model"], 24)], IL_H,
    edits="render_model call dropped; guide: an empty custom guide (no latent sites)",
    footer="def guide(is_cont_africa, ruggedness, log_gdp=None):\n    pass")
add("intro_model_autonormal", [P(T + "intro_long.ipynb", ["model"], 34)], IL_H, edits="render_model call dropped")
add("intro_custom_guide", [P(T + "intro_long.ipynb", ["model"], 34), P(T + "intro_long.ipynb", ["custom_guide"], 42)], IL_H,
    edits="render_model calls dropped")
add("bayes_regression_ii", [P(T + "bayesian_regression_ii.ipynb", ["model", "guide"], 7)],
    """import torch
from torch.distributions import constraints
import pyro
import pyro.distributions as dist""")
add("svi_part_i_coin", [P(T + "svi_part_i.ipynb", ["model", "guide"], 3)],
    """import math
import torch
import torch.distributions.constraints as constraints
import pyro
import pyro.distributions as dist""")
add("svi_part_iii_bernoulli_beta", [P(T + "svi_part_iii.ipynb", ["BernoulliBetaExample"], 4)],
    """import torch
import torch.distributions.constraints as constraints
import pyro
import pyro.distributions as dist
from pyro.distributions.testing.fakes import NonreparameterizedBeta""",
    footer="bbe = BernoulliBetaExample(max_steps=10)", cut=("    def do_inference", "\n\n\nbbe ="),
    edits="do_inference (training) removed from the class; `bbe = BernoulliBetaExample(max_steps=10)` added; entries `bbe.model` / `bbe.guide`")
MLE_H = """import torch
from torch.distributions import constraints
import pyro
import pyro.distributions as dist"""
add("mle_original_model", [P(T + "mle_map.ipynb", ["original_model"], 4)], MLE_H)
add("mle_model_mle", [P(T + "mle_map.ipynb", ["model_mle"], 9)], MLE_H,
    footer="def guide_mle(data):\n    pass")
add("mle_guide_map", [P(T + "mle_map.ipynb", ["original_model"], 4), P(T + "mle_map.ipynb", ["guide_map"], 26)], MLE_H)
add("mle_masked_model", [P(T + "mle_map.ipynb", ["masked_model"], 33)], MLE_H)
add("mle_uniform_prior", [P(T + "mle_map.ipynb", ["original_model_uniform_prior"], 39)], MLE_H)
EN_H = """import torch
from torch.distributions import constraints
import pyro
import pyro.distributions as dist
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.ops.indexing import Vindex"""
add("enum_chain", [P(T + "enumeration.ipynb", ["model", "guide"], 10)], EN_H, edits="the example calls (model(), elbo.loss) dropped")
add("enum_vindex", [P(T + "enumeration.ipynb", ["model", "guide"], 15)], EN_H, edits="the example calls dropped")
add("enum_plates_vindex", [P(T + "enumeration.ipynb", ["model", "guide"], 17)], EN_H, edits="the example calls dropped")
add("enum_mixture", [P(T + "enumeration.ipynb", ["model"], 19)], EN_H, edits="the example calls dropped; the guide `AutoNormal(poutine.block(model, hide=['x', 'data']))` is the job's AutoNormal with hide")
add("enum_hmm_markov", [P(T + "enumeration.ipynb", ["hmm_model"], 27)], EN_H, edits="the example call dropped; guide AutoNormal")
add("gmm_tutorial", [P(T + "gmm.ipynb", ["K", "model"], 5)], EN_H, edits="guide AutoDelta with the enumerated assignment hidden (as the tutorial's poutine.block)")
DP_H = """import torch
import torch.nn.functional as F
import pyro
from pyro.distributions import *
from torch.distributions import constraints"""
add("dpm_gaussian", [P(T + "dirichlet_process_mixture.ipynb", ["model"], 7), P(T + "dirichlet_process_mixture.ipynb", ["guide"], 9)],
    DP_H,
    footer="",
    edits="`mix_weights` pasted from its cell; T, alpha, N set as module constants (the notebook sets them as globals)",
    replace=[("def model(data):", "T = 6\nalpha = 0.1\nN = 20\n\n\ndef mix_weights(beta):\n    beta1m_cumprod = (1 - beta).cumprod(-1)\n    return F.pad(beta, (0, 1), value=1) * F.pad(beta1m_cumprod, (1, 0), value=1)\n\n\ndef model(data):")])
add("dpm_poisson", [P(T + "dirichlet_process_mixture.ipynb", ["model", "guide"], 16)], DP_H,
    edits="`mix_weights` pasted; T, alpha, N as module constants",
    replace=[("def model(data):", "T = 20\nalpha = 1.1\nN = 20\n\n\ndef mix_weights(beta):\n    beta1m_cumprod = (1 - beta).cumprod(-1)\n    return F.pad(beta, (0, 1), value=1) * F.pad(beta1m_cumprod, (1, 0), value=1)\n\n\ndef model(data):")])
TS_H = """import torch
import pyro
from torch.distributions import constraints
from pyro.distributions import Bernoulli, Categorical, MultivariateNormal, Normal
from pyro.distributions.util import broadcast_shape
from pyro.infer import config_enumerate
import pyro.poutine as poutine
from pyro.optim import Adam"""
add("shapes_model1", [P(T + "tensor_shapes.ipynb", ["model1"], 14)], TS_H, edits="test_model call dropped; guide: the model itself as in the tutorial (model1, model1)",
    replace=[("from pyro.optim import Adam\n", "")])
add("shapes_model2_subsample", [P(T + "tensor_shapes.ipynb", ["data", "model2"], 18)], TS_H,
    footer="def guide():\n    pass", edits="test_model call dropped; the lambda guide written as a def",
    replace=[("from pyro.optim import Adam\n", "")])
add("shapes_model3_enum", [P(T + "tensor_shapes.ipynb", ["model3"], 21)], TS_H, edits="test_model call dropped; guide: the model itself",
    replace=[("from pyro.optim import Adam\n", "")])
add("shapes_model4_pixels", [P(T + "tensor_shapes.ipynb", ["width", "height", "sparse_pixels", "enumerated", "fun", "model4", "guide4"], 25)], TS_H,
    edits="test_model calls dropped; `enumerated = False` (the first of the two runs)",
    replace=[("from pyro.optim import Adam\n", ""), ("enumerated = None  # set to either True or False below", "enumerated = False")])
JIT_H = """import torch
import pyro
import pyro.distributions as dist
from pyro import poutine"""
add("jit_normal", [P(T + "jit.ipynb", ["model"], 3)], JIT_H)
add("jit_gaussian_hmm", [P(T + "jit.ipynb", ["model"], 14)], JIT_H, edits="guide AutoDiagonalNormal exposing trans/emit_scale/emit_loc as in the tutorial")
add("predictive_deterministic", [P(T + "predictive_deterministic.ipynb", ["model"], 6), P(T + "predictive_deterministic.ipynb", ["guide"], 30)],
    """import torch
import pyro
import pyro.distributions as dist
from pyro.distributions import constraints""")
add("prior_predictive_model2", [P(T + "prior_predictive.ipynb", ["model2"], 8)],
    """import torch
import pyro
import pyro.distributions as dist""", edits="guide AutoNormal")


BR_H = """import torch
from torch import nn
import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule
from pyro.nn import PyroSample"""
add("bayes_regression_pyromodule", [P(T + "bayesian_regression.ipynb", ["BayesianRegression"], 15)], BR_H,
    footer="model = BayesianRegression(3, 1)", edits="`model = BayesianRegression(3, 1)` as in the tutorial; guide AutoDiagonalNormal as in the tutorial")
add("vae_tutorial", [P(T + "vae.ipynb", ["Decoder"], 9), P(T + "vae.ipynb", ["Encoder"], 11), P(T + "vae.ipynb", ["VAE"], 17)],
    """import torch
import torch.nn as nn
import pyro
import pyro.distributions as dist""",
    footer="vae = VAE(z_dim=4, hidden_dim=16)", edits="`vae = VAE(z_dim=4, hidden_dim=16)` added (the tutorial builds it in its training cell); entries vae.model / vae.guide")
PL_H = """import math
import torch
import torch.nn as nn
import torch.nn.functional as F
import pyro
import pyro.distributions as dist"""
add("prodlda_multinomial", [P(T + "prodlda.ipynb", ["model"], 2)], PL_H, edits="the MCMC lines dropped (AutoNormal SVI instead)")
add("prodlda_categorical", [P(T + "prodlda.ipynb", ["model"], 5)], PL_H, edits="the MCMC lines dropped (AutoNormal SVI instead)")
add("prodlda", [P(T + "prodlda.ipynb", ["Encoder", "Decoder", "ProdLDA"], 16)], PL_H,
    footer="prodLDA = ProdLDA(vocab_size=12, num_topics=3, hidden=8, dropout=0.2)",
    edits="`prodLDA = ProdLDA(...)` added with small sizes (the tutorial builds it in its training cell); TraceMeanField_ELBO as in the tutorial")
MOD_H = """import torch
import torch.nn as nn
from torch.distributions import constraints
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from pyro.nn import PyroModule, PyroParam, PyroSample"""
add("modules_bayesian_linear", [P(T + "modules.ipynb", ["BayesianLinear"], 21), P(T + "modules.ipynb", ["Model"], 26)], MOD_H,
    footer="model = Model(5, 2)", edits="`model = Model(5, 2)` added")
add("modules_local_model", [P(T + "modules.ipynb", ["NormalModel", "LocalModel"], 24)], MOD_H,
    footer="model = LocalModel()", edits="the example calls dropped; `model = LocalModel()` added")
add("modules_global_model", [P(T + "modules.ipynb", ["NormalModel", "GlobalModel"], 24)], MOD_H,
    footer="model = GlobalModel()", edits="the example calls dropped; `model = GlobalModel()` added")
add("modules_pyrosample_lambda", [P(T + "modules.ipynb", ["Model"], 30)], MOD_H,
    footer="model = Model()", edits="the example call `Model()()` replaced by `model = Model()`")
add("sparse_gamma_def", [P("examples/sparse_gamma_def.py", ["rand_tensor", "SparseGammaDEF"])],
    """import torch
from torch.nn.functional import softplus

import pyro
from pyro.distributions import Gamma, Normal, Poisson""",
    footer="sgdef = SparseGammaDEF()", edits="`sgdef = SparseGammaDEF()` added; entries sgdef.model / sgdef.guide; numpy/wget/data loading dropped")


ST_H = """import math
import torch
import pyro
import pyro.distributions as dist
from torch.distributions import constraints
from pyro import poutine
from pyro.infer.reparam import DiscreteCosineReparam, StableReparam"""
add("stable_volatility", [P(T + "stable.ipynb", ["model"], 14), P(T + "stable.ipynb", ["reparam_model"], 16)], ST_H,
    edits="the data loading dropped; `reparam_model = poutine.reparam(model, {...})` kept as in the tutorial (entry `reparam_model`)")
LG_H = """import torch
import pyro
import pyro.distributions as dist"""
for n, cell in (("basic_model", 17), ("regional_model", 32), ("regional_model2", 38)):
    add(f"logistic_growth_{n}", [P(T + "logistic-growth.ipynb", [n], cell)], LG_H,
        footer="", edits="the notebook global `dataset` (only its `time_step_days` is used) defined as a top-level dict",
        replace=[(f"def {n}(counts):", f"dataset = {{\"time_step_days\": 14}}\n\n\ndef {n}(counts):")])
MR_H = """import torch
import torch.nn.functional as F
import pyro
import pyro.distributions as dist
import pyro.distributions.constraints as constraints"""
add("rendering_lognormal", [P(T + "model_rendering.ipynb", ["model"], 3)], MR_H, edits="render_model call dropped")
add("rendering_params", [P(T + "model_rendering.ipynb", ["model"], 13)], MR_H, edits="render_model call dropped")
add("rendering_plates", [P(T + "model_rendering.ipynb", ["model"], 19)], MR_H, edits="render_model call dropped")
add("rendering_observed", [P(T + "model_rendering.ipynb", ["model"], 22)], MR_H, edits="render_model call dropped")
add("rendering_deterministic", [P(T + "model_rendering.ipynb", ["model_deterministic"], 25)], MR_H, edits="render_model call dropped")
add("intro_ii_scale_obs", [P(T + "intro_part_ii.ipynb", ["scale_obs"], 9), P(T + "intro_part_ii.ipynb", ["scale_parametrized_guide_constrained"], 20)],
    """import torch
import pyro
import pyro.distributions as dist
from torch.distributions import constraints""")
add("svi_flow_guide_model", [P(T + "svi_flow_guide.ipynb", ["prior", "likelihood", "model"], 3)],
    """import torch
from torch import Tensor
import pyro""", edits="the zuko flow guide (a third-party package) replaced by AutoNormal")
add("workflow_model", [P(T + "workflow.ipynb", ["model"], 8)],
    """import torch
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from pyro.distributions import constraints""", edits="`dataset` passed as a nested dict data field")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyro-git-dir", required=True)
    opts = parser.parse_args()
    G = opts.pyro_git_dir
    commit = subprocess.check_output(["git", "--git-dir", G, "rev-parse", "HEAD"]).decode().strip()

    def text(path, cell=None):
        raw = subprocess.check_output(["git", "--git-dir", G, "show", "HEAD:" + path]).decode()
        if cell is None:
            return raw
        nb = json.loads(raw)
        src = "".join(nb["cells"][cell]["source"])
        return "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))

    prov = {}
    for e in E:
        parts = []
        for piece in e["pieces"]:
            parts += extract(text(piece["path"], piece.get("cell")), piece["names"])
        body = e.get("header", "").strip() + "\n\n\n" + "\n\n\n".join(parts)
        if e.get("footer"):
            body += "\n\n\n" + e["footer"].strip()
        if e.get("cut"):
            a, b = e["cut"]
            i = body.index(a)
            j = body.index(b, i) if b else len(body)
            body = body[:i] + body[j:]
        for old, new in e.get("replace", []):
            assert old in body, (e["name"], old)
            body = body.replace(old, new)
        (HERE / "models" / f"{e['name']}.py").write_text(body.rstrip() + "\n")
        prov[e["name"]] = {
            "origin": sorted({p["path"] + (f" (cell {p['cell']})" if p.get("cell") is not None else "")
                              for p in e["pieces"]}),
            "commit": commit,
            "edits": e.get("edits", "imports reduced to what the model uses; training and plotting code dropped"),
        }
    (HERE / "provenance.json").write_text(json.dumps(prov, indent=1, sort_keys=True))
    print(len(prov), "models")


def extract(src: str, names: list[str]) -> list[str]:
    """The source text of the top-level definitions ``names`` (first occurrence each)."""
    tree = ast.parse(src)
    found: dict[str, str] = {}
    for node in tree.body:
        n = None
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            n = node.name
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            n = node.targets[0].id
        if n in names and n not in found:
            start = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
            found[n] = "\n".join(src.splitlines()[start - 1 : node.end_lineno])
    missing = [n for n in names if n not in found]
    assert not missing, missing
    return [found[n] for n in names]


if __name__ == "__main__":
    main()
