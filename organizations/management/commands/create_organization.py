from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from organizations.models import Organization
from organizations.services import create_organization


class Command(BaseCommand):
    help = ("Create an organization (idempotent): an existing slug is kept as it is, its name included "
            "(rename it in the admin). A slug that differs from an existing one only in case is refused.")

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default=None, help="Display name (1-255 characters); default: the slug.")

    def handle(self, slug, name, **options):
        # The model fields' own rules (the admin's): a slug of letters, digits, '-' and '_', at most
        # 63 characters; a name of at most 255 that is not blank.
        try:
            Organization._meta.get_field("slug").clean(slug, None)
        except ValidationError as exc:
            shown = slug if len(slug) <= 63 else f"{slug[:60]}..."
            raise CommandError(f"Invalid slug {shown!r}: {' '.join(exc.messages)}") from exc
        if name is not None:
            if not name.strip():
                raise CommandError("--name must not be blank.")
            try:
                Organization._meta.get_field("name").clean(name, None)
            except ValidationError as exc:
                raise CommandError(f"Invalid --name: {' '.join(exc.messages)}") from exc
        existing = Organization.objects.filter(slug=slug).first()
        if existing is not None:  # idempotent: nothing changes, the name included
            note = f"; --name {name!r} not applied, its name is kept" if name and name != existing.name else ""
            self.stdout.write(f"Exists: organization {existing.slug} ({existing.name}) id={existing.pk}{note}")
            return
        # Workflow references ("org.name") compare slugs case-insensitively: no two may differ only in case.
        other = Organization.objects.filter(slug__iexact=slug).order_by("pk").first()
        if other is not None:
            raise CommandError(f"Organization '{other.slug}' already exists; a slug that differs from it only in "
                               f"case is refused.")
        org, created = create_organization(slug=slug, name=name)
        self.stdout.write(f"{'Created' if created else 'Exists'}: organization {org.slug} ({org.name}) id={org.pk}")
