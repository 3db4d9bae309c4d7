#!/usr/bin/env python
"""Django's command-line utility for the poolbench demo project."""

import os
import sys


def settings_option(argv: list[str]) -> str | None:
    """The value of --settings, which Django reads only after this file has loaded the settings."""
    for i, arg in enumerate(argv):
        if arg == "--settings" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--settings="):
            return arg.split("=", 1)[1]
    return None


def main() -> None:
    given = settings_option(sys.argv[1:])
    if given:  # so that the command and the servers it starts load the same settings
        os.environ["DJANGO_SETTINGS_MODULE"] = given
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.DATABASES  # noqa: B018  (loads the settings: a bad DATABASE_URL is one line, no traceback)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Error: {exc}\n")
        sys.exit(1)
    except ModuleNotFoundError as exc:
        if not given:
            raise
        sys.stderr.write(
            f"Error: --settings {given}: no such module ({exc}); give the dotted path of a settings module "
            "as Python imports it, e.g. --settings project.settings\n"
        )
        sys.exit(1)

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
