"""OpenAPI descriptions for the data-source endpoints (kept out of the views)."""


def datasource_viewset(cls):
    return cls


def types_viewset(cls):
    return cls
