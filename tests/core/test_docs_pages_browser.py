"""The API docs (Redoc at /api/redoc/, Swagger UI at /api/docs/) make no request off the machine.

Both pages are loaded in Debian's headless chromium (no browser download) against the real app on a
live server, under a non-loopback host name (``docs.test``, mapped to 127.0.0.1 inside chromium only):
Swagger UI skips its online validator badge for ``localhost``/``127.0.0.1`` URLs, so a loopback URL
would hide the request that a production host name makes. Every request the page makes is recorded;
anything not addressed to the live server is recorded, then aborted (the test never needs the
network), and fails the test. The pages must also have rendered the API itself, not an empty shell.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.support.browser import CHROMIUM_ARGS as BASE_ARGS
from tests.support.live import live_http_server

pytestmark = pytest.mark.browser

DOCS_HOST = "docs.test"
CHROMIUM_ARGS = [
    *BASE_ARGS,
    # Only docs.test resolves (to the live server); any other host name fails fast, offline or not.
    f"--host-resolver-rules=MAP {DOCS_HOST} 127.0.0.1, MAP * ~NOTFOUND",
]
# Schemes that are not a network request (inline images, fonts, workers).
LOCAL_SCHEMES = {"data", "blob", "about"}
SCREENSHOTS = os.environ.get("DOCS_SCREENSHOTS")  # a directory, to look at the pages when debugging


@pytest.fixture
def docs_server(transactional_db, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, DOCS_HOST]
    with live_http_server(settings) as live:
        yield live


@pytest.fixture
def browser(chromium_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Recorder:
    """Every request a page makes (the off-host ones are aborted after being recorded), and its console."""

    def __init__(self, page, origin: str):
        self.origin = origin
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.bad_status: list[str] = []
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", lambda request: self.failed.append(f"{request.url} ({request.failure})"))
        page.on("response", self._response)
        page.route("**/*", self._route)

    def _on_host(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in LOCAL_SCHEMES or f"{parts.scheme}://{parts.netloc}" == self.origin

    def _route(self, route):
        if self._on_host(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    def _response(self, response):
        if self._on_host(response.url) and response.status >= 400:
            self.bad_status.append(f"{response.status} {response.url}")

    @property
    def off_host(self) -> list[str]:
        return sorted({url for url in self.requests if not self._on_host(url)})


def open_docs(browser, url: str, origin: str, rendered_selector: str):
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    recorder = Recorder(page, origin)
    page.goto(url, wait_until="load")
    try:
        page.wait_for_selector(rendered_selector, state="visible", timeout=60_000)
    except Exception as exc:  # say why: the schema's status, what was refused, what the console said
        context.close()
        raise AssertionError(f"{url} did not render {rendered_selector!r}: requests {recorder.requests}, "
                             f"errors {recorder.bad_status + recorder.failed}, console {recorder.console}") from exc
    page.wait_for_load_state("networkidle")
    # Lazy parts (fonts, images further down) load as the page is scrolled through.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")
    return context, page, recorder


def assert_images_local_and_loaded(page, origin: str) -> None:
    """Every image on the page (a logo included) comes from this origin or inline, and has loaded."""
    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(img => [img.currentSrc || img.src, img.complete && img.naturalWidth > 0])")
    for src, loaded in images:
        parts = urlsplit(src)
        assert parts.scheme in LOCAL_SCHEMES or f"{parts.scheme}://{parts.netloc}" == origin, src
        assert loaded, f"image not loaded: {src}"


def _screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=False)


def _origin(live) -> str:
    return f"http://{DOCS_HOST}:{urlsplit(live.url).port}"


def test_redoc_renders_the_api_and_makes_no_request_off_the_machine(docs_server, browser):
    origin = _origin(docs_server)
    context, page, recorder = open_docs(browser, f"{origin}/api/redoc/", origin, "h2:has-text('Workflows')")
    try:
        _screenshot(page, "redoc.png")
        assert recorder.off_host == [], f"Redoc requested other hosts: {recorder.off_host}"
        assert recorder.failed == [], recorder.failed
        assert recorder.bad_status == [], recorder.bad_status
        # The page's Content-Security-Policy refused nothing (no attempt off-host, nothing Redoc needs).
        refused = [line for line in recorder.console if "Content Security Policy" in line]
        assert refused == [], refused
        # The API itself rendered: the title, the paths, operations with their request bodies.
        assert page.locator("h1", has_text="Data-source control plane API").is_visible()
        text = page.locator("body").inner_text().lower()  # as displayed: some headings are upper case
        for expected in ("/api/v1/data-sources/{id}/tenancy/", "/api/v1/workflows/{workflow}/data-sources/",
                         "request body schema", "api docs by redocly"):
            assert expected in text, f"{expected!r} not rendered by Redoc"
        assert page.locator("[data-section-id^='operation/']").count() > 40
        assert_images_local_and_loaded(page, origin)
        assert f"{origin}/api/schema/" in recorder.requests
    finally:
        context.close()


def test_swagger_ui_renders_the_api_and_makes_no_request_off_the_machine(docs_server, browser):
    origin = _origin(docs_server)
    context, page, recorder = open_docs(browser, f"{origin}/api/docs/", origin, ".opblock-summary-path")
    try:
        _screenshot(page, "swagger.png")
        assert recorder.off_host == [], f"Swagger UI requested other hosts: {recorder.off_host}"
        assert recorder.failed == [], recorder.failed
        assert recorder.bad_status == [], recorder.bad_status
        assert page.locator("h1.title", has_text="Data-source control plane API").is_visible()
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert len(paths) > 40
        assert any("/api/v1/data-sources/{id}/tenancy/" in path.replace("\u200b", "") for path in paths)
        # No online validator badge (it would send the document's URL to validator.swagger.io).
        assert page.locator(".swagger-ui img[src*='validator']").count() == 0
        assert_images_local_and_loaded(page, origin)
        assert f"{origin}/api/schema/" in recorder.requests
    finally:
        context.close()
