"""E-mails and in-app notifications in the reader's language: pt-BR by default, English when
the user chose it. Each message has a subject, a plain-text and an HTML body, and a link into
the app.

Templates are Jinja2 strings kept here, one set per kind and language; HTML is autoescaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import DictLoader, Environment, StrictUndefined, pass_context, select_autoescape

PT, EN = "pt_BR", "en"


def language(locale: str | None) -> str:
    """The language we write to a user in: English if they chose it, else Portuguese."""
    return EN if (locale or "").lower().replace("-", "_").startswith("en") else PT


_LAYOUT_HTML = """<!doctype html>
<html lang="{{ 'en' if lang == 'en' else 'pt-BR' }}"><head><meta charset="utf-8">
<title>{{ subject }}</title></head>
<body style="font-family: Arial, Helvetica, sans-serif; color: #1b1b1b; line-height: 1.4">
{% block body %}{% endblock %}
<p style="color:#666; font-size: 12px">{{ footer }}</p>
</body></html>"""

_FOOTER = {
    PT: "Mensagem automática do Credencia — acompanhamento do credenciamento na RNDS. Não responda.",
    EN: "Automatic message from Credencia — RNDS credentialing tracker. Please do not reply.",
}

_TEMPLATES: dict[str, str] = {
    "layout.html": _LAYOUT_HTML,
    # ------------------------------------------------------------- overdue DATASUS analysis
    "analysis_overdue.pt_BR.subject": (
        "[Credencia] Análise do DATASUS atrasada: {{ task_name }} — CNES {{ cnes }}"
    ),
    "analysis_overdue.pt_BR.title": "Análise atrasada: {{ task_name }} (CNES {{ cnes }})",
    "analysis_overdue.pt_BR.txt": """Olá, {{ user_name }}.

A tarefa "{{ task_name }}" do estabelecimento {{ establishment }} (CNES {{ cnes }}) venceu em {{ due_at|day }} e ainda aguarda a análise do DATASUS.
{%- if occurrence > 0 %} Este é o {{ occurrence + 1 }}º lembrete.{% endif %}

Abrir a tarefa: {{ link }}

{{ footer }}
""",
    "analysis_overdue.pt_BR.html": """{% extends "layout.html" %}{% block body %}
<p>Olá, {{ user_name }}.</p>
<p>A tarefa <strong>{{ task_name }}</strong> do estabelecimento {{ establishment }}
(CNES {{ cnes }}) venceu em <strong>{{ due_at|day }}</strong> e ainda aguarda a análise do
DATASUS.{% if occurrence > 0 %} Este é o {{ occurrence + 1 }}º lembrete.{% endif %}</p>
<p><a href="{{ link }}">Abrir a tarefa</a></p>
{% endblock %}""",
    "analysis_overdue.en.subject": "[Credencia] Overdue DATASUS analysis: {{ task_name }} — CNES {{ cnes }}",
    "analysis_overdue.en.title": "Overdue analysis: {{ task_name }} (CNES {{ cnes }})",
    "analysis_overdue.en.txt": """Hello, {{ user_name }}.

The task "{{ task_name }}" of {{ establishment }} (CNES {{ cnes }}) was due on {{ due_at|day }} and is still waiting for DATASUS's analysis.
{%- if occurrence > 0 %} This is reminder number {{ occurrence + 1 }}.{% endif %}

Open the task: {{ link }}

{{ footer }}
""",
    "analysis_overdue.en.html": """{% extends "layout.html" %}{% block body %}
<p>Hello, {{ user_name }}.</p>
<p>The task <strong>{{ task_name }}</strong> of {{ establishment }} (CNES {{ cnes }}) was due
on <strong>{{ due_at|day }}</strong> and is still waiting for DATASUS's analysis.
{%- if occurrence > 0 %} This is reminder number {{ occurrence + 1 }}.{% endif %}</p>
<p><a href="{{ link }}">Open the task</a></p>
{% endblock %}""",
    # ------------------------------------------------------------- daily digest
    "overdue_digest.pt_BR.subject": (
        "[Credencia] Você tem {{ total }} tarefa{{ 's' if total > 1 }} atrasada{{ 's' if total > 1 }}"
    ),
    "overdue_digest.pt_BR.title": "{{ total }} tarefa{{ 's' if total > 1 }} atrasada{{ 's' if total > 1 }}",
    "overdue_digest.pt_BR.txt": """Olá, {{ user_name }}.

Estas tarefas passaram do prazo:
{% for t in tasks %}
- {{ t.name }} — {{ t.establishment }} (CNES {{ t.cnes }}), venceu em {{ t.due_at|day }}
  {{ t.link }}
{%- endfor %}
{%- if total > tasks|length %}
… e mais {{ total - tasks|length }}: {{ inbox_link }}
{%- endif %}

{{ footer }}
""",
    "overdue_digest.pt_BR.html": """{% extends "layout.html" %}{% block body %}
<p>Olá, {{ user_name }}.</p>
<p>Estas tarefas passaram do prazo:</p>
<ul>{% for t in tasks %}
<li><a href="{{ t.link }}">{{ t.name }}</a> — {{ t.establishment }} (CNES {{ t.cnes }}),
venceu em {{ t.due_at|day }}</li>{% endfor %}
</ul>
{% if total > tasks|length %}<p><a href="{{ inbox_link }}">… e mais {{ total - tasks|length }}</a></p>{% endif %}
{% endblock %}""",
    "overdue_digest.en.subject": "[Credencia] You have {{ total }} overdue task{{ 's' if total > 1 }}",
    "overdue_digest.en.title": "{{ total }} overdue task{{ 's' if total > 1 }}",
    "overdue_digest.en.txt": """Hello, {{ user_name }}.

These tasks are past their due date:
{% for t in tasks %}
- {{ t.name }} — {{ t.establishment }} (CNES {{ t.cnes }}), due on {{ t.due_at|day }}
  {{ t.link }}
{%- endfor %}
{%- if total > tasks|length %}
… and {{ total - tasks|length }} more: {{ inbox_link }}
{%- endif %}

{{ footer }}
""",
    "overdue_digest.en.html": """{% extends "layout.html" %}{% block body %}
<p>Hello, {{ user_name }}.</p>
<p>These tasks are past their due date:</p>
<ul>{% for t in tasks %}
<li><a href="{{ t.link }}">{{ t.name }}</a> — {{ t.establishment }} (CNES {{ t.cnes }}),
due on {{ t.due_at|day }}</li>{% endfor %}
</ul>
{% if total > tasks|length %}<p><a href="{{ inbox_link }}">… and {{ total - tasks|length }} more</a></p>{% endif %}
{% endblock %}""",
    # ------------------------------------------------------------- certificate expiring
    "certificate_expiry.pt_BR.subject": (
        "[Credencia] Certificado digital vence em {{ days_left }} dia{{ 's' if days_left != 1 }}"
        " — CNES {{ cnes }}"
    ),
    "certificate_expiry.pt_BR.title": (
        "Certificado do CNES {{ cnes }} vence em {{ days_left }} dia{{ 's' if days_left != 1 }}"
    ),
    "certificate_expiry.pt_BR.txt": """Olá, {{ user_name }}.

O certificado digital do estabelecimento {{ establishment }} (CNES {{ cnes }}) vence em {{ not_after|day }} ({{ days_left }} dia{{ 's' if days_left != 1 }}). Sem certificado válido o conector não se autentica na RNDS: providencie a renovação.

Ver o estabelecimento: {{ link }}

{{ footer }}
""",
    "certificate_expiry.pt_BR.html": """{% extends "layout.html" %}{% block body %}
<p>Olá, {{ user_name }}.</p>
<p>O certificado digital do estabelecimento {{ establishment }} (CNES {{ cnes }}) vence em
<strong>{{ not_after|day }}</strong> ({{ days_left }} dia{{ 's' if days_left != 1 }}). Sem
certificado válido o conector não se autentica na RNDS: providencie a renovação.</p>
<p><a href="{{ link }}">Ver o estabelecimento</a></p>
{% endblock %}""",
    "certificate_expiry.en.subject": (
        "[Credencia] Digital certificate expires in {{ days_left }} day{{ 's' if days_left != 1 }}"
        " — CNES {{ cnes }}"
    ),
    "certificate_expiry.en.title": (
        "Certificate of CNES {{ cnes }} expires in {{ days_left }} day{{ 's' if days_left != 1 }}"
    ),
    "certificate_expiry.en.txt": """Hello, {{ user_name }}.

The digital certificate of {{ establishment }} (CNES {{ cnes }}) expires on {{ not_after|day }} (in {{ days_left }} day{{ 's' if days_left != 1 }}). Without a valid certificate the connector cannot authenticate to RNDS: please renew it.

See the establishment: {{ link }}

{{ footer }}
""",
    "certificate_expiry.en.html": """{% extends "layout.html" %}{% block body %}
<p>Hello, {{ user_name }}.</p>
<p>The digital certificate of {{ establishment }} (CNES {{ cnes }}) expires on
<strong>{{ not_after|day }}</strong> (in {{ days_left }} day{{ 's' if days_left != 1 }}).
Without a valid certificate the connector cannot authenticate to RNDS: please renew it.</p>
<p><a href="{{ link }}">See the establishment</a></p>
{% endblock %}""",
    # ------------------------------------------------------------- certificate expired
    "certificate_expired.pt_BR.subject": "[Credencia] Certificado digital vencido — CNES {{ cnes }}",
    "certificate_expired.pt_BR.title": "Certificado do CNES {{ cnes }} vencido",
    "certificate_expired.pt_BR.txt": """Olá, {{ user_name }}.

O certificado digital do estabelecimento {{ establishment }} (CNES {{ cnes }}) venceu em {{ not_after|day }}. O estabelecimento está marcado como "certificado vencido" até que um certificado válido seja carregado.

Ver o estabelecimento: {{ link }}

{{ footer }}
""",
    "certificate_expired.pt_BR.html": """{% extends "layout.html" %}{% block body %}
<p>Olá, {{ user_name }}.</p>
<p>O certificado digital do estabelecimento {{ establishment }} (CNES {{ cnes }}) venceu em
<strong>{{ not_after|day }}</strong>. O estabelecimento está marcado como
<em>certificado vencido</em> até que um certificado válido seja carregado.</p>
<p><a href="{{ link }}">Ver o estabelecimento</a></p>
{% endblock %}""",
    "certificate_expired.en.subject": "[Credencia] Digital certificate expired — CNES {{ cnes }}",
    "certificate_expired.en.title": "Certificate of CNES {{ cnes }} expired",
    "certificate_expired.en.txt": """Hello, {{ user_name }}.

The digital certificate of {{ establishment }} (CNES {{ cnes }}) expired on {{ not_after|day }}. The establishment is flagged "certificate expired" until a valid certificate is uploaded.

See the establishment: {{ link }}

{{ footer }}
""",
    "certificate_expired.en.html": """{% extends "layout.html" %}{% block body %}
<p>Hello, {{ user_name }}.</p>
<p>The digital certificate of {{ establishment }} (CNES {{ cnes }}) expired on
<strong>{{ not_after|day }}</strong>. The establishment is flagged <em>certificate expired</em>
until a valid certificate is uploaded.</p>
<p><a href="{{ link }}">See the establishment</a></p>
{% endblock %}""",
    # ------------------------------------------------------------- invitation to an organization
    "invitation.pt_BR.subject": "[Credencia] Convite para {{ org_name }}",
    "invitation.pt_BR.title": "Convite para {{ org_name }}",
    "invitation.pt_BR.txt": """Olá.

{{ inviter }} convidou {{ email }} para o papel {{ role_name }} em {{ org_name }} no Credencia.

Para aceitar, abra o link abaixo (até {{ expires_at|day }}). Se você já tem conta, entre com ela; se não, escolha uma senha.
{{ link }}

Se não esperava este convite, ignore esta mensagem: nada muda sem o seu aceite.

{{ footer }}
""",
    "invitation.pt_BR.html": """{% extends "layout.html" %}{% block body %}
<p>Olá.</p>
<p>{{ inviter }} convidou {{ email }} para o papel <strong>{{ role_name }}</strong> em
<strong>{{ org_name }}</strong> no Credencia.</p>
<p><a href="{{ link }}">Aceitar o convite</a> (até {{ expires_at|day }}). Se você já tem conta,
entre com ela; se não, escolha uma senha.</p>
<p>Se não esperava este convite, ignore esta mensagem: nada muda sem o seu aceite.</p>
{% endblock %}""",
    "invitation.en.subject": "[Credencia] Invitation to {{ org_name }}",
    "invitation.en.title": "Invitation to {{ org_name }}",
    "invitation.en.txt": """Hello.

{{ inviter }} invited {{ email }} to the role {{ role_name }} in {{ org_name }} on Credencia.

To accept, open the link below (until {{ expires_at|day }}). If you have an account, sign in with it; if not, choose a password.
{{ link }}

If you did not expect this invitation, ignore this message: nothing changes unless you accept.

{{ footer }}
""",
    "invitation.en.html": """{% extends "layout.html" %}{% block body %}
<p>Hello.</p>
<p>{{ inviter }} invited {{ email }} to the role <strong>{{ role_name }}</strong> in
<strong>{{ org_name }}</strong> on Credencia.</p>
<p><a href="{{ link }}">Accept the invitation</a> (until {{ expires_at|day }}). If you have an
account, sign in with it; if not, choose a password.</p>
<p>If you did not expect this invitation, ignore this message: nothing changes unless you
accept.</p>
{% endblock %}""",
    # ------------------------------------------------------------- password reset link
    "password_reset.pt_BR.subject": "[Credencia] Redefinição de senha",
    "password_reset.pt_BR.title": "Redefinição de senha",
    "password_reset.pt_BR.txt": """Olá.

Alguém (provavelmente você) pediu para redefinir a senha da conta {{ email }} no Credencia.

Para escolher uma nova senha, abra o link abaixo nos próximos {{ minutes }} minutos. Ele só pode ser usado uma vez.
{{ link }}

Se não foi você, ignore esta mensagem: a senha atual continua valendo.

{{ footer }}
""",
    "password_reset.pt_BR.html": """{% extends "layout.html" %}{% block body %}
<p>Olá.</p>
<p>Alguém (provavelmente você) pediu para redefinir a senha da conta {{ email }} no Credencia.</p>
<p><a href="{{ link }}">Escolher uma nova senha</a> (nos próximos {{ minutes }} minutos; o link
só pode ser usado uma vez).</p>
<p>Se não foi você, ignore esta mensagem: a senha atual continua valendo.</p>
{% endblock %}""",
    "password_reset.en.subject": "[Credencia] Password reset",
    "password_reset.en.title": "Password reset",
    "password_reset.en.txt": """Hello.

Someone (probably you) asked to reset the password of the account {{ email }} on Credencia.

To choose a new password, open the link below within {{ minutes }} minutes. It works only once.
{{ link }}

If it was not you, ignore this message: your current password still works.

{{ footer }}
""",
    "password_reset.en.html": """{% extends "layout.html" %}{% block body %}
<p>Hello.</p>
<p>Someone (probably you) asked to reset the password of the account {{ email }} on Credencia.</p>
<p><a href="{{ link }}">Choose a new password</a> (within {{ minutes }} minutes; the link works
only once).</p>
<p>If it was not you, ignore this message: your current password still works.</p>
{% endblock %}""",
}

KINDS = (
    "analysis_overdue", "overdue_digest", "certificate_expiry", "certificate_expired", "invitation",
    "password_reset",
)  # fmt: skip


@dataclass(frozen=True)
class Rendered:
    lang: str
    subject: str
    text: str
    html: str
    title: str  # the in-app notification's one line


@pass_context
def _day(ctx: Any, value: datetime) -> str:
    local = value.astimezone(ZoneInfo(ctx["tz"]))
    return local.strftime("%Y-%m-%d") if ctx["lang"] == EN else local.strftime("%d/%m/%Y")


_env = Environment(
    loader=DictLoader(_TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_env.filters["day"] = _day


def render(
    kind: str, locale: str | None, context: dict[str, Any], *, tz: str = "America/Sao_Paulo"
) -> Rendered:
    """Render one kind of message for a reader. Dates in ``context`` are shown in ``tz``."""
    lang = language(locale)
    ctx = {**context, "lang": lang, "tz": tz, "footer": _FOOTER[lang]}
    subject = _env.get_template(f"{kind}.{lang}.subject").render(ctx).strip()
    ctx["subject"] = subject
    return Rendered(
        lang=lang,
        subject=subject,
        text=_env.get_template(f"{kind}.{lang}.txt").render(ctx),
        html=_env.get_template(f"{kind}.{lang}.html").render(ctx),
        title=_env.get_template(f"{kind}.{lang}.title").render(ctx).strip(),
    )
