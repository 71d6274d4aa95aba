"""``/analyses/{id}/explanations``: why a segment sounded as it did, and the figures that show it.

Present for analyses queued with ``options.explain = true``, once they completed.
"""

from __future__ import annotations

import json
import re

from fastapi import APIRouter
from fastapi.responses import FileResponse

from emotivoice.service.deps import Owner, StoreDep
from emotivoice.service.errors import NotFoundError
from emotivoice.service.routes import API_PREFIX, ERROR_RESPONSES
from emotivoice.service.schemas import Explanations, Visualization
from emotivoice.service.storage import EXPLAIN_FOLDER

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, tags=["explanations"])

_VIS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@router.get("/analyses/{analysis_id}/explanations")
def explanations(store: StoreDep, owner: Owner, analysis_id: str) -> Explanations:
    """Per-segment explanations (window Shapley values, counterfactuals, faithfulness...)."""
    folder = store.completed_dir(owner, analysis_id) / EXPLAIN_FOLDER
    if not folder.is_dir():
        raise NotFoundError(
            f"Analysis {analysis_id} has no explanations; ask with options.explain = true."
        )
    segments = [json.loads(p.read_text()) for p in sorted(folder.glob("segment-*.json"))]
    figures = sorted(p.stem for p in folder.glob("*.png"))
    return Explanations(
        segments=segments,
        visualizations=[
            Visualization(name=f, url=f"{API_PREFIX}/analyses/{analysis_id}/visualizations/{f}.png")
            for f in figures
        ],
    )


@router.get("/analyses/{analysis_id}/visualizations/{name}.png", response_model=None)
def visualization(store: StoreDep, owner: Owner, analysis_id: str, name: str) -> FileResponse:
    folder = store.completed_dir(owner, analysis_id) / EXPLAIN_FOLDER
    path = folder / f"{name}.png"
    if not _VIS_NAME.match(name) or not path.is_file():
        raise NotFoundError(f"No visualization {name!r} for analysis {analysis_id}.")
    return FileResponse(path, media_type="image/png")
