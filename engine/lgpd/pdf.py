"""The subject report (engine/lgpd/service.py ``report``) as a PDF, for the person to keep."""

from __future__ import annotations

from typing import Any

from fpdf import FPDF


def _latin1(text: Any) -> str:
    # The PDF core fonts are Latin-1: Portuguese fits; anything else becomes "?".
    return str(text).encode("latin-1", "replace").decode("latin-1")


def render(report: dict[str, Any]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    ident = report["identifier"]
    title = f"Relatório do titular ({ident['kind'].upper()} {ident['value']})"
    pdf.multi_cell(0, 8, new_x="LMARGIN", new_y="NEXT", text=_latin1(title))
    pdf.set_font("Helvetica", size=9)
    when = f"Gerado em {report['generated_at']} - situação: {report['status']}"
    pdf.multi_cell(0, 5, new_x="LMARGIN", new_y="NEXT", text=_latin1(when))

    def section(title: str, lines: list[str]) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 11)
        pdf.multi_cell(0, 6, new_x="LMARGIN", new_y="NEXT", text=_latin1(title))
        pdf.set_font("Helvetica", size=9)
        for line in lines or ["(nada)"]:
            pdf.multi_cell(0, 5, new_x="LMARGIN", new_y="NEXT", text=_latin1(line))

    section(
        "Eliminações",
        [f"{e['at']} por {e['by']} (pedido {e['request']})" for e in report["erasures"]],
    )
    section(
        "Dados na trilha de auditoria",
        [
            f"{v['chain']} #{v['seq']} {v['entity']} {v['field']}: {v['value']}"
            for v in report["audit_values"]
        ],
    )
    section(
        "Onde mais está guardado", [f"{k}: {n} registro(s)" for k, n in report["stored_in"].items()]
    )
    section(
        "Quem acessou",
        [
            f"{r['at']} {r['by']} ({r['from']}, {r['channel']}) {r['view']} {r['entity']}"
            for r in report["reads"]
        ],
    )
    section(
        "Pedidos do titular",
        [
            f"{r['at']} {r['kind']} {r['status']} por {r['by']} {r['reason']}"
            for r in report["requests"]
        ],
    )
    return bytes(pdf.output())
