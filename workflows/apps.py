from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """Workflows, their data sources and nodes; repointing with table remapping."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "workflows"
