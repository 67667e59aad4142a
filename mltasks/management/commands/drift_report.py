from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.dateparse import parse_datetime

from mltasks.drift_services import drift_report_create


class Command(BaseCommand):
    help = "Check data drift now (what the daily drift_check task does) and print the report."

    def add_arguments(self, parser):
        parser.add_argument(
            "--window-days",
            type=int,
            default=settings.DRIFT_WINDOW_DAYS,
            help="length of the recent window (default DRIFT_WINDOW_DAYS=%(default)s)",
        )
        parser.add_argument(
            "--psi-threshold",
            type=float,
            default=settings.DRIFT_PSI_THRESHOLD,
            help="PSI above which a feature counts as drifted (default %(default)s)",
        )
        parser.add_argument(
            "--until",
            type=parse_datetime,
            default=None,
            help="end of the recent window as an ISO datetime (default now)",
        )

    def handle(self, *args, **options):
        report = drift_report_create(
            window_days=options["window_days"],
            psi_threshold=options["psi_threshold"],
            window_end=options["until"],
        )
        write = self.stdout.write
        write(f"Drift report #{report.pk}  (PSI threshold {report.psi_threshold:g})")
        write(
            f"  recent:    {report.window_start:%Y-%m-%d %H:%M} → "
            f"{report.window_end:%Y-%m-%d %H:%M}"
        )
        reference = report.get_reference_source_display()
        if report.reference_version_id:
            reference += f" (model version {report.reference_version_id})"
        write(
            f"  reference: {report.reference_start:%Y-%m-%d %H:%M} → "
            f"{report.reference_end:%Y-%m-%d %H:%M}  {reference}"
        )
        for note in report.notes:
            write(f"  note: {note}")
        header = f"{'feature':<16} {'PSI':>8} {'KS p':>10} {'n ref':>9} {'n recent':>9}  status"
        write("")
        write(header)
        write("-" * len(header))
        for name, feature in report.features.items():
            if feature["psi"] is None:
                status = feature["note"]
            else:
                status = "DRIFT" if feature["drifted"] else "ok"
            write(
                f"{name:<16} {_number(feature['psi'], '.4f'):>8} "
                f"{_number(feature['ks_pvalue'], '.3g'):>10} "
                f"{feature['n_reference']:>9} {feature['n_current']:>9}  {status}"
            )
        if report.drifted:
            self.stdout.write(self.style.WARNING("\nDrift above threshold."))


def _number(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)
