from django.apps import AppConfig


class DatasourcesConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'datasources'

    def ready(self) -> None:
        from datasources import metrics, tasks
        from datasources.services import refresh_queue

        metrics.register()
        refresh_queue.register(tasks.enqueue_refresh)  # the services queue refreshes without importing tasks
