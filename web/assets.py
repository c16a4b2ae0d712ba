"""Front-end assets: copy what the pages use from node_modules into web/static/vendor.

Run by ``make`` after ``npm ci`` (``python -m web.assets``); nothing is fetched at run time
and nothing third-party is committed. Also compiles the translation catalogs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node_modules"
VENDOR = Path(__file__).resolve().parent / "static" / "vendor"

# (source under node_modules, destination under static/vendor)
COPIES = [
    ("@govbr-ds/core/dist/core.min.css", "govbr/core.min.css"),
    ("@govbr-ds/core/LICENSE", "govbr/LICENSE"),
    ("@fortawesome/fontawesome-free/css/all.min.css", "fontawesome/css/all.min.css"),
    ("@fortawesome/fontawesome-free/webfonts", "fontawesome/webfonts"),
    ("@fortawesome/fontawesome-free/LICENSE.txt", "fontawesome/LICENSE.txt"),
    (
        "bpmn-js/dist/bpmn-navigated-viewer.production.min.js",
        "bpmn-js/bpmn-navigated-viewer.production.min.js",
    ),
    ("bpmn-js/dist/assets/diagram-js.css", "bpmn-js/assets/diagram-js.css"),
    ("bpmn-js/dist/assets/bpmn-js.css", "bpmn-js/assets/bpmn-js.css"),
    ("bpmn-js/dist/assets/bpmn-font", "bpmn-js/assets/bpmn-font"),
    ("bpmn-js/LICENSE", "bpmn-js/LICENSE"),
    ("echarts/dist/echarts.min.js", "echarts/echarts.min.js"),
    ("echarts/LICENSE", "echarts/LICENSE"),
]
# Raleway is the design system's fallback for Rawline (which npm does not carry).
RALEWAY_WEIGHTS = (400, 500, 600, 700, 800)
RALEWAY_SUBSETS = ("latin", "latin-ext")
REQUIRED = [
    "govbr/core.min.css",
    "bpmn-js/bpmn-navigated-viewer.production.min.js",
    "fonts/raleway.css",
    "echarts/echarts.min.js",
]


def _raleway_css() -> str:
    faces = []
    for weight in RALEWAY_WEIGHTS:
        for subset in RALEWAY_SUBSETS:
            name = f"raleway-{subset}-{weight}-normal"
            faces.append(
                "@font-face{font-family:'Raleway';font-style:normal;font-display:swap;"
                f"font-weight:{weight};src:url(./raleway/{name}.woff2) format('woff2');"
                + ("unicode-range:U+0000-00FF,U+0131,U+0152-0153,U+02BB-02BC,U+02C6,U+02DA,U+02DC,U+0304,"
                   "U+0308,U+0329,U+2000-206F,U+20AC,U+2122,U+2191,U+2193,U+2212,U+2215,U+FEFF,U+FFFD;}"
                   if subset == "latin" else
                   "unicode-range:U+0100-02BA,U+02BD-02C5,U+02C7-02CC,U+02CE-02D7,U+02DD-02FF,U+0304,U+0308,"
                   "U+0329,U+1D00-1DBF,U+1E00-1E9F,U+1EF2-1EFF,U+2020,U+20A0-20AB,U+20AD-20C0,U+2113,"
                   "U+2C60-2C7F,U+A720-A7FF;}")
            )  # fmt: skip
    return "\n".join(faces) + "\n"


def install(node_modules: Path = NODE, vendor: Path = VENDOR) -> list[str]:
    """Copy the assets; return the missing sources (empty when everything was there)."""
    missing = []
    for source, target in COPIES:
        src, dst = node_modules / source, vendor / target
        if not src.exists():
            missing.append(source)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    fonts = vendor / "fonts" / "raleway"
    fonts.mkdir(parents=True, exist_ok=True)
    for weight in RALEWAY_WEIGHTS:
        for subset in RALEWAY_SUBSETS:
            name = f"raleway-{subset}-{weight}-normal.woff2"
            src = node_modules / "@fontsource/raleway/files" / name
            if src.exists():
                shutil.copy2(src, fonts / name)
            else:
                missing.append(f"@fontsource/raleway/files/{name}")
    (vendor / "fonts" / "raleway.css").write_text(_raleway_css(), encoding="utf-8")
    return missing


def installed(vendor: Path = VENDOR) -> bool:
    return all((vendor / path).exists() for path in REQUIRED)


def main() -> int:
    from web.i18n import compile_catalogs

    missing = install()
    compile_catalogs(force=True)
    if missing:
        print("faltam em node_modules (rode `npm ci`):", *missing, sep="\n  ", file=sys.stderr)
        return 1
    print(f"assets copiados para {VENDOR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
