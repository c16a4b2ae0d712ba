"""Render every processes/*.bpmn to diagrams/<key>.svg and .png with bpmn-js in Chromium.

Run with `make diagrams`. diagrams/manifest.json records the SHA-256 of each BPMN the pictures
were drawn from; tests/unit/test_diagrams.py fails when a BPMN changed after its pictures.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "diagrams"
VIEWER = ROOT / "node_modules" / "bpmn-js" / "dist" / "bpmn-viewer.production.min.js"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<style>html,body{margin:0;background:#fff}#canvas{width:2400px;height:1400px}</style></head>
<body><div id="canvas"></div></body></html>"""


def bpmn_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def render(paths: list[Path]) -> dict[str, str]:
    from playwright.sync_api import sync_playwright

    if not VIEWER.exists():
        sys.exit(f"{VIEWER} não encontrado: rode `npm ci` (make diagrams faz isso).")
    manifest: dict[str, str] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for path in paths:
            page = browser.new_page(viewport={"width": 2400, "height": 1400}, device_scale_factor=1)
            page.set_content(PAGE)
            page.add_script_tag(path=str(VIEWER))
            xml = path.read_text(encoding="utf-8")
            svg = page.evaluate(
                """async (xml) => {
                    document.getElementById('canvas').innerHTML = '';
                    const viewer = new BpmnJS({container: '#canvas'});
                    const {warnings} = await viewer.importXML(xml);
                    viewer.get('canvas').zoom('fit-viewport', 'auto');
                    const {svg} = await viewer.saveSVG();
                    window.__warnings = warnings.map(w => w.message);
                    return svg;
                }""",
                xml,
            )
            warnings = page.evaluate("window.__warnings")
            if warnings:
                print(f"{path.name}: avisos do bpmn-js: {warnings}", file=sys.stderr)
            (OUT / f"{path.stem}.svg").write_text(svg, encoding="utf-8")
            # The saved SVG is cropped to the diagram; draw it alone, at 1.5x, for the PNG.
            page.set_content(f'<html><body style="margin:0;background:#fff">{svg}</body></html>')
            page.set_viewport_size({"width": 4000, "height": 2400})
            page.evaluate("""() => { const s = document.querySelector('svg');
                s.setAttribute('width', s.width.baseVal.value * 1.5);
                s.setAttribute('height', s.height.baseVal.value * 1.5); }""")
            page.locator("svg").first.screenshot(path=str(OUT / f"{path.stem}.png"))
            page.close()
            manifest[path.name] = bpmn_hash(path)
            print(f"{path.name} → diagrams/{path.stem}.svg, .png")
        browser.close()
    return manifest


def main() -> None:
    paths = sorted((ROOT / "processes").glob("*.bpmn"))
    manifest = render(paths)
    (OUT / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
