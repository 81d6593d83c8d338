"""The data-source service layer: every write, from the API and the admin alike, goes through here."""
