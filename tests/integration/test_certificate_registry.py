"""An establishment's certificates in the database: registering, replacing, history, status,
permissions, refusals at the form field, and that nothing private is ever kept."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import event, func, select, text
from sqlalchemy import inspect as sa_inspect

from engine.access.actor import SYSTEM
from engine.audit.models import AuditEvent
from engine.certificates import service as certs
from engine.certificates.models import Certificate
from engine.errors import Forbidden, Invalid, NotFound
from engine.files import service as files
from engine.files.models import StoredFile
from tests.support.pki import CNPJ, CPF, OTHER_CNPJ, PASSWORD, pki

POLICY = certs.CertificatePolicy(extra_anchors=pki().anchors)


@pytest.fixture
def world(make):
    org = make.org()
    est = make.establishment(org, cnpj=CNPJ)
    other = make.establishment(org)
    return SimpleNamespace(
        org=org,
        est=est,
        other=other,
        admin=make.user("sesa-pr", "admin"),
        gestor=make.user("sesa-pr", "gestor", est.cnes),
        gestor_other=make.user("sesa-pr", "gestor", other.cnes),
        integrador=make.user("sesa-pr", "integrador", est.cnes),
    )


def register(db, actor, est_id, data, password=None, **kw):
    kw.setdefault("settings", POLICY)
    with db.write() as s:
        return certs.register(s, actor, est_id, data, password, **kw)


def rejection(db, actor, est_id, data, password=None, **kw) -> certs.CertificateRejected:
    with pytest.raises(certs.CertificateRejected) as info:
        register(db, actor, est_id, data, password, **kw)
    return info.value


def all_rows(db) -> bytes:
    """Every value of every row of every table, raw."""
    parts: list[bytes] = []
    with db.engine.connect() as conn:
        for table in sa_inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value))
                    else:
                        parts.append(str(value).encode("utf-8"))
    return b"\n".join(parts)


def test_register_pfx_keeps_only_the_public_certificate(db, world, caplog):
    caplog.set_level("DEBUG")
    ca = pki()
    leaf = ca.ecnpj()
    cert = register(
        db, world.gestor.actor, world.est.id, ca.pfx(leaf), PASSWORD, filename="empresa.pfx"
    )
    assert cert.is_current and cert.sha256 == leaf.sha256
    assert (cert.cnpj, cert.cpf_responsavel, cert.cert_type) == (CNPJ, CPF, "A1")
    assert cert.icp_brasil and cert.client_auth and cert.cnpj_exception_reason is None
    with db.read() as s:
        stored = s.get(StoredFile, cert.file_id)
        assert stored.content == leaf.der
        assert (stored.kind, stored.filename, stored.content_type) == (
            "certificate",
            "empresa.cer",
            "application/pkix-cert",
        )
        assert stored.establishment_id == world.est.id
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "certificate.registered"))
        assert event.data["sha256"] == leaf.sha256
        assert event.data["uploaded_as"] == "pfx"
        assert event.data["not_after"].startswith(str(leaf.cert.not_valid_after_utc.date()))
    key_der = leaf.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_pem = leaf.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_scalar = leaf.key.private_numbers().private_value.to_bytes(32, "big")
    dump = all_rows(db)
    for secret in (PASSWORD.encode(), key_der, key_pem, base64.b64encode(key_der), private_scalar):
        assert secret not in dump
    assert ca.pfx(leaf)[:64] not in dump  # no .pfx bytes either
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert PASSWORD not in logged and base64.b64encode(key_der).decode() not in logged


def test_replace_history_and_idempotence(db, world):
    ca = pki()
    first_leaf, second_leaf = ca.ecnpj(), ca.ecnpj()
    first = register(db, world.admin.actor, world.est.id, first_leaf.der)
    again = register(db, world.admin.actor, world.est.id, first_leaf.pem)  # same certificate
    assert again.id == first.id
    second = register(db, world.gestor.actor, world.est.id, ca.pfx(second_leaf), PASSWORD)
    with db.read() as s:
        assert certs.current(s, world.est.id).id == second.id
        old = certs.history(s, world.est.id)
        assert [c.id for c in old] == [first.id]
        assert not old[0].is_current and old[0].replaced_at is not None
        assert [c.id for c in certs.history(s, world.est.id, include_current=True)] == [
            second.id,
            first.id,
        ]
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "certificate.registered")
        ).all()
        assert len(events) == 2 and events[1].data["replaced_id"] == first.id
    back = register(db, world.admin.actor, world.est.id, first_leaf.der)  # the old one again
    assert back.id == first.id
    with db.read() as s:
        assert certs.current(s, world.est.id).id == first.id
        count = s.scalar(
            select(func.count()).select_from(Certificate).where(Certificate.is_current.is_(True))
        )
        assert count == 1


def test_a_transaction_remembers_what_it_registered_and_forgets_it_after(db, world):
    """What a registration leaves in the transaction's memo (the current fingerprint, the
    certificate by fingerprint) answers later asks without a read, follows a replacement in
    the same transaction, and is dropped by a savepoint's rollback and by the commit."""
    ca = pki()
    first_leaf, second_leaf = ca.ecnpj(), ca.ecnpj()
    statements: list[str] = []

    def seen(conn, cursor, statement, *_):
        statements.append(statement)

    with db.write() as s:
        first = certs.register(s, world.admin.actor, world.est.id, first_leaf.der, settings=POLICY)
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            assert certs.current_fingerprint(s, world.est.id) == first.sha256
            assert certs.by_fingerprint(s, first.org_id, first.sha256) is first
            assert statements == []
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        second = certs.register(
            s, world.admin.actor, world.est.id, second_leaf.der, settings=POLICY
        )
        assert certs.current_fingerprint(s, world.est.id) == second.sha256
        with s.begin_nested() as savepoint:
            certs.register(s, world.admin.actor, world.est.id, first_leaf.der, settings=POLICY)
            assert certs.current_fingerprint(s, world.est.id) == first.sha256
            savepoint.rollback()
        # Forgotten with the savepoint: read again, it is the second one.
        assert certs.current_fingerprint(s, world.est.id) == second.sha256
    assert "credencia.transaction_memo" not in s.info
    with db.read() as s:
        assert certs.current(s, world.est.id).sha256 == second.sha256


def test_same_certificate_for_two_establishments_with_one_cnpj(db, make, world):
    sibling = make.establishment(world.org, cnpj=CNPJ)  # UBSs under one Fundo Municipal
    leaf = pki().ecnpj()
    a = register(db, world.admin.actor, world.est.id, leaf.der)
    b = register(db, world.admin.actor, sibling.id, leaf.der)
    assert a.id != b.id and a.sha256 == b.sha256


def test_permissions(db, world):
    leaf = pki().ecnpj()
    for user in (world.integrador, world.gestor_other):
        with pytest.raises(Forbidden):
            register(db, user.actor, world.est.id, leaf.der)
    with db.read() as s:
        denied = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "denied.certificate.register")
        ).all()
        assert len(denied) == 2
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0
    with pytest.raises(NotFound):
        register(db, world.admin.actor, 999_999, leaf.der)
    assert register(db, SYSTEM, world.est.id, leaf.der).is_current


@pytest.mark.parametrize(
    ("make_file", "password", "code", "words"),
    [
        (lambda ca: ca.pfx(ca.ecnpj()), "errada", "wrong_password", "Senha do certificado incorreta."),
        (lambda ca: b"%PDF-1.4 nada", None, "not_certificate", "não é um certificado"),
        # (a certificate that is merely not strict DER is read: issue 12 #18, below)
        (lambda ca: ca.non_der_unrepairable(), None, "not_der", "fora do padrão DER"),
        (lambda ca: ca.pfx_without_certificate(ca.ecnpj()), PASSWORD, "pfx_without_certificate", "não contém o certificado"),
        (lambda ca: ca.expired().der, None, "expired", "vencido"),
        (lambda ca: ca.not_yet_valid().der, None, "not_yet_valid", "passa a valer"),
        (lambda ca: ca.self_signed().der, None, "not_icp_brasil", "autoassinado"),
        (lambda ca: ca.ecnpj(cnpj=OTHER_CNPJ).der, None, "cnpj_mismatch", "10.302.910/0001-82"),
        (lambda ca: ca.ecnpj(client_auth=False).der, None, "no_client_auth", "autenticação de cliente"),
    ],
)  # fmt: skip
def test_refusals_land_on_the_form_field(db, world, make_file, password, code, words):
    err = rejection(db, world.gestor.actor, world.est.id, make_file(pki()), password)
    assert isinstance(err, Invalid) and err.code == code
    assert words in err.errors["certificado"] and err.message == err.errors["certificado"]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Certificate)) == 0
        assert s.scalar(select(func.count()).select_from(StoredFile)) == 0


def test_a_certificate_not_in_strict_der_is_registered_as_it_came(db, world):
    """Issue 12 #18: the .pfx opens with its password, the certificate is read leniently, and
    the stored public certificate is the CA's bytes (so its signature still verifies)."""
    from tests.support.pki import ec_key, pfx_by_hand

    ca = pki()
    original = ca.non_der_ecnpj()
    pfx = pfx_by_hand([original, ca.intermediate.der], ec_key("non-der"))
    cert = register(db, world.gestor.actor, world.est.id, pfx, PASSWORD, filename="antigo.pfx")
    assert cert.icp_brasil and cert.cnpj == CNPJ
    with db.read() as s:
        stored = s.get(StoredFile, cert.file_id)
        assert stored is not None and stored.content == original
        assert cert.sha256 == stored.sha256
    # registering the stored file again (the renewal path) finds the same certificate
    with db.write() as s:
        again = certs.register_stored(s, SYSTEM, world.est.id, cert.file_id, settings=POLICY)
    assert again.id == cert.id


def test_documented_cnpj_exception(db, world):
    leaf = pki().ecnpj(cnpj=OTHER_CNPJ)
    reason = "Certificado da mantenedora, conforme ofício 12/2026."
    cert = register(db, world.gestor.actor, world.est.id, leaf.der, cnpj_exception_reason=reason)
    assert cert.cnpj == OTHER_CNPJ and cert.cnpj_exception_reason == reason
    with db.read() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "certificate.registered"))
        assert event.data["cnpj_exception_reason"] == reason
    with pytest.raises(Invalid) as info:
        register(db, world.gestor.actor, world.est.id, leaf.der, cnpj_exception_reason="x" * 1001)
    assert "cnpj_exception_reason" in info.value.errors
    # A reason given for a certificate whose CNPJ matches is not kept.
    same = register(
        db, world.gestor.actor, world.est.id, pki().ecnpj().der, cnpj_exception_reason="à toa"
    )
    assert same.cnpj_exception_reason is None


def test_policy_from_settings(db, world, tmp_path):
    leaf = pki().ecnpj()
    strict = SimpleNamespace(certificate_require_icp_brasil=True, certificate_extra_anchors="")
    assert rejection(db, world.admin.actor, world.est.id, leaf.der, settings=strict).code == (
        "not_icp_brasil"
    )
    anchors = tmp_path / "homologacao.pem"
    anchors.write_bytes(pki().anchors_pem)
    homolog = SimpleNamespace(certificate_extra_anchors=str(anchors))
    assert register(db, world.admin.actor, world.est.id, leaf.der, settings=homolog).icp_brasil
    demo = SimpleNamespace(certificate_require_icp_brasil=False)
    self_signed = register(
        db, world.admin.actor, world.est.id, pki().self_signed().der, settings=demo
    )
    assert self_signed.is_current and not self_signed.icp_brasil


def test_status_and_description(db, world):
    leaf = pki().ecnpj()
    cert = register(db, world.admin.actor, world.est.id, leaf.der)
    end = cert.not_after
    assert certs.status(cert) == "válido"
    assert certs.status(cert, end - timedelta(days=12, hours=1)) == "vence em 12 dias"
    assert certs.status(cert, end - timedelta(days=1, hours=1)) == "vence em 1 dia"
    assert certs.status(cert, end - timedelta(hours=1)) == "vence hoje"
    assert certs.status(cert, end + timedelta(seconds=1)) == "vencido"
    assert certs.status(cert, cert.not_before - timedelta(days=1)) == "ainda não válido"
    with db.read() as s:
        est = s.get(type(world.est), world.est.id)
        assert certs.has_valid_certificate(s, est)
        assert certs.has_valid_certificate(s, est.id)
        assert not certs.has_valid_certificate(s, est, end + timedelta(days=1))
        assert not certs.has_valid_certificate(s, world.other.id)
        cert = certs.current(s, est.id)
    described = certs.describe(cert, end - timedelta(days=3))
    json.dumps(described)
    assert described["status"] == "vence em 3 dias" and described["days_left"] == 3
    validity = next(i for i in described["checklist"] if i["item"] == "validity")
    assert validity["level"] == "warning"
    assert {i["item"] for i in described["checklist"]} >= {"icp_brasil", "client_auth", "cnpj"}
    assert described["icp_brasil_reason"]


def test_register_a_stored_file(db, world):
    leaf = pki().ecnpj()
    with db.write() as s:
        row = files.store(s, world.gestor.actor, world.org, "ecnpj.cer", leaf.der, limit=10 << 20)
        file_id = row.id
    with db.write() as s:
        cert = certs.register_stored(s, world.gestor.actor, world.est.id, file_id, settings=POLICY)
        assert cert.file_id == file_id  # the stored DER is reused, not copied
    with db.write() as s, pytest.raises(Invalid):
        certs.register_stored(s, world.gestor.actor, world.est.id, "nao-existe", settings=POLICY)


def test_public_der_from_upload_for_the_file_service():
    from engine.pki import CertificateError, public_der_from_upload

    ca = pki()
    leaf = ca.ecnpj()
    assert public_der_from_upload(ca.pfx(leaf), PASSWORD) == leaf.der
    assert public_der_from_upload(leaf.pem) == leaf.der
    with pytest.raises(CertificateError):
        public_der_from_upload(ca.pfx(leaf), "errada")


def test_concurrent_registrations_leave_one_current(db, world):
    leaves = [pki().ecnpj(), pki().ecnpj()]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def upload(leaf) -> None:
        try:
            barrier.wait()
            register(db, world.admin.actor, world.est.id, leaf.der)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(leaf,)) for leaf in leaves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with db.read() as s:
        rows = s.scalars(
            select(Certificate).where(Certificate.establishment_id == world.est.id)
        ).all()
        assert len(rows) == 2 and sum(r.is_current for r in rows) == 1


# --- the trusted roots: credencia certificates update-roots -------------------------------------


def _zip(entries: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def roots_file(tmp_path, monkeypatch):
    """Where update-roots writes, instead of the instance folder."""
    from engine.pki import trust

    target = tmp_path / "instance" / "icp-brasil.pem"
    monkeypatch.setattr(trust, "override_path", lambda: target)
    return target


def _update(db, data, filename="ACcompactado.zip", actor=SYSTEM):
    from engine.certificates import roots

    with db.write() as s:
        return roots.update(s, actor, data, filename=filename)


def _roots_events(db) -> list[AuditEvent]:
    with db.read() as s:
        return list(
            s.scalars(select(AuditEvent).where(AuditEvent.action == "certificates.roots_updated"))
        )


def _cli_on(db_url, monkeypatch):
    """The `credencia certificates` group, on the test database."""
    from engine import settings as settings_mod
    from web.cli.certificates import certificates

    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    return certificates


def test_update_roots_installs_the_iti_zip(db, db_url, roots_file, monkeypatch):
    from click.testing import CliRunner

    from engine.pki import inspect, trust

    ca = pki()
    leaf = ca.ecnpj()
    assert not inspect(leaf.der).icp_brasil  # the test PKI is not trusted yet
    data = _zip({"raiz.crt": ca.root.der, "ac/ac-teste.cer": ca.intermediate.pem})
    group = _cli_on(db_url, monkeypatch)
    zip_path = roots_file.parent.parent / "ACcompactado.zip"
    zip_path.write_bytes(data)
    result = CliRunner().invoke(group, ["update-roots", str(zip_path)])
    assert result.exit_code == 0, result.output
    assert "Raízes ICP-Brasil: 1 raízes e 1 ACs" in result.output
    assert f"raiz nova: {ca.root.cert.subject.rfc4514_string()}" in result.output
    assert ca.root.sha256 in result.output
    assert "raiz que deixou de ser confiável" in result.output  # the real ones are not in it
    # written atomically where it overrides the shipped bundle, and used from now on
    assert [p.name for p in roots_file.parent.iterdir()] == ["icp-brasil.pem"]
    store = trust.store()
    assert store.source == "instance" and store.path == roots_file
    assert [c.subject for c in store.roots] == [ca.root.cert.subject]
    report = inspect(leaf.der)
    assert report.icp_brasil and report.chain.anchor_source == "icp_brasil"
    # audited, with what changed
    (event,) = _roots_events(db)
    assert event.data["roots"] == 1 and event.data["intermediates"] == 1
    assert event.data["file"] == "ACcompactado.zip"
    assert [r["sha256"] for r in event.data["new_roots"]] == [ca.root.sha256]
    # the status line says where the list came from and how old it is
    shown = CliRunner().invoke(group, ["roots"])
    assert "1 raízes e 1 ACs" in shown.output and "instalada com update-roots" in shown.output


def test_update_roots_keeps_trusted_roots_the_acs_chain_to(db, roots_file):
    """A zip of ACs only: they must chain to a root trusted now, which stays in the bundle."""
    from engine.pki import trust

    ca = pki()
    _update(db, _zip({"raiz.crt": ca.root.der}))
    result = _update(db, _zip({"ac.cer": ca.intermediate.der}))
    assert (result["roots"], result["intermediates"]) == (1, 1)
    assert result["new_roots"] == [] and result["dropped_roots"] == []
    assert {c.subject for c in trust.store().intermediates} == {ca.intermediate.cert.subject}


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        (
            {"raiz.crt": "root", "leiame.txt": b"Pacote de ACs da ICP-Brasil\n"},
            "“leiame.txt” não é um certificado",
        ),
        ({"raiz.crt": "root", "ac.cer": "intermediate", "empresa.cer": "leaf"}, "“empresa.cer”"),
        ({"ac.cer": "intermediate"}, "“ac.cer”"),  # no root it chains to
        ({"raiz.crt": "foreign_root"}, "raiz que não é da ICP-Brasil"),
        ({}, "vazio"),
        (b"isto nao e um zip", "não é um .zip"),
    ],
)
def test_update_roots_refuses_what_is_not_a_bundle(db, roots_file, entries, words):
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from engine.pki import trust
    from tests.support.pki import ec_key

    ca = pki()
    foreign_name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "Raiz Qualquer")])
    foreign = (
        cx509.CertificateBuilder()
        .subject_name(foreign_name)
        .issuer_name(foreign_name)
        .public_key(ec_key("foreign").public_key())
        .serial_number(9)
        .not_valid_before(ca.now - timedelta(days=1))
        .not_valid_after(ca.now + timedelta(days=100))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ec_key("foreign"), hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    material = {
        "root": ca.root.der,
        "intermediate": ca.intermediate.der,
        "leaf": ca.ecnpj().der,
        "foreign_root": foreign,
    }
    if isinstance(entries, bytes):
        data = entries
    else:
        data = _zip({n: material[v] if isinstance(v, str) else v for n, v in entries.items()})
    with pytest.raises(Invalid) as info:
        _update(db, data)
    assert words in info.value.message and info.value.errors == {"arquivo": info.value.message}
    assert not roots_file.exists() and _roots_events(db) == []
    assert trust.store().source == "shipped"


def test_update_roots_cli_refusal_changes_nothing(db, db_url, roots_file, monkeypatch, tmp_path):
    from click.testing import CliRunner

    group = _cli_on(db_url, monkeypatch)
    junk = tmp_path / "ACcompactado.zip"
    junk.write_bytes(_zip({"ac.cer": pki().ecnpj().der}))
    result = CliRunner().invoke(group, ["update-roots", str(junk)])
    assert result.exit_code == 1
    assert "não é certificado de autoridade certificadora" in result.stderr
    assert "Nada foi alterado." in result.stderr and not roots_file.exists()


def test_update_roots_is_for_operators_only(db, world, roots_file):
    with pytest.raises(Forbidden):
        _update(db, _zip({"raiz.crt": pki().root.der}), actor=world.admin.actor)
    assert not roots_file.exists()


def test_a_broken_override_falls_back_to_the_shipped_roots(roots_file, caplog):
    from engine.pki import trust

    roots_file.parent.mkdir(parents=True)
    roots_file.write_bytes(b"# date: 2030-01-01\nnot a bundle\n")
    store = trust.store()
    assert store.source == "shipped" and len(store.roots) >= 3
    assert "unreadable" in caplog.text
