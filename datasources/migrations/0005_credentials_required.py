# A source moved without its stored secrets is `credentials_required` (status widened to 32 characters: the
# longest value is 20), and the credentials a writer sent that the current destination refused wait,
# encrypted, for that writer's next move (PendingCredentials). No existing row changes.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('datasources', '0004_field_rules'),
        ('organizations', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='datasource',
            name='status',
            field=models.CharField(choices=[('pending', 'Not tested yet'), ('active', 'Active'), ('error', 'Error'), ('credentials_required', 'Credentials required (moved without its secrets)')], default='pending', max_length=32),
        ),
        migrations.CreateModel(
            name='PendingCredentials',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('names', models.JSONField(default=list, help_text='What was sent, by name only (secrets and `username`).')),
                ('stage', models.CharField(help_text='The stage the current destination refused them at.', max_length=16)),
                ('key_id', models.CharField(max_length=64)),
                ('ciphertext', models.TextField()),
                ('created_at', models.DateTimeField()),
                ('expires_at', models.DateTimeField()),
                ('data_source', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pending_credentials', to='datasources.datasource')),
                ('token', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='organizations.apitoken')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['data_source', 'expires_at'], name='datasources_data_so_8e3883_idx')],
            },
        ),
    ]
