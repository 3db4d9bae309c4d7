"""Trials gain a per-second timeline (requests, failures, latency, DB connections) for the trial page."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("poolbench", "0009_fidelity_saturation"),
    ]

    operations = [
        migrations.AddField(
            model_name="trial",
            name="timeline",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Per second of the trial: requests, latency, DB connections.",
            ),
        ),
    ]
