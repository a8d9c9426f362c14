"""GPU check: CUDA vs CPU on a large minibatched logistic regression and a VAE, and one
job through the ``gpu`` queue end to end. Part of ``bench/gpu_check.sh``.

1. Logistic regression N x D (default 1,000,000 x 100), ``subsample_size`` minibatches,
   the data on the device: ``run_svi`` steps/s on cuda and on cpu; ratio cuda/cpu.
2. VAE 784-400-20 on N x 784 synthetic binary digits, minibatches of 256, bare Pyro
   SVI: steps/s on cuda and on cpu; ratio cuda/cpu.
3. A job submitted to the ``gpu`` queue: an embedded store (SQLite + the SQLAlchemy
   broker) and ``celery worker -Q gpu`` (what ``vihub worker --queues gpu`` runs); the job
   asks for ``device: cuda`` (``auto`` on a machine without CUDA) and must succeed; prints
   the device its result reports.

Without CUDA everything runs on the CPU at small sizes and says so: the ratios are then
cpu/cpu (about 1) and only show that the script works.

    python bench/bench_gpu.py [--n 1000000] [--d 100] [--batch 10000] [--steps 300] [--jit]
                              [--vae-n 60000] [--vae-steps 200] [--skip-job]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro.infer.autoguide import AutoNormal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from live_deploy import stop  # noqa: E402
from inference.engine.loop import device_scope, run_svi  # noqa: E402
from inference.spec import InferenceSpec, OptimizerSpec  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# -- 1. logistic regression ----------------------------------------------------------------


def model(X, y, batch_size):
    D = X.shape[1]
    w = pyro.sample("w", dist.Normal(torch.zeros(D, device=X.device), 1.0).to_event(1))
    b = pyro.sample("b", dist.Normal(torch.zeros((), device=X.device), 1.0))
    with pyro.plate("data", X.shape[0], subsample_size=batch_size, device=X.device) as idx:
        logits = X[idx] @ w + b
        pyro.sample("obs", dist.Bernoulli(logits=logits), obs=y[idx])


def make_data(n: int, d: int, device: torch.device, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g) / d**0.5
    y = (torch.rand(n, generator=g) < torch.sigmoid(X @ w)).float()
    return X.to(device), y.to(device)


def run(device: torch.device, X, y, batch: int, steps: int, jit: bool) -> tuple[float, float]:
    spec = InferenceSpec(steps=steps, optimizer=OptimizerSpec(lr=0.01), jit=jit, device=device.type,
                         progress_every_steps=steps)
    with device_scope(device):
        data = {"X": X, "y": y, "batch_size": batch}
        guide = AutoNormal(model)
        sync(device)
        t0 = time.perf_counter()
        result = run_svi(model, guide, data, spec)
        sync(device)
        elapsed = time.perf_counter() - t0
    pyro.clear_param_store()
    return result.steps_done / elapsed, result.losses[-1]


# -- 2. VAE ------------------------------------------------------------------------------


def vae_rate(device: torch.device, x_cpu: torch.Tensor, batch: int, steps: int) -> float:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    decoder = nn.Sequential(nn.Linear(20, 400), nn.Softplus(), nn.Linear(400, 784)).to(device)
    encoder = nn.Sequential(nn.Linear(784, 400), nn.Softplus(), nn.Linear(400, 40)).to(device)
    x = x_cpu.to(device)  # moved once; minibatches are indexed on the device

    def vmodel(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0], subsample_size=batch, device=device) as idx:
            z = pyro.sample("z", dist.Normal(torch.zeros(20, device=device), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x[idx])

    def vguide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0], subsample_size=batch, device=device) as idx:
            h = encoder(x[idx])
            pyro.sample("z", dist.Normal(h[:, :20], torch.exp(h[:, 20:])).to_event(1))

    svi = pyro.infer.SVI(vmodel, vguide, pyro.optim.Adam({"lr": 1e-3}), pyro.infer.Trace_ELBO())
    for _ in range(5):
        svi.step(x)  # warm-up (kernels, allocator)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        svi.step(x)
    sync(device)
    return steps / (time.perf_counter() - t0)


# -- 3. a job on the gpu queue ------------------------------------------------------------------


def gpu_queue_job(device: str, timeout_s: float = 240.0) -> None:
    home = Path(tempfile.mkdtemp(prefix="vihub-gpu-check-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
    env.update(VIHUB_HOME=str(home), PYTHONPATH=str(REPO))
    os.environ.update({k: v for k, v in env.items() if k.startswith("VIHUB_")})
    from store.db import session_factory
    from store.migrate import upgrade
    from store.models import ArtifactKind
    from store.repositories import ArtifactRepository, JobRepository, TenantRepository
    from common.settings import get_settings
    from common.broker import publish_job

    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings=settings)
    factory = session_factory(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "gpu", "--pool", "prefork",
         "--concurrency", "1", "--max-tasks-per-child", "20", "--without-mingle", "--without-gossip",
         "--loglevel", "WARNING"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        spec = {"version": 1, "model": {"catalog": "logistic_regression"}, "guide": {"auto": "AutoNormal"},
                "inference": {"steps": 300, "seed": 0, "device": device, "optimizer": {"name": "Adam", "lr": 0.05}},
                "outputs": {"num_samples": 100}}
        from inference import catalog
        from common.arrays import encode_arrays
        from store.repositories import DatasetRepository

        encoded = encode_arrays(dict(catalog.get("logistic_regression").example_data))
        with factory.begin() as s:
            tenant_id = TenantRepository(s).get_or_create("gpu-check").id
            dataset, _ = DatasetRepository(s).get_or_create(tenant_id, encoded.sha256, encoded.content,
                                                            encoded.fields, "inline")
            job_id = JobRepository(s).create(tenant_id=tenant_id, spec=spec, dataset_id=dataset.id, queue="gpu").id
        t0 = time.perf_counter()
        publish_job(job_id, "gpu", settings)
        while True:
            with factory.begin() as s:
                row = JobRepository(s).get(job_id)
            if row.state in ("succeeded", "failed", "cancelled"):
                break
            if time.perf_counter() - t0 > timeout_s:
                raise SystemExit(f"[gpu-queue] job {job_id} did not finish in {timeout_s:.0f} s (state {row.state})")
            time.sleep(0.5)
        if row.state != "succeeded":
            raise SystemExit(f"[gpu-queue] job ended {row.state}: {row.error}")
        with factory.begin() as s:
            meta = json.loads(ArtifactRepository(s).get_content(job_id, ArtifactKind.RESULT_JSON))["meta"]
        print(f"[gpu-queue] job {job_id} on the gpu queue: succeeded in {time.perf_counter() - t0:.1f} s, "
              f"device {meta.get('device')!r} (asked {device!r})")
    finally:
        stop(worker)  # the worker's whole process group, TERM then KILL
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="rows (default 1,000,000 on CUDA, 100,000 on CPU)")
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=None, help="default 300 on CUDA, 50 on CPU")
    parser.add_argument("--jit", action="store_true", help="use the JIT ELBO on both devices")
    parser.add_argument("--vae-n", type=int, default=None, help="default 60,000 on CUDA, 5,000 on CPU")
    parser.add_argument("--vae-steps", type=int, default=None, help="default 200 on CUDA, 20 on CPU")
    parser.add_argument("--skip-job", action="store_true")
    args = parser.parse_args()
    cuda_ok = torch.cuda.is_available()
    if cuda_ok:
        other = torch.device("cuda")
        print(f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.cuda.get_device_name(0)}, "
              f"cpu threads {torch.get_num_threads()}")
    else:
        other = torch.device("cpu")
        print("bench_gpu: CUDA is NOT available on this machine: running every part on the CPU at small "
              "sizes; the ratios below are cpu/cpu and measure no GPU speed-up.")
    n = args.n or (1_000_000 if cuda_ok else 100_000)
    steps = args.steps or (300 if cuda_ok else 50)
    name = other.type

    print(f"[logistic] {n} x {args.d}, minibatch {args.batch}, {steps} steps, jit={args.jit}")
    X_cpu, y_cpu = make_data(n, args.d, torch.device("cpu"))
    X_o, y_o = X_cpu.to(other), y_cpu.to(other)
    run(other, X_o, y_o, args.batch, 10, args.jit)  # warm-up: CUDA context, kernels
    other_rate, other_loss = run(other, X_o, y_o, args.batch, steps, args.jit)
    cpu_rate, cpu_loss = run(torch.device("cpu"), X_cpu, y_cpu, args.batch, steps, args.jit)
    print(f"[logistic] cpu : {cpu_rate:8.1f} steps/s (final loss {cpu_loss:.1f}); "
          f"{name}: {other_rate:8.1f} steps/s (final loss {other_loss:.1f}); ratio {name}/cpu {other_rate / cpu_rate:.2f}")

    sys.path.insert(0, str(REPO / "bench"))
    from bench_large import digits

    vae_n = args.vae_n or (60_000 if cuda_ok else 5_000)
    vae_steps = args.vae_steps or (200 if cuda_ok else 20)
    x = torch.as_tensor(digits(vae_n))
    other_vae = vae_rate(other, x, 256, vae_steps)
    cpu_vae = vae_rate(torch.device("cpu"), x, 256, vae_steps)
    print(f"[vae] {vae_n} x 784, minibatch 256, {vae_steps} steps: cpu {cpu_vae:.1f} steps/s, {name} "
          f"{other_vae:.1f} steps/s; ratio {name}/cpu {other_vae / cpu_vae:.2f}")

    if not args.skip_job:
        gpu_queue_job("cuda" if cuda_ok else "auto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
