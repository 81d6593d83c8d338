"""A secret shown once, on the page that answers an add form's POST (API tokens, webhook signing
secrets): never in a message (the session or a cookie would keep it until the next page), never
cached by the browser.

The add form carries a one-time submission id. Reloading the "shown once" page re-posts the form; a
re-post of an id that already created an object creates nothing: :func:`already_created` names that
object (the session keeps the id and the object's pk, never the secret) and the admin leads there.
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.template import engines
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

SUBMISSION_FIELD = "submission"
_SUBMISSIONS_KEPT = 20


def new_submission_id() -> str:
    return secrets.token_urlsafe(16)


def submission_field() -> forms.CharField:
    """The add form's hidden one-time id (a new one per rendered form)."""
    return forms.CharField(widget=forms.HiddenInput, required=False, max_length=64, initial=new_submission_id)


def remember(request: Any, session_key: str, submission: str | None, pk: int) -> None:
    """Record that ``submission`` created the object ``pk`` (the newest ids only)."""
    if submission:
        done = {**request.session.get(session_key, {}), submission: pk}
        request.session[session_key] = dict(list(done.items())[-_SUBMISSIONS_KEPT:])


def already_created(request: Any, session_key: str) -> Any:
    """The pk of the object this POST's submission id already created, or None."""
    submission = request.POST.get(SUBMISSION_FIELD)
    return request.session.get(session_key, {}).get(submission) if submission else None


def response(request: Any, template_source: str, context: dict[str, Any]) -> TemplateResponse:
    """The page that shows the secret: rendered in this response only, never cached."""
    template = engines["django"].from_string(template_source)
    response = TemplateResponse(request, template, context)
    add_never_cache_headers(response)
    return response
