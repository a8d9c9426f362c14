"""The engine on CUDA against CPU: logistic regression, 1,000,000 x 100, minibatched.

The model subsamples its ``data`` plate (``subsample_size``), so each step touches one
minibatch; the data lives on the device. Both runs use ``run_svi`` with the same spec
(AutoNormal, Trace_ELBO, Adam) and print steps/s; the ratio is cuda over cpu.

    python bench/bench_gpu.py [--n 1000000] [--d 100] [--batch 10000] [--steps 300] [--jit]

Exits with status 0 and a message when CUDA is not available.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import pyro
import pyro.distributions as dist
from pyro.infer.autoguide import AutoNormal

from inference.engine.loop import device_scope, run_svi
from inference.spec import InferenceSpec, OptimizerSpec


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
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = run_svi(model, guide, data, spec)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
    pyro.clear_param_store()
    return result.steps_done / elapsed, result.losses[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--jit", action="store_true", help="use the JIT ELBO on both devices")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: CUDA is not available on this machine; nothing to measure.")
        return 0
    cuda = torch.device("cuda")
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.cuda.get_device_name(0)}, "
          f"cpu threads {torch.get_num_threads()}")
    print(f"logistic regression {args.n} x {args.d}, minibatch {args.batch}, {args.steps} steps, jit={args.jit}")
    X_cpu, y_cpu = make_data(args.n, args.d, torch.device("cpu"))
    X_gpu, y_gpu = X_cpu.to(cuda), y_cpu.to(cuda)
    run(cuda, X_gpu, y_gpu, args.batch, 10, args.jit)  # warm-up: CUDA context, kernels
    gpu_rate, gpu_loss = run(cuda, X_gpu, y_gpu, args.batch, args.steps, args.jit)
    cpu_rate, cpu_loss = run(torch.device("cpu"), X_cpu, y_cpu, args.batch, args.steps, args.jit)
    print(f"cpu : {cpu_rate:8.1f} steps/s   (final loss {cpu_loss:.1f})")
    print(f"cuda: {gpu_rate:8.1f} steps/s   (final loss {gpu_loss:.1f})")
    print(f"ratio cuda/cpu: {gpu_rate / cpu_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
