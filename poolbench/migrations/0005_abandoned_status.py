"""Sweeps and trials gain the status "abandoned": their command died while they ran (results/stale.py)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("poolbench", "0004_results_from_json"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sweep",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "running"),
                    ("done", "done"),
                    ("failed", "failed"),
                    ("interrupted", "interrupted"),
                    ("error", "error"),
                    ("abandoned", "abandoned"),
                ],
                db_index=True,
                default="running",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="trial",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "running"),
                    ("ok", "ok"),
                    ("error", "error"),
                    ("interrupted", "interrupted"),
                    ("abandoned", "abandoned"),
                ],
                default="running",
                max_length=16,
            ),
        ),
    ]
