"""`make admin`: the demo's admin in one command.

Creates poolbench's tables if needed, collects the static files (the admin's CSS and JS, served by
WhiteNoise in project/wsgi.py whatever DEBUG is), creates a superuser when there is none, then runs the
demo under gunicorn (a real WSGI server, not runserver) on 127.0.0.1 and prints the admin's URL.

The superuser's password: POOLBENCH_ADMIN_PASSWORD when set (never printed); else asked on a terminal;
else (no terminal: CI, a pipe) generated and printed once. Its name: POOLBENCH_ADMIN_USER, default "admin".
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from typing import TextIO

BIND_HOST = "127.0.0.1"


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; give 1-65535, e.g. --port 8000")
    return value


def ensure_superuser(stdin: TextIO, stdout: TextIO) -> None:
    """Create a superuser when the database has none; say which password it got."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    if users.objects.filter(is_superuser=True).exists():
        stdout.write("A superuser exists already: log in with it.\n")
        return
    name = os.environ.get("POOLBENCH_ADMIN_USER", "admin")
    password = os.environ.get("POOLBENCH_ADMIN_PASSWORD", "")
    if password:
        said = "the password in POOLBENCH_ADMIN_PASSWORD"
    elif stdin.isatty():
        password = _ask_password(name)
        said = "the password you typed"
    else:
        password = secrets.token_urlsafe(12)
        said = f"password {password} (shown this once; change it in the admin)"
    users.objects.create_superuser(name, email="", password=password)
    stdout.write(f"Created the superuser {name!r} with {said}.\n")


def _ask_password(name: str) -> str:
    while True:
        first = getpass.getpass(f"Password for the new superuser {name!r}: ")
        if not first:
            print("An empty password is not allowed; type one (or Ctrl-C).")
        elif first != getpass.getpass("Again: "):
            print("The two passwords differ; try again.")
        else:
            return first


def gunicorn_argv(bind_port: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "project.wsgi:application", "--bind", f"{BIND_HOST}:{bind_port}",
        "--workers", "1", "--threads", "4", "--access-logfile", "-", "--log-level", "warning",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make admin", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=port, default=int(os.environ.get("POOLBENCH_ADMIN_PORT", "8000")))
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    ensure_superuser(sys.stdin, sys.stdout)
    print(
        f"The admin: http://{BIND_HOST}:{args.port}/admin/  (sweeps: /admin/poolbench/sweep/; Ctrl-C stops)"
    )
    sys.stdout.flush()
    # gunicorn takes this process's place: Ctrl-C stops it and nothing is left behind.
    os.execv(sys.executable, gunicorn_argv(args.port))


if __name__ == "__main__":
    main()
