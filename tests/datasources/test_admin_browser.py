"""An operator edits a PostgreSQL data source in a real (headless) browser; the password survives.

Needs Debian's chromium (/usr/bin/chromium) and a local initdb for the scram-auth cluster.
"""

from __future__ import annotations

import os

import pytest
from pytest_django.live_server_helper import LiveServer

from datasources.models import DataSource
from datasources.services import connection
from datasources.services.datasources import create_data_source
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, Membership, Role
from tests.support.browser import CHROMIUM_ARGS

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "operator", "Op-login-pass-41"
SCREENSHOTS = os.environ.get("ADMIN_SCREENSHOTS")  # a directory, to look at the pages when debugging


@pytest.fixture
def http_live_server(transactional_db, settings):
    """pytest-django's live server, started for this test after switching to plain HTTP.

    The session-wide ``live_server`` loads its middleware once, with the production default
    ``SECURE_SSL_REDIRECT = not DEBUG`` (True under tests), and would redirect every request
    to https. Starting the same helper here, after the override, serves plain HTTP.
    """
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def operator(transactional_db, django_user_model, org):
    user = django_user_model.objects.create_superuser(USERNAME, "operator@example.com", PASSWORD)
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    return user


def test_operator_edits_description_and_password_is_kept(
    http_live_server, chromium_path, operator, org, pg_source_data, pg_password_server, allow_loopback, monkeypatch
):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    actor = Actor(organization=org, user=operator, role=Role.OWNER, scopes=frozenset(ALL_SCOPES))
    ds = create_data_source(actor=actor, data=pg_source_data).data_source  # tested against the cluster
    secret = pg_password_server.password
    base = http_live_server.url
    change_url = f"{base}/admin/datasources/datasource/{ds.pk}/change/"
    seen: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/admin/")
            page.fill("#id_username", USERNAME)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")
            seen.append(page.content())
            assert "/admin/login/" not in page.url

            page.goto(change_url)
            seen.append(page.content())
            if SCREENSHOTS:
                page.screenshot(path=os.path.join(SCREENSHOTS, "change.png"), full_page=True)
            assert page.input_value("#id_credentials__password") == ""
            assert "Password (set)" in page.content()
            page.fill("#id_description", "Edited in a real browser")
            page.click("input[name=_save]")
            page.wait_for_url("**/admin/datasources/datasource/")
            seen.append(page.content())
            if SCREENSHOTS:
                page.screenshot(path=os.path.join(SCREENSHOTS, "changelist.png"), full_page=True)
            assert "was changed successfully" in page.content()

            page.goto(change_url)
            seen.append(page.content())
            assert page.input_value("#id_description") == "Edited in a real browser"
            assert page.input_value("#id_credentials__password") == ""
            assert "Password (set)" in page.content()

            page.goto(f"{base}/admin/datasources/datasource/{ds.pk}/history/")
            seen.append(page.content())
        finally:
            browser.close()

    ds = DataSource.objects.get(pk=ds.pk)
    assert ds.description == "Edited in a real browser"
    assert ds.version == 2
    result = connection.test_stored(data_source=ds, actor=actor)  # scram auth: fails without the right password
    assert result.ok, result.message
    for html in seen:
        assert secret not in html
