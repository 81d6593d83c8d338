from django.core.management.base import BaseCommand
from django.db import transaction

from datasources import crypto
from datasources.services.credentials import rotate_all
from datasources.services.revisions import rotate_sealed


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (data sources' credentials, their revisions and the trash) with the "
            "newest key in ENCRYPTION_KEYS (idempotent).")

    def handle(self, **options):
        with transaction.atomic():
            counts = rotate_all()
            sealed = rotate_sealed(crypto.load_keyring())
        total = {key: counts[key] + sealed[key] for key in counts}
        self.stdout.write(f"Primary key: {crypto.load_keyring().primary_id}")
        self.stdout.write(
            f"re-encrypted={total['re_encrypted']} already_current={total['already_current']} "
            f"failed={total['failed']}"
        )
        if total["failed"]:
            self.stderr.write("Some secrets could not be decrypted with any configured key.")
