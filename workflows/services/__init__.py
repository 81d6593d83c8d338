"""Workflow services: the one place writes happen (API and admin alike)."""

from workflows.services.workflows import dependants_of_data_source, dependants_of_workflow

__all__ = ["dependants_of_data_source", "dependants_of_workflow"]
