"""Bad input to the management commands (an outside audit): a clear one-line CommandError (exit
status 1, no traceback) and nothing changes, on SQLite and PostgreSQL alike; good input works as
documented (README, "Management commands")."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import connections

from datasources.models import Credential, DataSource
from datasources.services.credentials import write_secrets
from organizations.models import ApiToken, AuditEvent, Organization

SCOPES = ("--scopes", "datasource.read")


def _run(capsys, *args) -> list[str]:
    call_command(*args)
    return capsys.readouterr().out.strip().splitlines()


def _refused(*args) -> str:
    with pytest.raises(CommandError) as exc:
        call_command(*args)
    return str(exc.value)


# --- create_organization ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("a" * 300,), "at most 63 characters (it has 300)"),
        (("initech", "--name", "n" * 400), "at most 255 characters (it has 400)"),
        (("initech", "--name", "   "), "--name must not be blank"),
    ],
)
def test_create_organization_refuses_what_the_fields_cannot_hold(db, args, message):
    assert message in _refused("create_organization", *args)
    assert not Organization.objects.exists()


def test_create_organization_rerun_keeps_the_existing_name(db, capsys):
    assert _run(capsys, "create_organization", "other", "--name", "Other")[-1].startswith("Created: organization other")
    line = _run(capsys, "create_organization", "other", "--name", "Renamed")[-1]
    assert line.startswith("Exists: organization other (Other)") and "'Renamed' not applied" in line
    assert Organization.objects.get(slug="other").name == "Other"
    assert _run(capsys, "create_organization", "other")[-1].startswith("Exists: organization other (Other) id=")
    assert _run(capsys, "create_organization", "other", "--name", "Other")[-1].endswith(
        f"id={Organization.objects.get(slug='other').pk}")  # the same name: nothing to say


def test_create_organization_refuses_a_slug_that_differs_only_in_case(db, capsys):
    """Workflow references ("org.source") compare organization slugs case-insensitively."""
    call_command("create_organization", "demo")
    assert "Organization 'demo' already exists" in _refused("create_organization", "DEMO")
    assert list(Organization.objects.values_list("slug", flat=True)) == ["demo"]


# --- create_token -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", "t" * 256), "at most 255 characters (it has 256)"),
        (("--name", ""), "A token needs a name."),
        (("--name", "  "), "A token needs a name."),
        (("--expires-at", "2030-01-01T00:00:00+99:00"), "is not a valid date-time"),
        (("--expires-at", "9999-12-31T23:59:59-01:00"), "is not a valid date-time"),
        (("--expires-at", "2000-01-01T00:00:00Z"), "The expiry must be in the future."),
        (("--expires-at", "2000-01-01"), "The expiry must be in the future."),
    ],
)
def test_create_token_refuses_bad_input_and_creates_nothing(org, args, message):
    assert message in _refused("create_token", org.slug, *SCOPES, *args)
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2030-01-01", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T12:30:00", datetime(2030, 1, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_create_token_takes_a_value_without_offset_as_utc(org, capsys, value, stored):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # Django's "received a naive datetime"
        raw = _run(capsys, "create_token", org.slug, *SCOPES, "--name", "naive", "--expires-at", value)[-1]
        _run(capsys, "create_token", org.slug, *SCOPES, "--name", "aware", "--expires-at", "2030-01-01T12:30:00+02:00")
    token = ApiToken.objects.get(name="naive")
    assert raw.startswith("dsp_") and token.expires_at == stored
    assert ApiToken.objects.get(name="aware").expires_at == datetime(2030, 1, 1, 10, 30, tzinfo=UTC)


# --- rotate_encryption_key --------------------------------------------------------------------------


def _sources_with_a_lost_secret(org) -> Credential:
    ds = DataSource.objects.create(organization=org, reference_id="sMCI1", name="mc", type="postgresql")
    write_secrets(ds, {"password": "kept"})  # under the current key: already current
    other = DataSource.objects.create(organization=org, reference_id="sMCI2", name="mc2", type="postgresql")
    return Credential.objects.create(data_source=other, field="password", key_id="gone", ciphertext="not-decryptable")


def test_rotate_encryption_key_fails_while_a_secret_failed(org, capsys):
    lost = _sources_with_a_lost_secret(org)
    with pytest.raises(CommandError, match="1 secret"):
        call_command("rotate_encryption_key")
    assert "re-encrypted=0 already_current=1 failed=1" in capsys.readouterr().out  # still printed
    assert Credential.objects.get(pk=lost.pk).key_id == "gone"
    lost.delete()  # once failed=0, it succeeds
    call_command("rotate_encryption_key")
    assert "re-encrypted=0 already_current=1 failed=0" in capsys.readouterr().out


# --- as a shell runs them: exit status 1, one line, no traceback --------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["create_organization", "a" * 300],
        ["create_organization", "ACME"],
        ["create_token", "acme", *SCOPES, "--name", "t" * 300],
        ["create_token", "acme", *SCOPES, "--expires-at", "2030-01-01T00:00:00+99:00"],
        ["create_token", "acme", *SCOPES, "--expires-at", "2000-01-01T00:00:00Z"],
        ["rotate_encryption_key"],
    ],
)
def test_bad_input_exits_1_with_one_line(org, capsys, monkeypatch, argv):
    """``manage.py <argv>`` in-process; run_from_argv's closing of the connections would end the test's
    transaction on PostgreSQL, so it is left out."""
    monkeypatch.setattr(connections, "close_all", lambda: None)
    if argv[0] == "rotate_encryption_key":
        _sources_with_a_lost_secret(org)
    before = (Organization.objects.count(), ApiToken.objects.count())
    with pytest.raises(SystemExit) as exc:
        execute_from_command_line(["manage.py", *argv])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: "), captured.err
    assert (Organization.objects.count(), ApiToken.objects.count()) == before
    if argv[0] == "rotate_encryption_key":
        assert captured.out.strip().splitlines()[-1] == "re-encrypted=0 already_current=1 failed=1"


def test_the_create_organization_service_never_renames_an_existing_organization(db):
    from organizations.services import create_organization

    first, created = create_organization(slug="kept", name="Kept Inc")
    again, created_again = create_organization(slug="kept", name="Another name")
    assert created and not created_again and again.pk == first.pk
    again.refresh_from_db()
    assert again.name == "Kept Inc"
