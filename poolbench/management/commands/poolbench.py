"""``manage.py poolbench``: sweep pool sizes under real load and say which to use.

Thin: the options are declared and checked in :mod:`poolbench.sweep.options`, the sweep runs in
:func:`poolbench.sweep.run.run_sweep`, the verdict comes from :mod:`poolbench.results.summary`.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from poolbench.results import export
from poolbench.results.summary import gate_breaches
from poolbench.results.tables import full_report, trials_table
from poolbench.sweep import children, options
from poolbench.sweep.run import SweepError, SweepOptions, run_sweep
from poolbench.sweep.targets import TargetError, redact
from poolbench.sweep.unwritable import lost_results


class Command(BaseCommand):
    help = (
        "Measure throughput, latency and failures of this site under a real Locust load for each "
        "database connection pool size, store the results, and recommend a size."
    )
    build_options = staticmethod(options.build_options)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds its CommandParser itself; the subclass only changes how a refused value is reported.
        parser.__class__ = options.OptionsParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        options.add_arguments(parser)

    def handle(self, *args: Any, **opts: Any) -> None:
        self.verbosity = opts["verbosity"]
        sweep_options = self.build_options(opts)
        outputs = options.report_files(opts)
        warning = options.bind_warning(sweep_options.bind)
        if warning:
            self.report("warning", warning)
        sweep = self.run(sweep_options, outputs)
        self.stdout.write("")
        self.stdout.write(f"Sweep #{sweep.pk} on {sweep_options.target.description}")
        for line in full_report(sweep, list(sweep.trials.all())):
            self.stdout.write(line)
        self.write_reports(sweep, outputs)
        if sweep.status == sweep.Status.FAILED:
            raise CommandError(f"Every trial of sweep #{sweep.pk} failed; see the errors above.")
        size, breaches = gate_breaches(sweep)
        if breaches:
            raise CommandError(
                f"Gate failed for sweep #{sweep.pk} at pool size {size}: " + "; ".join(breaches)
            )

    def run(self, sweep_options: SweepOptions, outputs: dict[str, Path]) -> Any:
        """run_sweep(); a sweep that stops early still shows what it measured."""
        # SIGTERM (kill, systemd, CI) and SIGHUP (closed terminal) stop the sweep the way Ctrl-C does;
        # after the first, further signals are ignored until the cleanup is done.
        children.reset_interrupted()
        previous = {sig: signal.signal(sig, children.on_stop_signal) for sig in children.STOP_SIGNALS}
        stopped = False
        try:
            return run_sweep(sweep_options, self.report)
        except (SweepError, TargetError) as exc:
            self.print_partial(getattr(exc, "sweep", None), sweep_options, outputs)
            raise CommandError(redact(lost_results(exc))) from exc
        except KeyboardInterrupt as exc:
            stopped = True
            with children.shielded(reraise=False):
                children.stop_all()
                sweep = getattr(exc, "sweep", None)
                self.print_partial(sweep, sweep_options, outputs)
            if sweep is None:
                raise CommandError("Interrupted before the sweep began: nothing was stored.") from None
            raise CommandError(
                f"Interrupted: sweep #{sweep.pk} is marked interrupted; its finished trials are kept."
            ) from None
        finally:
            # Once stopped, the rest of a burst of Ctrl-C must not end the command as killed by SIGINT
            # (status -2) while it prints why it stopped: on the command line, they are ignored to the end.
            stopped = stopped or children.stop_reason_received()
            leaving = stopped and getattr(self, "_called_from_command_line", False)
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_IGN if leaving else handler)

    def write_reports(self, sweep: Any, outputs: dict[str, Path]) -> None:
        for fmt, path in outputs.items():
            export.write(path, export.render(export.load_trials_of([sweep]), fmt))
            self.stdout.write(f"Wrote the {fmt.upper()} report of sweep #{sweep.pk} to {path}")

    def print_partial(self, sweep: Any, sweep_options: SweepOptions, outputs: dict[str, Path]) -> None:
        """What a sweep that stopped early had measured (table, --report/--json): a Ctrl-C never hides it."""
        if sweep is None:
            return
        trials = list(sweep.trials.all())
        if trials and self.verbosity >= 1:
            self.stdout.write("")
            self.stdout.write(f"Sweep #{sweep.pk} on {sweep_options.target.description} ({sweep.status})")
            self.stdout.write(trials_table(trials))
        # The results database lost mid-sweep: the rows are in memory only (sweep/unwritable.py).
        sweeps = [sweep] if "trials" in getattr(sweep, "_prefetched_objects_cache", {}) else None
        for fmt, path in outputs.items():
            try:
                export.write(path, export.render(sweeps or export.load_trials_of([sweep]), fmt))
            except Exception as exc:  # the reason the sweep stopped matters more
                self.stderr.write(f"Could not write the {fmt.upper()} report to {path}: {exc}")
            else:
                self.stdout.write(
                    f"Wrote the {fmt.upper()} report of sweep #{sweep.pk} ({sweep.status}) to {path}"
                )

    def report(self, level: str, message: str) -> None:
        message = redact(message)
        if level == "detail":
            if self.verbosity >= 2:
                self.stdout.write(message)
        elif level == "warning":
            self.stderr.write(self.style.WARNING(message))
        elif level == "success":
            if self.verbosity >= 1:
                self.stdout.write(self.style.SUCCESS(message))
        elif self.verbosity >= 1:
            self.stdout.write(message)
