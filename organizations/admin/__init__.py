"""Admin for tenancy and access: organizations, members, workspaces, API tokens, audit events.

API tokens are created through ``organizations.services.create_token``; the raw token is shown
once, on a page rendered directly in the add response (never stored in a message cookie or the
session), and only its hash is kept. The add form carries a one-time submission id: reloading that
page re-posts the form, and a re-post of an id that already created a token creates nothing and
redirects to that token (without its value). Tokens are revoked (for good), never deleted. Token and
membership changes go through the services, which record them in the audit trail. Audit events
are read-only.

Non-superusers see only their organizations' objects (``OrganizationScopedAdmin``, also used by
the data-source and workflow admins): viewing needs a membership (tokens and members: the owner
or admin role), and changing, adding, deleting or running an action needs both Django's model
permission and the role the API requires for the same operation (a ``viewer`` cannot write).
"""

from __future__ import annotations

from organizations.admin import accounts, audit, organizations, tokens  # noqa: F401 - each registers its models
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin

__all__ = ["ORGANIZATION_FILTER", "OrganizationScopedAdmin"]
