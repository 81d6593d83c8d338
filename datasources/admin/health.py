"""The data-source admin's health displays (the state, a strip of the recent checks) and its
"Run health check now" action, through ``datasources.services.health`` as the worker runs it.

Everything rendered goes through ``format_html`` (escaped); a check's message is the connector's
cleaned text, never a secret."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from datasources.models import DataSource, HealthState
from datasources.selectors import health_history
from datasources.services import health

COLOURS = {"passed": "#2e7d32", "failed": "#c62828"}
STATE_COLOURS: dict[str, str] = {
    HealthState.HEALTHY: "#2e7d32", HealthState.FAILING: "#c62828", HealthState.UNKNOWN: "#757575",
}
CELL = "display:inline-block;width:7px;height:18px;margin-right:1px;background:{}"


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S %Z}" if value else "never"


def _title(check: Any) -> str:
    parts = [_when(check.checked_at), check.outcome, f"{check.duration_ms} ms"]
    if check.stage:
        parts.append(f"stage {check.stage}")
    if check.code:
        parts.append(check.code)
    text = ", ".join(parts)
    return f"{text}: {check.message}" if check.message else text


def health_strip(data_source: DataSource) -> str:
    """The kept checks as small coloured cells, oldest left, newest right, each titled with its details."""
    checks = list(health_history(data_source))[::-1]
    if not checks:
        return format_html('<span class="health-strip">{}</span>', "No checks yet.")
    cells = format_html_join(
        "", '<span class="health-cell health-{}" style="{}" title="{}"></span>',
        ((c.outcome, CELL.format(COLOURS.get(c.outcome, "#757575")), _title(c)) for c in checks),
    )
    return format_html('<span class="health-strip">{}</span>', cells)


class HealthAdminMixin:
    """Mixed into ``DataSourceAdmin``: ``health_badge`` (list), ``health_summary`` (change page) and
    the ``run_health_check_action`` action."""

    @admin.display(description="Health", ordering="health_state")
    def health_badge(self, obj: DataSource) -> str:
        return format_html('<span class="health-state health-{}" style="color:{}" title="since {}">{}</span>',
                           obj.health_state, STATE_COLOURS.get(obj.health_state, "#757575"), _when(obj.health_since),
                           obj.get_health_state_display())

    @admin.display(description="Health checks")
    def health_summary(self, obj: DataSource) -> str:
        seconds, origin = health.interval_of(obj)
        schedule = f"every {seconds} s ({origin})" if seconds else "off"
        return format_html(
            "{} since {}; last check {}; {} consecutive failure(s) (threshold {}); schedule: {}.<br>{}",
            self.health_badge(obj), _when(obj.health_since), _when(obj.health_checked_at), obj.health_failures,
            obj.organization.health_failure_threshold, schedule, health_strip(obj),
        )

    @admin.action(description="Run health check now", permissions=["change"])
    def run_health_check_action(self, request: Any, queryset: Any) -> None:
        self.check_action_allowed(request, queryset)  # type: ignore[attr-defined]  # OrganizationScopedAdmin's
        for ds in queryset:
            outcome = health.run_health_check(ds.pk)
            level = {"passed": messages.SUCCESS, "failed": messages.ERROR}.get(outcome.result, messages.WARNING)
            state = f" (now {outcome.state})" if outcome.state else ""
            self.message_user(request, f"{ds.name}: health check {outcome.result}{state}.", level)  # type: ignore[attr-defined]
