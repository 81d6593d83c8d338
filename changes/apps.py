from django.apps import AppConfig


class ChangesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "changes"
    verbose_name = "Change plans and change sets"

    def ready(self) -> None:
        from changes import signals  # noqa: F401 - connects the deleted-source receiver
        from changes.services.common import rotate_all
        from datasources.services.credentials import register_rotator

        register_rotator(rotate_all)  # manage.py rotate_encryption_key re-encrypts the sealed bodies too
