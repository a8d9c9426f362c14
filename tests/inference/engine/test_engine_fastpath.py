"""The fast path: the same ELBO as Pyro's for the same params and draws, on every catalog
model it accepts; its guide draws; when it is (not) taken; checkpoints and resume."""

import math

import pytest
import torch
import pyro
from pyro import poutine

from engine_models import EIGHT_SCHOOLS, eight_schools, spec
from inference import catalog
from inference.engine.elbos import build_elbo, infer_max_plate_nesting
from inference.engine.fastpath import FastTrainer, plan
from inference.engine.guides import build_guide
from inference.engine.loop import FitCallbacks, run_svi
from inference.language import bind_data, compile_source
from inference.spec import AutoGuideSpec, ElboSpec, InferenceSpec

GUIDES = ["AutoNormal", "AutoDiagonalNormal", "AutoMultivariateNormal", "AutoLowRankMultivariateNormal",
          "AutoDelta", "AutoLaplaceApproximation"]
ELBOS = ["Trace_ELBO", "TraceMeanField_ELBO", "TraceGraph_ELBO"]


def _setup(model, data, guide_name, elbo=ElboSpec()):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = build_guide(AutoGuideSpec(auto=guide_name), model)
    mpn = infer_max_plate_nesting(model, guide, data)
    with poutine.block():
        gt = poutine.trace(guide).get_trace(**data)
        mt = poutine.trace(poutine.replay(model, trace=gt)).get_trace(**data)
    problem, report = plan(InferenceSpec(elbo=elbo), guide, model, (), data, data, mpn, mt, gt)
    return guide, mpn, problem, report


def _perturbed(problem):
    """Params away from their init (scales != init_scale, correlations != 0)."""
    phi = problem.read_store() + 0.3 * torch.randn(problem.num_params, generator=torch.Generator().manual_seed(1))
    problem.write_store(phi)
    return phi


def _catalog_program(name):
    entry = catalog.get(name)
    program = compile_source(entry.source, entry.entry)
    return program, bind_data(program, entry.example_data).kwargs


ACCEPTED = []
for _name in catalog.names():
    _entry = catalog.get(_name)
    _guide = _entry.suggested.get("guide", {})
    if "auto" in _guide and not _guide.get("expose") and not _guide.get("hide"):
        ACCEPTED.append(_name)


@pytest.mark.parametrize("name", ACCEPTED)
@pytest.mark.parametrize("guide_name", GUIDES)
def test_fast_elbo_equals_pyro_elbo_on_catalog_models(name, guide_name):
    program, data = _catalog_program(name)
    guide, mpn, problem, report = _setup(program, data, guide_name)
    assert report.taken, report.reason
    phi = _perturbed(problem)
    for elbo_name in ELBOS:
        elbo = build_elbo(ElboSpec(name=elbo_name), max_plate_nesting=mpn)
        for seed in range(2):
            pyro.set_rng_seed(seed)
            pyro_loss = elbo.loss(program, guide, **data)
            pyro.set_rng_seed(seed)
            u = problem.latent_from_guide_trace(poutine.trace(guide).get_trace(**data))
            for vectorized in {False, report.vectorized}:
                fast = -float(problem.log_weights(phi, u, vectorized))
                assert fast == pytest.approx(pyro_loss, rel=1e-4, abs=1e-3), (elbo_name, vectorized)


@pytest.mark.parametrize("guide_name", ["AutoNormal", "AutoMultivariateNormal"])
def test_fast_renyi_equals_pyro_renyi(guide_name):
    program, data = _catalog_program("eight_schools_noncentered")
    elbo_spec = ElboSpec(name="RenyiELBO", alpha=0.5, num_particles=3)
    guide, mpn, problem, report = _setup(program, data, guide_name, elbo_spec)
    phi = _perturbed(problem)
    elbo = build_elbo(elbo_spec, max_plate_nesting=mpn)
    pyro.set_rng_seed(3)
    pyro_loss = elbo.loss(program, guide, **data)
    pyro.set_rng_seed(3)  # Pyro's non-vectorised particles: three guide traces in turn
    u = torch.cat([problem.latent_from_guide_trace(poutine.trace(guide).get_trace(**data)) for _ in range(3)])
    w = 0.5 * problem.log_weights(phi, u, report.vectorized)
    fast = -float((torch.logsumexp(w, 0) - math.log(3)) / 0.5)
    assert fast == pytest.approx(pyro_loss, rel=1e-4)


@pytest.mark.parametrize("guide_name", GUIDES[:4])
def test_fast_draws_have_the_guide_moments(guide_name):
    program, data = _catalog_program("eight_schools_noncentered")
    guide, mpn, problem, report = _setup(program, data, guide_name)
    phi = _perturbed(problem)
    q = problem.unpack(phi)
    u = problem.sample(q, torch.randn(40_000, problem.noise_dim(), generator=torch.Generator().manual_seed(0)), phi)
    if guide_name == "AutoNormal":
        loc = torch.cat([pyro.param(f"AutoNormal.locs.{s.name}").reshape(-1) for s in problem.sites])
        cov = torch.diag(torch.cat([pyro.param(f"AutoNormal.scales.{s.name}").reshape(-1)
                                    for s in problem.sites]) ** 2)
    else:
        posterior = guide.get_posterior()
        loc = posterior.mean
        cov = (posterior.covariance_matrix if hasattr(posterior, "covariance_matrix")
               else torch.diag(posterior.variance))
    assert torch.allclose(u.mean(0), loc.detach(), atol=0.05 * float(cov.diagonal().max().sqrt()) + 0.02)
    assert torch.allclose(torch.cov(u.T), cov.detach(), atol=0.05 * float(cov.abs().max()) + 0.01)
    # and the analytic entropy is the guide's own
    if guide_name != "AutoNormal":
        assert float(problem.entropy(q)) == pytest.approx(float(guide.get_posterior().entropy()), rel=1e-4)


def test_taken_and_declined_with_reasons():
    run = run_svi(eight_schools, build_guide(AutoGuideSpec(auto="AutoNormal"), eight_schools), EIGHT_SCHOOLS,
                  spec(steps=30).model_copy(update={"elbo": ElboSpec()}))  # num_particles not given
    assert run.fast_path["taken"] and run.fast_path["compiled"] == "fx+jit.trace"
    assert run.fast_path["particles"] >= 1 and run.fast_path["particles_auto"] is True
    cases = [
        (dict(fast_path=False), "AutoNormal", "fast_path is false"),
        (dict(elbo="TraceEnum_ELBO"), "AutoNormal", "TraceEnum_ELBO"),
        (dict(jit=True), "AutoNormal", "JIT"),
        (dict(decay_to=0.5), "AutoNormal", "scheduler"),
        ({}, "AutoIAFNormal", "not a Gaussian-family"),
    ]
    for kwargs, guide_name, reason in cases:
        guide = build_guide(AutoGuideSpec(auto=guide_name), eight_schools)
        run = run_svi(eight_schools, guide, EIGHT_SCHOOLS, spec(steps=5, **kwargs))
        assert not run.fast_path["taken"] and reason in run.fast_path["reason"], run.fast_path


def test_user_particles_are_kept_and_point_guides_use_one():
    guide = build_guide(AutoGuideSpec(auto="AutoNormal"), eight_schools)
    run = run_svi(eight_schools, guide, EIGHT_SCHOOLS, spec(steps=5, particles=3))
    assert run.fast_path["particles"] == 3 and not run.fast_path["particles_auto"]
    guide = build_guide(AutoGuideSpec(auto="AutoDelta"), eight_schools)
    run = run_svi(eight_schools, guide, EIGHT_SCHOOLS, spec(steps=5))
    assert run.fast_path["particles"] == 1


def test_jit_trace_and_eager_train_the_same():
    losses = {}
    for mode in ("auto", "eager"):
        pyro.clear_param_store()
        _, _, problem, report = _setup(eight_schools, EIGHT_SCHOOLS, "AutoNormal")
        pyro.set_rng_seed(0)
        trainer = FastTrainer(problem, spec(steps=50), 4, True, report, compile_mode=mode)
        losses[mode] = trainer.run(50)
    assert report.compiled == "eager"
    assert losses["auto"] == pytest.approx(losses["eager"], rel=1e-4)


@pytest.mark.parametrize("guide_name", ["AutoNormal", "AutoMultivariateNormal", "AutoDelta"])
def test_fast_path_resume_equals_uninterrupted(guide_name):
    inference = spec(steps=50, checkpoint_every_s=1e-9, progress_every_steps=10, progress_every_s=1e9)
    blobs = []
    full = run_svi(eight_schools, build_guide(AutoGuideSpec(auto=guide_name), eight_schools), EIGHT_SCHOOLS,
                   inference, callbacks=FitCallbacks(on_checkpoint=lambda blob, step: blobs.append((step, blob))),
                   grad_norms_every=10)
    assert full.fast_path["taken"]
    full_params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    step, blob = blobs[1]
    resumed = run_svi(eight_schools, build_guide(AutoGuideSpec(auto=guide_name), eight_schools), EIGHT_SCHOOLS,
                      inference, resume_from=blob, grad_norms_every=10)
    assert resumed.resumed_from_step == step == 20
    assert resumed.losses == full.losses and resumed.grad_norms == full.grad_norms
    for name, value in pyro.get_param_store().items():
        assert torch.equal(value, full_params[name]), name


def test_a_general_path_checkpoint_resumes_on_the_fast_path():
    inference = spec(steps=40, checkpoint_every_s=1e-9, progress_every_steps=10, progress_every_s=1e9)
    blobs = []
    run_svi(eight_schools, build_guide(AutoGuideSpec(auto="AutoNormal"), eight_schools), EIGHT_SCHOOLS,
            inference.model_copy(update={"fast_path": False}),
            callbacks=FitCallbacks(on_checkpoint=lambda blob, step: blobs.append(blob)))
    resumed = run_svi(eight_schools, build_guide(AutoGuideSpec(auto="AutoNormal"), eight_schools), EIGHT_SCHOOLS,
                      inference, resume_from=blobs[0])
    assert resumed.fast_path["taken"] and resumed.resumed_from_step == 10 and resumed.steps_done == 40
    assert [d["code"] for d in resumed.diagnostics] == ["resume_optimizer_reset"]


def test_map_init_starts_at_the_laplace_approximation_or_says_why_not():
    program, data = _catalog_program("linear_regression")
    run = run_svi(program, build_guide(AutoGuideSpec(auto="AutoNormal"), program), data,
                  spec(steps=1, lr=1e-6, map_init=True))
    assert run.fast_path["map_init"]["applied"], run.fast_path["map_init"]
    # one tiny step from the Laplace approximation: the locs are the least-squares fit
    alpha, beta = pyro.param("AutoNormal.locs.alpha").item(), pyro.param("AutoNormal.locs.beta").item()
    assert alpha == pytest.approx(86.8, abs=1.0) and beta == pytest.approx(0.61, abs=0.05)
    centered, data = _catalog_program("eight_schools_centered")  # a funnel: no MAP
    run = run_svi(centered, build_guide(AutoGuideSpec(auto="AutoNormal"), centered), data,
                  spec(steps=1, map_init=True))
    assert not run.fast_path["map_init"]["applied"] and run.fast_path["map_init"]["reason"]


@pytest.mark.parametrize("guide_name", ["AutoNormal", "AutoMultivariateNormal"])
def test_fast_gradient_matches_pyros_in_expectation(guide_name):
    # Analytic entropy in the surrogate changes the estimator, not its expectation.
    program, data = _catalog_program("eight_schools_noncentered")
    guide, mpn, problem, report = _setup(program, data, guide_name)
    phi = _perturbed(problem)
    trainer = FastTrainer(problem, InferenceSpec(), 8000, report.vectorized, report, compile_mode="eager")
    _, fast = trainer._loss_and_grad(phi, torch.randn(8000, problem.noise_dim()))
    from pyro.infer import Trace_ELBO

    Trace_ELBO(num_particles=8000, vectorize_particles=True, max_plate_nesting=mpn).loss_and_grads(
        program, guide, **data)
    store = pyro.get_param_store()._params
    slow = torch.cat([store[p.name].grad.reshape(-1) for p in problem.params])
    assert torch.allclose(fast, slow, atol=0.03 * float(slow.abs().max()) + 0.01)


@pytest.mark.parametrize("name", ACCEPTED)
@pytest.mark.parametrize("guide_name", GUIDES)
def test_compiled_graph_equals_eager_on_catalog_models(name, guide_name):
    """The recorded, simplified (graph_passes) and TorchScript-replayed loss and gradient are
    the eager function's at points away from the one it was recorded at — and the job is
    compiled, not silently left eager."""
    program, data = _catalog_program(name)
    guide, mpn, problem, report = _setup(program, data, guide_name)
    with pyro.validation_enabled(False):  # as run_svi trains
        trainer = FastTrainer(problem, InferenceSpec(), report.particles, report.vectorized, report)
        assert report.compiled == "fx+jit.trace", name
        gen = torch.Generator().manual_seed(2)
        for scale in (0.2, 1.0):
            phi = problem.read_store() + scale * torch.randn(problem.num_params, generator=gen)
            eps = torch.randn(report.particles, problem.noise_dim(), generator=gen)
            loss, grad = trainer.fn(phi, eps)
            eager_loss, eager_grad = trainer._loss_and_grad(phi, eps)
            assert float(loss) == pytest.approx(float(eager_loss), rel=1e-4, abs=1e-4)
            assert torch.allclose(grad, eager_grad, rtol=1e-4, atol=1e-4 * (1 + float(eager_grad.abs().max())))


@pytest.mark.parametrize("optimizer", [dict(name="Adam", lr=0.05), dict(name="Adam", lr=0.02, weight_decay=0.1),
                                       dict(name="AdamW", lr=0.05, weight_decay=0.1),
                                       dict(name="Adam", lr=0.05, betas=(0.8, 0.99), eps=1e-6)])
def test_scripted_steps_equal_torch_adam(optimizer):
    """The TorchScript step loop (noise, graph, Adam in place) trains as torch's optimizer
    stepped from Python does: same draws, same losses, same params, same optimizer state."""
    from inference.spec import OptimizerSpec

    inference = InferenceSpec(optimizer=OptimizerSpec(**optimizer))
    runs = {}
    for scripted in (True, False):
        pyro.clear_param_store()
        _, _, problem, report = _setup(eight_schools, EIGHT_SCHOOLS, "AutoNormal")
        with pyro.validation_enabled(False):
            trainer = FastTrainer(problem, inference, 4, True, report)
        assert trainer.steps_loop is not None
        if not scripted:
            trainer.steps_loop = None
        pyro.set_rng_seed(5)
        losses = trainer.run(40) + trainer.run(25)
        state = trainer.optimizer.state[trainer.phi]
        runs[scripted] = (losses, trainer.phi.detach().clone(), state["exp_avg_sq"].clone(), float(state["step"]))
    (l1, p1, v1, s1), (l2, p2, v2, s2) = runs[True], runs[False]
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-4)
    assert torch.allclose(p1, p2, atol=1e-5) and torch.allclose(v1, v2, rtol=1e-4, atol=1e-7) and s1 == s2 == 65


def test_scripted_steps_stop_at_a_nonfinite_loss_without_applying_it():
    pyro.clear_param_store()
    _, _, problem, report = _setup(eight_schools, EIGHT_SCHOOLS, "AutoNormal")
    with pyro.validation_enabled(False):
        trainer = FastTrainer(problem, InferenceSpec(), 2, True, report)
    trainer.run(3)
    with torch.no_grad():
        trainer.phi[0] = float("nan")
    before = trainer.phi.detach().clone()
    losses = trainer.run(10)
    assert len(losses) == 1 and math.isnan(losses[0])
    assert torch.equal(trainer.phi.detach().isnan(), before.isnan())
    assert float(trainer.optimizer.state[trainer.phi]["step"]) == 3
    assert problem.params[0].name in trainer.bad_params()  # the param made NaN is named
