from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self) -> None:
        from eventlog import listeners
        from webhooks import metrics, tasks

        metrics.register()
        listeners.register(tasks.on_events)
