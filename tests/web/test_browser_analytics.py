"""The Análises page in a real Chromium: the heatmap painted on the BPMN diagram in its three
modes, the ECharts charts drawn and exportable (PNG and CSV), screenshots for the artifacts."""

from __future__ import annotations

import pytest

from tests.support.analytics import ANALYSIS, make_world, refresh, walk
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    login,
    screenshot,
    serve,
)

pytestmark = pytest.mark.browser


def test_heatmap_and_charts(app, client, db, settings, make, db_url) -> None:
    world = make_world(make)
    walk(client, world)
    refresh(db, settings)
    auditor = world[2]["auditor"]
    engine_name = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    with serve(app) as base, chromium() as browser:
        page = browser.new_page(locale="pt-BR", viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # A blocked inline handler (the policy's script-src 'self') or a missing file is only
        # a console error.
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.add_init_script(
            "window.print = function () { window.printed = (window.printed || 0) + 1; };"
        )
        login(page, base, auditor.email, auditor.password)
        page.goto(f"{base}/analises")
        page.wait_for_selector("#heatmap[data-ready='1']")
        for name in ("lead", "flow", "datasus", "reasons"):
            page.wait_for_selector(f"#chart-{name}[data-ready='1'] canvas")
        # Count mode: the analysis (3 completed, 1 active) carries the hottest marker.
        badge = page.locator(f".app-heat-badge[data-element='{ANALYSIS}']")
        assert badge.inner_text() == "3 · 1▶"
        assert "Avaliar solicitação de acesso: 3 concluídas, 1 ativas" in badge.get_attribute(
            "title"
        )
        assert page.locator(f"g[data-element-id='{ANALYSIS}'].app-heat-4").count() == 1
        screenshot(page, f"analytics-heatmap-count-{engine_name}")
        # Duration mode: the badge shows the median (3 h); overdue mode: 0%.
        page.click("a[data-mode='duration']")
        assert page.locator("#heatmap").get_attribute("data-mode") == "duration"
        assert badge.inner_text() == "3.0 h"
        page.click("a[data-mode='overdue']")
        assert badge.inner_text() == "0%"
        screenshot(page, f"analytics-heatmap-overdue-{engine_name}")
        # Hover shows the figures of an element in the live region.
        page.hover(f"g[data-element-id='{ANALYSIS}']")
        assert "P90 10.0 h" in page.inner_text("#heat-hover")
        # PNG from ECharts and CSV from the table.
        with page.expect_download() as png:
            page.click("button[data-png='datasus']")
        assert png.value.suggested_filename == "analises-datasus.png"
        with open(png.value.path(), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        with page.expect_download() as csv:
            page.click("button[data-csv='reasons']")
        with open(csv.value.path(), encoding="utf-8-sig") as fh:
            text = fh.read()
        assert text.splitlines()[1].startswith("ip invalido;2;")
        page.get_by_role("button", name="Imprimir").click()
        assert page.evaluate("window.printed") == 1
        assert axe_violations(page) == []
        assert errors == []
        page.locator("#lead-titulo").scroll_into_view_if_needed()
        screenshot(page, f"analytics-charts-{engine_name}")
