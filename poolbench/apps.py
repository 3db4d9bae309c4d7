from django.apps import AppConfig


class PoolbenchConfig(AppConfig):
    name = "poolbench"
    verbose_name = "poolbench"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from poolbench import checks  # noqa: F401  (registers the system checks)
