from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'organizations'

    def ready(self) -> None:
        from organizations import token_cache

        token_cache.connect_signals()  # a token, membership, user or organization change voids the cache
