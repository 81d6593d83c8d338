# Validators only (the rules of datasources.fields, checked by full_clean): no schema change, existing rows untouched.

import datasources.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('datasources', '0003_schema_refresh_state'),
    ]

    operations = [
        migrations.AlterField(
            model_name='datasource',
            name='connection_pool_size',
            field=models.PositiveIntegerField(default=5, validators=[datasources.fields.RangeOf('connection_pool_size')]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='connection_timeout',
            field=models.PositiveIntegerField(default=30, validators=[datasources.fields.RangeOf('connection_timeout')]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='description',
            field=models.TextField(blank=True, default='', validators=[datasources.fields.validate_description]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='max_retries',
            field=models.PositiveIntegerField(default=3, validators=[datasources.fields.RangeOf('max_retries')]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='metadata',
            field=models.JSONField(blank=True, default=dict, validators=[datasources.fields.validate_metadata]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='name',
            field=models.CharField(max_length=255, validators=[datasources.fields.validate_name]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='query_timeout',
            field=models.PositiveIntegerField(default=300, validators=[datasources.fields.RangeOf('query_timeout')]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='schema_refresh_interval',
            field=models.PositiveIntegerField(default=86400, validators=[datasources.fields.RangeOf('schema_refresh_interval')]),
        ),
        migrations.AlterField(
            model_name='datasource',
            name='tags',
            field=models.JSONField(blank=True, default=list, validators=[datasources.fields.validate_tags]),
        ),
    ]
