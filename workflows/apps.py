from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """Workflows, their data sources and nodes; repointing with table remapping."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "workflows"

    def ready(self) -> None:
        # Deleting a data source a workflow still reads is refused (409): datasources asks its
        # dependants registry, which workflows fill (datasources never imports workflows).
        from datasources import dependants
        from workflows.selectors import readers_of_tables, tables_read_from
        from workflows.services import dependants_of_data_source

        dependants.register(dependants_of_data_source)
        # A schema change names the workflows reading a removed or changed table (the drift event).
        dependants.register_table_readers(readers_of_tables)
        # A dry run, a plan or a change set reports what a change would break (the impact report).
        dependants.register_table_users(tables_read_from)
