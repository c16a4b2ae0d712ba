"""``credencia scheduler`` and ``credencia outbox``: run and watch the scheduler, manage e-mail."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from datetime import datetime

import click

from engine.errors import DomainError
from engine.notifications import service as notifications
from engine.notifications.models import FAILED, PENDING, SENT
from web import logs
from web.cli.context import ROW_ID, CliContext, fail, pass_cli


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "—"


@click.group(invoke_without_command=True)
@click.option(
    "--log-level", default=None, help="INFO, DEBUG, WARNING ou ERROR (padrão: CREDENCIA_LOG_LEVEL)."
)
@click.option(
    "--stop-with-parent",
    "parent_pid",
    type=int,
    default=None,
    hidden=True,
    help="Para sozinho quando o processo PID deixa de ser o pai (credencia serve).",
)
@click.pass_context
@pass_cli
def scheduler(
    cli: CliContext, ctx: click.Context, log_level: str | None, parent_pid: int | None
) -> None:
    """Executa o agendador (temporizadores BPMN, lembretes, certificados, e-mails).

    Sem subcomando, roda em primeiro plano até SIGINT/SIGTERM. Vários processos no mesmo
    PostgreSQL são seguros.
    """
    if ctx.invoked_subcommand is not None:
        return
    from engine.scheduler import runner
    from web.cli.db import require_current_schema

    require_current_schema(cli)
    logs.configure(cli.settings.log_format, log_level or cli.settings.log_level)
    stop = threading.Event()
    # Started by `credencia serve`, SIGINT comes ignored (the master stops it): keep it so.
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    runner.stop_on_signals(stop, (signal.SIGTERM,) if ignored else (signal.SIGTERM, signal.SIGINT))
    if parent_pid is not None:
        threading.Thread(
            target=_stop_without_parent, args=(parent_pid, stop), name="parent-watch", daemon=True
        ).start()
    else:
        click.echo("agendador iniciado (Ctrl+C para parar)")
    runner.run(cli.settings, stop, db=cli.db)
    logging.getLogger(__name__).info("scheduler stopped")


def _stop_without_parent(parent_pid: int, stop: threading.Event) -> None:
    while not stop.wait(2.0):
        if os.getppid() != parent_pid:
            logging.getLogger(__name__).warning("parent %s gone: stopping", parent_pid)
            stop.set()


@scheduler.command("status")
@click.option("--json", "as_json", is_flag=True, help="Saída em JSON.")
@pass_cli
def scheduler_status(cli: CliContext, as_json: bool) -> None:
    """Última execução de cada tarefa, pendências e e-mails que falharam."""
    from engine.scheduler import status as status_mod

    with cli.db.read() as session:
        st = status_mod.collect(session)
    if as_json:
        click.echo(json.dumps(_status_dict(st), ensure_ascii=False, indent=2, default=str))
    else:
        _print_status(st)
    sys.exit(0 if st.healthy else 1)


def _status_dict(st) -> dict:
    return {
        "now": st.now.isoformat(),
        "healthy": st.healthy,
        "jobs": [
            {
                "name": j.name,
                "every_seconds": j.every_seconds,
                "last_started_at": j.row.last_started_at if j.row else None,
                "last_finished_at": j.row.last_finished_at if j.row else None,
                "last_result": j.row.last_result if j.row else None,
                "last_duration_ms": j.row.last_duration_ms if j.row else None,
                "last_error": j.row.last_error if j.row else None,
                "last_summary": j.row.last_summary if j.row else None,
                "runs": j.row.runs if j.row else 0,
                "failures": j.row.failures if j.row else 0,
                "last_owner": j.row.last_owner if j.row else None,
                "stalled": j.stalled,
            }
            for j in st.jobs
        ],
        "backlog": {
            "timers_due": st.timers_due,
            "overdue_analyses": st.overdue_analyses,
            "overdue_tasks": st.overdue_tasks,
            "outbox_pending": st.outbox.pending,
            "outbox_due": st.outbox.due,
            "outbox_failed": st.outbox.failed,
            "outbox_sent": st.outbox.sent,
        },
        "failed_messages": [
            {
                "id": m.id,
                "to": m.to_addr,
                "subject": m.subject,
                "attempts": m.attempts,
                "error": m.last_error,
            }
            for m in st.failed_messages
        ],
    }


def _print_status(st) -> None:
    click.echo(f"agora: {_when(st.now)}")
    click.echo("tarefa        a cada  última execução       resultado  duração  execuções/falhas")
    for j in st.jobs:
        r = j.row
        if r is None:
            click.echo(f"{j.name:<13} {j.every_seconds:>5}s  nunca executada")
            continue
        duration = f"{r.last_duration_ms} ms" if r.last_duration_ms is not None else "—"
        click.echo(
            f"{j.name:<13} {j.every_seconds:>5}s  {_when(r.last_started_at):<20}  {r.last_result:<9}  "
            f"{duration:>7}  {r.runs}/{r.failures}"
        )
        if r.last_result == "error" and r.last_error:
            click.echo(f"    erro: {r.last_error.splitlines()[-1]}")
        elif r.last_summary:
            click.echo(f"    {json.dumps(r.last_summary, ensure_ascii=False, default=str)}")
    if st.stalled:
        click.echo(
            "ATENÇÃO: sem execução recente de "
            + ", ".join(j.name for j in st.stalled)
            + ". Verifique se o processo “credencia scheduler” está rodando."
        )
    click.echo(
        f"pendências: {st.timers_due} temporizador(es) vencido(s), {st.overdue_analyses} análise(s) DATASUS "
        f"atrasada(s), {st.overdue_tasks} outra(s) tarefa(s) atrasada(s)"
    )
    click.echo(
        f"e-mails: {st.outbox.pending} pendente(s) ({st.outbox.due} para agora), {st.outbox.sent} enviado(s), "
        f"{st.outbox.failed} com falha"
    )
    for m in st.failed_messages:
        click.echo(
            f"  FALHOU #{m.id} para {m.to_addr} após {m.attempts} tentativa(s): {m.last_error[:160]}"
        )
    if st.failed_messages:
        click.echo("  reenviar: credencia outbox retry ID")


@scheduler.command("run-once")
@click.argument(
    "jobs", nargs=-1, type=click.Choice(["timers", "reminders", "certificates", "outbox"])
)
@pass_cli
def scheduler_run_once(cli: CliContext, jobs: tuple[str, ...]) -> None:
    """Executa as tarefas indicadas (todas, se nenhuma) uma vez e imprime o resultado."""
    from engine.scheduler import runner

    results = runner.run_once(cli.settings, list(jobs) or None, db=cli.db)
    click.echo(json.dumps(results, ensure_ascii=False, indent=2, default=str))
    if any("error" in r for r in results.values()):
        sys.exit(1)


# ------------------------------------------------------------------ outbox


@click.group()
def outbox() -> None:
    """Caixa de saída de e-mails."""


@outbox.command("list")
@click.option("--failed", "only_failed", is_flag=True, help="Só as mensagens com falha.")
@click.option("--pending", "only_pending", is_flag=True, help="Só as pendentes.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@pass_cli
def outbox_list(cli: CliContext, only_failed: bool, only_pending: bool, limit: int) -> None:
    """Lista as mensagens mais recentes."""
    statuses = [s for s, on in ((FAILED, only_failed), (PENDING, only_pending)) if on] or None
    with cli.db.read() as session:
        rows = notifications.list_outbox(session, cli.actor, statuses=statuses, limit=limit)
    if not rows:
        click.echo("nenhuma mensagem")
    for m in rows:
        extra = (
            f"enviada {_when(m.sent_at)}"
            if m.status == SENT
            else f"próxima tentativa {_when(m.next_attempt_at)}"
        )
        if m.status == FAILED:
            extra = f"erro: {m.last_error[:120]}"
        click.echo(f"#{m.id}\t{m.status}\t{m.attempts} tent.\t{m.to_addr}\t{m.subject}\t{extra}")


@outbox.command("retry")
@click.argument("message_id", type=ROW_ID)
@pass_cli
def outbox_retry(cli: CliContext, message_id: int) -> None:
    """Recoloca a mensagem ID na fila para envio imediato."""
    try:
        with cli.db.write() as session:
            message = notifications.retry(session, cli.actor, message_id)
            click.echo(f"mensagem #{message.id} para {message.to_addr} recolocada na fila")
    except DomainError as exc:
        fail(exc)
