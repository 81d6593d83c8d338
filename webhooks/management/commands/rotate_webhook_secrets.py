from django.core.management.base import BaseCommand
from django.db import transaction

from datasources import crypto
from webhooks.services.signing import rotate_all


class Command(BaseCommand):
    help = "Re-encrypt every webhook signing secret with the newest key in ENCRYPTION_KEYS (idempotent)."

    def handle(self, **options):
        with transaction.atomic():
            counts = rotate_all()
        self.stdout.write(f"Primary key: {crypto.load_keyring().primary_id}")
        self.stdout.write(f"re-encrypted={counts['re_encrypted']} already_current={counts['already_current']} "
                          f"failed={counts['failed']}")
        if counts["failed"]:
            self.stderr.write("Some webhook secrets could not be decrypted with any configured key.")
