# %% [markdown]
# # Eight schools on vihub
#
# Fit the classic eight-schools hierarchical model (Rubin 1981) from vihub's catalog, with
# the non-centered parameterisation, and look at the posterior with ArviZ.
#
# Run it as a script (`python examples/eight_schools.py`) or cell by cell in an editor that
# understands `# %%` cells. It needs a running server (`vihub up` starts one locally) and
# `pip install './client[arviz]'`. Set `VIHUB_URL` / `VIHUB_API_KEY` for a remote server.

# %%
import arviz as az
from vihub_client import Client

client = Client()
entry = client.catalog_entry("eight_schools_noncentered")
print(entry["description"])
print(entry["source"])
print("data:", {k: v for k, v in entry["example_data"].items()})

# %% [markdown]
# Submit with the catalog's example data (no `data=` needed), a mean-field normal guide and
# the plain Monte Carlo ELBO. The job id and its settings are on the server: another process
# can pick it up with `client.job(job_id)`.

# %%
job = client.submit(
    "catalog:eight_schools_noncentered",
    guide="AutoNormal",
    inference={"elbo": "Trace_ELBO", "optimizer": {"name": "Adam", "lr": 0.05}, "steps": 3000, "seed": 0},
    outputs={"num_samples": 2000},
    labels={"example": "eight_schools"},
)
print(job)

# %%
job.wait(progress=True)  # step, loss, it/s and ETA while the worker trains
print(job.state, "in", job.finished_at - job.started_at)

# %% [markdown]
# The service's own summary (mean, sd and 5/50/95% quantiles per latent site) and its
# diagnostics: the Pareto k-hat of the importance weights says whether the variational
# approximation can be trusted (< 0.5 good, < 0.7 ok, otherwise unreliable).

# %%
summary = job.summary()
for site in ("mu", "tau"):
    s = summary[site]
    print(f"{site:>4}: mean {s['mean']:.2f}  sd {s['sd']:.2f}  90% [{s['q05']:.2f}, {s['q95']:.2f}]")
diagnostics = job.diagnostics()
print("k-hat:", diagnostics.get("k_hat"), diagnostics.get("k_hat_reading"))
for warning in diagnostics.get("warnings", []):
    print("warning:", warning)

# %%
loss = job.loss(max_points=200)
print(f"loss: {loss['loss'][0]:.1f} at step {loss['steps'][0]} -> {loss['loss'][-1]:.1f} at step {loss['steps'][-1]}")

# %% [markdown]
# The posterior draws as ArviZ InferenceData: posterior (latent and deterministic sites),
# sample_stats (log p(x, z), log q, the log importance weight) and, when the job has them,
# pointwise log-likelihoods and posterior predictive draws.

# %%
idata = job.to_arviz()
print(idata)
print(az.summary(idata, var_names=["mu", "tau", "theta"], kind="stats"))

# %%
# Everything on disk: params (JSON, safetensors, Pyro's param store), the loss curve,
# samples (NPZ and netCDF), log-probs, diagnostics and the summary.
paths = job.download("eight_schools_results")
print(sorted(paths))
client.close()
