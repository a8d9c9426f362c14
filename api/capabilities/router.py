"""``GET /v1/capabilities``: the ELBOs, guides, optimizers (with their options), result
formats and k-hat readings this server offers (public, no key needed)."""

from __future__ import annotations

from fastapi import APIRouter

from api.capabilities import service
from api.capabilities.schemas import CapabilitiesOut
from api.deps import RuntimeDep
from api.errors import problem_responses

router = APIRouter(prefix="/capabilities", tags=["capabilities"])


# A plain def: the first call per process waits for a trial-run process (in the threadpool).
@router.get("", response_model=CapabilitiesOut, summary="What this server offers",
            responses=problem_responses(500))
def get_capabilities(runtime: RuntimeDep) -> CapabilitiesOut:
    return service.capabilities(runtime.dry_runs)
