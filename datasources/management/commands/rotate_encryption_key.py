from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from datasources import crypto
from datasources.services.credentials import registered_rotators, rotate_all
from datasources.services.revisions import rotate_sealed


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (data sources' credentials, their revisions, the trash, webhook "
            "signing secrets) with the newest key in ENCRYPTION_KEYS (idempotent). Exits with status 1 when "
            "any secret failed (no configured key decrypts it): keep the old keys until failed=0.")

    def handle(self, **options):
        with transaction.atomic():
            parts = [rotate_all(), rotate_sealed(crypto.load_keyring())]
            parts += [rotator() for rotator in registered_rotators()]
        total = {key: sum(part[key] for part in parts) for key in parts[0]}
        self.stdout.write(f"Primary key: {crypto.load_keyring().primary_id}")
        self.stdout.write(
            f"re-encrypted={total['re_encrypted']} already_current={total['already_current']} "
            f"failed={total['failed']}"
        )
        if total["failed"]:  # the counts line is printed first; a deploy script sees the exit status
            raise CommandError(f"{total['failed']} secret(s) could not be decrypted with any configured key: keep "
                               f"the old keys in ENCRYPTION_KEYS until failed=0.")
