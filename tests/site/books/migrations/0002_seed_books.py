from django.db import migrations

BOOKS = [
    ("The Pool and the Pendulum", "E. A. Poolbench", 1842),
    ("Twenty Thousand Queries Under the Sea", "J. Verne", 1870),
    ("A Tale of Two Connections", "C. Dickens", 1859),
    ("Pride and Persistence", "J. Austen", 1813),
    ("The Count of Max Connections", "A. Dumas", 1844),
    ("Great Expectations of Latency", "C. Dickens", 1861),
    ("War and Throughput", "L. Tolstoy", 1869),
    ("Crime and Timeouts", "F. Dostoevsky", 1866),
    ("The Idle Connection", "F. Dostoevsky", 1869),
    ("Moby Lock", "H. Melville", 1851),
    ("Little Women, Big Pools", "L. M. Alcott", 1868),
    ("Wuthering Heights of Load", "E. Bronte", 1847),
]


def seed(apps, schema_editor):
    Book = apps.get_model("books", "Book")
    Book.objects.using(schema_editor.connection.alias).bulk_create(
        [Book(title=t, author=a, year=y) for t, a, y in BOOKS]
    )


def unseed(apps, schema_editor):
    apps.get_model("books", "Book").objects.using(schema_editor.connection.alias).all().delete()


class Migration(migrations.Migration):
    dependencies = [("books", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
