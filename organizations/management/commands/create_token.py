from datetime import UTC

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from organizations.actors import Actor
from organizations.models import ApiToken, Organization
from organizations.services import create_token


class Command(BaseCommand):
    help = ("Create an API token for an organization (recorded in the audit trail as system:create_token). "
            "The token is printed alone on the last line.")

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("--scopes", required=True, help="Comma-separated, e.g. datasource.read,datasource.write")
        parser.add_argument("--name", default="cli token", help="1-255 characters, not blank.")
        parser.add_argument("--user", default=None, help="Username the token acts for (limited by their role).")
        parser.add_argument("--expires-at", default=None,
                            help="ISO 8601 date-time in the future, e.g. 2030-01-01T00:00:00+02:00; one without an "
                                 "offset, or a date alone (midnight), is taken as UTC.")

    def handle(self, org_slug, scopes, name, user, expires_at, **options):
        org = Organization.objects.filter(slug=org_slug).first()
        if org is None:
            raise CommandError(f"No organization '{org_slug}'.")
        if not name.strip():  # the admin's rules for a token's name
            raise CommandError("A token needs a name.")
        try:
            ApiToken._meta.get_field("name").clean(name, None)
        except ValidationError as exc:
            raise CommandError(f"Invalid --name: {' '.join(exc.messages)}") from exc
        expiry = None
        if expires_at:
            try:
                expiry = parse_datetime(expires_at)
                if expiry is not None:
                    if timezone.is_naive(expiry):
                        expiry = timezone.make_aware(expiry, UTC)  # said in --help
                    expiry.astimezone(UTC)  # an offset that moves it past year 9999 cannot be stored
            except (ValueError, OverflowError) as exc:  # e.g. month 13, offset +99:00
                reason = str(exc).rstrip(".")
                raise CommandError(f"--expires-at {expires_at[:64]!r} is not a valid date-time: {reason}.") from exc
            if expiry is None:
                raise CommandError("--expires-at must be an ISO 8601 date-time.")
            if expiry <= timezone.now():  # the admin's rule
                raise CommandError("The expiry must be in the future.")
        try:
            token, raw = create_token(organization=org, name=name, scopes=scopes, username=user, expires_at=expiry,
                                      actor=Actor.system(org, "create_token"))  # recorded in the audit trail
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"Created token '{token.name}' ({token.prefix}…) with scopes {','.join(token.scopes)}.")
        self.stdout.write("Store it now: it is not shown again.")
        self.stdout.write(raw)
