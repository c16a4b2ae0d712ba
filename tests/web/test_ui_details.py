"""Small things staff stumbled on: words instead of codes in the audit list, no offer to start
what would be refused, no button to remove one's own admin role, a question before
irreversible actions."""

from __future__ import annotations

import re

from engine.demo import samples
from engine.files import service as files


def test_audit_list_says_what_an_event_is_about_in_words(world, db, pages):
    with db.write() as s:
        files.store(s, world.users["gestor"].actor, world.org, "contrato.pdf", samples.tiny_pdf(),
                    limit=10**7)  # fmt: skip
    html = pages(world.users["auditor"]).get("/auditoria").get_data(as_text=True)
    assert "arquivo contrato.pdf" in html
    assert re.search(rf"estabelecimento {world.est.cnes}|estabelecimento #\d+", html)
    assert not re.search(r">\s*(file|user|establishment) ", html)
    p = pages(world.users["auditor"])
    p.post("/idioma", {"locale": "en", "next": "/"})
    assert "file contrato.pdf" in p.get("/auditoria").get_data(as_text=True)


def test_start_offers_only_portfolios_not_already_running(world, db, pages):
    html = (
        pages(world.users["admin"])
        .get(f"/estabelecimentos/{world.est.cnes}")
        .get_data(as_text=True)
    )
    form = html[html.index('id="start-portfolio"') :]
    form = form[: form.index("</select>")]
    assert 'value="RIRA"' not in form  # world's instance runs RIRA already
    assert 'value="REL"' in form
    other = pages(world.users["admin"]).get(f"/estabelecimentos/{world.est2.cnes}")
    assert 'value="RIRA"' in other.get_data(as_text=True)


def test_admin_cannot_click_away_their_own_admin_role_and_is_asked_first(world, pages):
    html = pages(world.users["admin"]).get("/administracao").get_data(as_text=True)
    table = html[html.index('id="pessoas-titulo"') :]
    me = table[table.index(world.users["admin"].email) :]
    me = me[: me.index("</tr>")]
    assert "Retirar" not in me and "você" in me
    # Every other role (4) asks first; tokens listed are only those this organization minted.
    assert html.count("data-confirm=") >= 4
    assert f"Retirar o papel Gestor de {world.users['gestor'].email}?" in html
    instance = pages(world.users["admin"]).get(f"/processos/{world.instance_id}")
    assert "Cancelar este processo? Isso não pode ser desfeito." in instance.get_data(as_text=True)
