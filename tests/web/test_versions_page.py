"""Administração → process versions side by side, and migrating running instances from the page."""

from __future__ import annotations

import shutil

from engine.definitions import service as definitions
from tests.support.pages import advance


def _deploy_v2(db, settings, tmp_path, *edits: tuple[str, str]) -> int:
    folder = tmp_path / "v2"
    shutil.copytree(settings.processes_dir, folder)
    bpmn = folder / "credenciamento-rnds.bpmn"
    text = bpmn.read_text(encoding="utf-8")
    for old, new in edits:
        text = text.replace(old, new)
    bpmn.write_text(text, encoding="utf-8")
    [version] = [
        d.version for d, _ in definitions.deploy_all(db, folder) if d.key == "credenciamento-rnds"
    ]
    return version


def test_versions_side_by_side_and_migration(pages, world, db, settings, tmp_path):
    advance(db, world, ["ambientar_servicos"])
    v2 = _deploy_v2(
        db, settings, tmp_path, ('name="Desenvolver conector"', 'name="Desenvolver o conector"')
    )
    admin = pages(world.users["admin"])
    page = admin.get("/administracao/processos/credenciamento-rnds/versoes")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.count('class="app-diagram app-diagram-compare"') == 2
    assert f'value="{world.instance_id}"' in html and "pode migrar" in html
    res = admin.post("/administracao/processos/credenciamento-rnds/migrar",
                     {"de": "1", "para": str(v2), "instancia": str(world.instance_id)})  # fmt: skip
    assert res.status_code == 302
    inst = admin.get(
        f"/api/v1/instances/{world.instance_id}", headers=world.users["admin"].headers
    ).json
    assert inst["version"] == v2
    # Nothing left to migrate on v1 of this organization; the other organization's was not touched.
    other = admin.get(
        f"/api/v1/instances/{world.other_instance_id}", headers=world.other_admin.headers
    ).json
    assert other["version"] == 1


def test_refused_migration_shows_the_reason(pages, world, db, settings, tmp_path):
    v2 = _deploy_v2(db, settings, tmp_path, ("ambientar_servicos", "ambientar_servicos_v2"))
    admin = pages(world.users["admin"])
    html = admin.get(
        f"/administracao/processos/credenciamento-rnds/versoes?de=1&para={v2}"
    ).get_data(as_text=True)
    assert "recusada" in html and "ambientar_servicos" in html
    res = admin.post("/administracao/processos/credenciamento-rnds/migrar", {"de": "1", "para": str(v2), "todas": "1"},
                     follow_redirects=True)  # fmt: skip
    assert "recusada" in res.get_data(as_text=True)


def test_only_admins(pages, world):
    gestor = pages(world.users["gestor"])
    assert gestor.get("/administracao/processos/credenciamento-rnds/versoes").status_code == 403
    assert (
        gestor.post(
            "/administracao/processos/credenciamento-rnds/migrar", {"de": "1", "para": "1"}
        ).status_code
        == 403
    )
    assert (
        pages(world.users["admin"]).get("/administracao/processos/nao-existe/versoes").status_code
        == 404
    )
