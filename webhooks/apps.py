from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self) -> None:
        from datasources.services.credentials import register_rotator
        from eventlog import listeners
        from webhooks import metrics, tasks
        from webhooks.services.signing import rotate_all

        metrics.register()
        listeners.register(tasks.on_events)
        register_rotator(rotate_all)  # manage.py rotate_encryption_key covers webhook secrets too
