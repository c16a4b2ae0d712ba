"""The pictures in diagrams/ are drawn from the current BPMN files (`make diagrams`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_process_has_fresh_pictures() -> None:
    manifest = json.loads((ROOT / "diagrams" / "manifest.json").read_text(encoding="utf-8"))
    stale = []
    for bpmn in sorted((ROOT / "processes").glob("*.bpmn")):
        for ext in ("svg", "png"):
            assert (ROOT / "diagrams" / f"{bpmn.stem}.{ext}").stat().st_size > 1000, (
                f"{bpmn.stem}.{ext}"
            )
        if manifest.get(bpmn.name) != hashlib.sha256(bpmn.read_bytes()).hexdigest():
            stale.append(bpmn.name)
    assert stale == [], f"diagrams older than their BPMN (run `make diagrams`): {stale}"
    svg = (ROOT / "diagrams" / "credenciamento-rnds.svg").read_text(encoding="utf-8")
    assert "Avaliar solicitação de acesso" in svg.replace("\n", " ") or "Avaliar" in svg
