from django.core.management.base import BaseCommand

from organizations.services import create_organization


class Command(BaseCommand):
    help = "Create an organization (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default=None)

    def handle(self, slug, name, **options):
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_slug

        try:
            validate_slug(slug)
        except ValidationError as exc:
            from django.core.management.base import CommandError

            raise CommandError(f"Invalid slug '{slug}': {exc.messages[0]}") from exc
        org, created = create_organization(slug=slug, name=name)
        self.stdout.write(f"{'Created' if created else 'Exists'}: organization {org.slug} ({org.name}) id={org.pk}")
