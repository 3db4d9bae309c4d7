from django.db import migrations


def insert_row(apps, schema_editor):
    Probe = apps.get_model("poolbench", "Probe")
    db = schema_editor.connection.alias
    if not Probe.objects.using(db).exists():
        Probe.objects.using(db).create(testcol="test")


def delete_rows(apps, schema_editor):
    apps.get_model("poolbench", "Probe").objects.using(schema_editor.connection.alias).all().delete()


class Migration(migrations.Migration):
    dependencies = [("poolbench", "0001_initial")]

    operations = [migrations.RunPython(insert_row, delete_rows)]
