"""``manage.py poolbench_report``: a stored sweep as a table, CSV, JSON or a self-contained HTML page."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from poolbench.models import Sweep
from poolbench.results import export


class Command(BaseCommand):
    help = "Show or export stored poolbench sweeps (the latest by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "sweep_ids", nargs="*", metavar="SWEEP_ID", help="Sweeps to report (default: the latest)."
        )
        parser.add_argument(
            "--format", default="table", choices=export.FORMATS, help="table (default), csv, json or html."
        )
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write to FILE instead of standard output."
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Let --output replace an existing file that poolbench did not write.",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        output = None
        if opts["output"]:
            try:
                output = export.check_output_path(opts["output"], "--output", overwrite=opts["overwrite"])
            except export.ExportError as exc:
                raise CommandError(str(exc)) from exc
        sweeps = find_sweeps(opts["sweep_ids"])
        text = export.render(sweeps, opts["format"])
        if output is None:
            self.stdout.write(text, ending="")
            return
        export.write(output, text)
        if opts["verbosity"] >= 1:
            ids = ", ".join(f"#{s.pk}" for s in sweeps)
            self.stderr.write(
                self.style.SUCCESS(f"Wrote the {opts['format']} report of sweep {ids} to {output}")
            )


def find_sweeps(raw_ids: list[str]) -> list[Sweep]:
    """The sweeps asked for, in the order given, with their trials; the latest when none is given."""
    if not raw_ids:
        latest = Sweep.objects.order_by("-started_at", "-pk").first()
        if latest is None:
            raise CommandError("there are no sweeps yet; run `python manage.py poolbench` first")
        return export.load_trials_of([latest])
    ids = []
    for raw in raw_ids:
        if not raw.strip().isdigit():
            raise CommandError(
                f"sweep id {raw!r} is not a whole number; give ids like 3 or 3 4 (see the admin)"
            )
        ids.append(int(raw))
    found = set(Sweep.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in dict.fromkeys(ids) if i not in found]
    if missing:
        latest = list(Sweep.objects.order_by("-started_at", "-pk").values_list("pk", flat=True)[:5])
        known = f"the latest are {', '.join(map(str, latest))}" if latest else "there are no sweeps yet"
        raise CommandError(
            f"no sweep with id {', '.join(map(str, missing))}; {known} (omit the id for the latest sweep)"
        )
    return export.load_trials_of([Sweep(pk=i) for i in dict.fromkeys(ids)])
