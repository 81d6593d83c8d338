"""Drop-in adapters that serve the seed products' update endpoints over the same services."""
