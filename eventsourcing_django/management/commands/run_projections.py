"""``manage.py run_projections``: run projections as a long-lived worker."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventsourcing_django.progress import (
    Progress,
    catch_up_progress,
    configure_logging,
)
from eventsourcing_django.projections import (
    HEARTBEAT_INTERVAL,
    LoadedProjection,
    WorkerAliveError,
    WorkerRegistration,
    logger,
    projection_specs,
)
from eventsourcing_django.threads import keep_connections


class Command(BaseCommand):
    help = (
        "Run projections declared in settings.EVENTSOURCING_PROJECTIONS: catch up "
        "with the events recorded so far, then follow new ones until SIGINT or "
        "SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names",
            metavar="projection",
            nargs="*",
            help="Projections to run (default: all declared).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even if another worker of these projections seems alive.",
        )
        parser.add_argument(
            "--heartbeat",
            type=float,
            default=HEARTBEAT_INTERVAL,
            help="Seconds between heartbeats (default %(default)s).",
        )
        parser.add_argument(
            "--catch-up-only",
            action="store_true",
            help="Exit once the events recorded at start have been processed.",
        )

    def handle(self, *args: str, **options: Any) -> None:
        configure_logging(options["verbosity"])
        try:
            specs = projection_specs(options["names"])
        except ImproperlyConfigured as e:
            raise CommandError(str(e)) from e
        if not specs:
            msg = "No projections: declare them in settings.EVENTSOURCING_PROJECTIONS"
            raise CommandError(msg)

        stop = threading.Event()
        self._install_signal_handlers(stop)
        loaded: list[LoadedProjection] = []
        try:
            for spec in specs:
                loaded.append(LoadedProjection(spec))
            registration = WorkerRegistration(
                [(p.spec.name, p.using) for p in loaded], interval=options["heartbeat"]
            )
            registration.claim(force=options["force"])
        except (WorkerAliveError, ImproperlyConfigured) as e:
            for projection in loaded:
                projection.close()
            raise CommandError(str(e)) from e

        threads: list[threading.Thread] = []
        errors: list[BaseException] = []
        try:
            with catch_up_progress(
                self.stdout, [s.name for s in specs]
            ) as progress_for:
                for projection in loaded:
                    thread = threading.Thread(
                        target=self._run,
                        args=(
                            projection,
                            stop,
                            errors,
                            options["catch_up_only"],
                            progress_for,
                        ),
                        name=f"projection-{projection.spec.name}",
                    )
                    thread.start()
                    threads.append(thread)
                while any(t.is_alive() for t in threads):
                    for thread in threads:
                        thread.join(timeout=options["heartbeat"] / len(threads))
                    registration.beat()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            registration.release()
            for projection in loaded:
                projection.close()
        if errors:
            msg = f"A projection failed: {errors[0]!r}"
            raise CommandError(msg) from errors[0]
        self.stdout.write(self.style.SUCCESS("Stopped."))

    def _run(
        self,
        projection: LoadedProjection,
        stop: threading.Event,
        errors: list[BaseException],
        catch_up_only: bool,
        progress_for: Callable[[str], Progress],
    ) -> None:
        name = projection.spec.name
        # A long-lived thread: keep its connections, close them when it ends.
        with keep_connections():
            try:
                logger.info("%s: catching up from %d", name, projection.position())
                progress = progress_for(name)
                try:
                    count = projection.catch_up(stop=stop, progress=progress)
                finally:
                    progress.finish()
                logger.info("%s: processed %d events while catching up", name, count)
                if catch_up_only or stop.is_set():
                    return
                logger.info("%s: following from %d", name, projection.position())
                with projection.follow() as subscription:

                    def stop_following() -> None:
                        stop.wait()
                        subscription.stop()

                    threading.Thread(target=stop_following, daemon=True).start()
                    for domain_event, tracking in subscription:
                        projection.process(domain_event, tracking)
                        logger.debug("%s: processed %d", name, tracking.notification_id)
            except BaseException as e:
                logger.exception("%s: stopped by an error", name)
                errors.append(e)
                stop.set()

    def _install_signal_handlers(self, stop: threading.Event) -> None:
        def handler(signum: int, _: FrameType | None) -> None:
            logger.info("Received %s, stopping", signal.Signals(signum).name)
            stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
            signal.signal(signal.SIGTERM, handler)
