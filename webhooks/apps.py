from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from datasources.services.credentials import register_rotator
        from eventlog import listeners
        from webhooks import metrics, tasks
        from webhooks.models import Webhook
        from webhooks.services.delivery import forget_active
        from webhooks.services.signing import rotate_all

        metrics.register()
        listeners.register(tasks.on_events)
        # The listener's "any active webhook?" answer is cached: a webhook saved or deleted drops it.
        post_save.connect(forget_active, sender=Webhook, dispatch_uid="webhooks-active-cache")
        post_delete.connect(forget_active, sender=Webhook, dispatch_uid="webhooks-active-cache-delete")
        register_rotator(rotate_all)  # manage.py rotate_encryption_key covers webhook secrets too
