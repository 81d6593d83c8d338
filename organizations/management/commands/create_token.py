from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from organizations.actors import Actor
from organizations.models import Organization
from organizations.services import create_token


class Command(BaseCommand):
    help = ("Create an API token for an organization (recorded in the audit trail as system:create_token). "
            "The token is printed alone on the last line.")

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("--scopes", required=True, help="Comma-separated, e.g. datasource.read,datasource.write")
        parser.add_argument("--name", default="cli token")
        parser.add_argument("--user", default=None, help="Username the token acts for (limited by their role).")
        parser.add_argument("--expires-at", default=None, help="ISO 8601 date-time.")

    def handle(self, org_slug, scopes, name, user, expires_at, **options):
        org = Organization.objects.filter(slug=org_slug).first()
        if org is None:
            raise CommandError(f"No organization '{org_slug}'.")
        expiry = None
        if expires_at:
            expiry = parse_datetime(expires_at)
            if expiry is None:
                raise CommandError("--expires-at must be an ISO 8601 date-time.")
        try:
            token, raw = create_token(organization=org, name=name, scopes=scopes, username=user, expires_at=expiry,
                                      actor=Actor.system(org, "create_token"))  # recorded in the audit trail
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"Created token '{token.name}' ({token.prefix}…) with scopes {','.join(token.scopes)}.")
        self.stdout.write("Store it now: it is not shown again.")
        self.stdout.write(raw)
