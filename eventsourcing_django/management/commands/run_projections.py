"""``manage.py run_projections``: run projections as a long-lived worker."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventsourcing_django.errors import ConnectionLostError, DatabaseUnavailableError
from eventsourcing_django.progress import (
    Progress,
    catch_up_progress,
    configure_logging,
)
from eventsourcing_django.projections import (
    HEARTBEAT_INTERVAL,
    LoadedProjection,
    ProjectionSpec,
    WorkerAliveError,
    WorkerRegistration,
    logger,
    projection_specs,
)
from eventsourcing_django.retry import Backoff
from eventsourcing_django.threads import keep_connections

#: Default of --max-outage: seconds without a database before the worker exits.
MAX_OUTAGE = 300.0

_DATABASE_AWAY = (ConnectionLostError, DatabaseUnavailableError)


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
            "--max-outage",
            type=float,
            default=MAX_OUTAGE,
            metavar="SECONDS",
            help=(
                "Exit with an error once the database has been unreachable for "
                "this long (default %(default)s); shorter outages are waited out."
            ),
        )
        parser.add_argument(
            "--catch-up-only",
            action="store_true",
            help="Exit once the events recorded at start have been processed.",
        )
        parser.add_argument(
            "--all-tenants",
            action="store_true",
            help=(
                "Run one projection for every django-tenants tenant in this "
                "process, following tenants created meanwhile."
            ),
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=4,
            help=(
                "With --all-tenants: threads that apply tenants' pages "
                "(default %(default)s); the worker holds threads + 2 connections."
            ),
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

        if not options["max_outage"] > 0:
            msg = (
                f"--max-outage must be a number of seconds above 0, got "
                f"{options['max_outage']}"
            )
            raise CommandError(msg)
        stop = threading.Event()
        self._install_signal_handlers(stop)
        if options["all_tenants"]:
            self._run_all_tenants(specs, stop, options)
            return
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
                self._beat_while_running(
                    threads, registration, options["heartbeat"], options["max_outage"]
                )
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

    def _beat_while_running(
        self,
        threads: list[threading.Thread],
        registration: WorkerRegistration,
        interval: float,
        max_outage: float,
    ) -> None:
        """Renew the heartbeat until the projections end; wait out outages of
        the database up to ``max_outage`` seconds, then raise CommandError."""
        outage = Backoff()
        outages = 0
        while any(t.is_alive() for t in threads):
            # While the database is away, look for it at least every second.
            wait = interval if outage.failing_since is None else min(interval, 1.0)
            for thread in threads:
                thread.join(timeout=wait / len(threads))
            try:
                registration.beat()
            except _DATABASE_AWAY as e:
                if outage.failing_since is None:
                    outages += 1
                    logger.warning(
                        "Database unavailable (outage %d): %s. Waiting for it for "
                        "up to %s s (--max-outage)",
                        outages,
                        e,
                        max_outage,
                    )
                outage.failed()
                assert outage.failing_since is not None
                lasted = time.monotonic() - outage.failing_since
                if lasted >= max_outage:
                    msg = (
                        f"The database has been unavailable for {lasted:.1f} s, "
                        f"more than --max-outage {max_outage} s: stopping. Last "
                        f"error: {e}"
                    )
                    raise CommandError(msg) from e
                continue
            lasted_for = outage.succeeded()
            if lasted_for is not None:
                logger.warning(
                    "Database available again after %.1f s (outage %d)",
                    lasted_for,
                    outages,
                )

    def _run(
        self,
        projection: LoadedProjection,
        stop: threading.Event,
        errors: list[BaseException],
        catch_up_only: bool,
        progress_for: Callable[[str], Progress],
    ) -> None:
        name = projection.spec.name
        outage = Backoff()
        # A long-lived thread: keep its connections, close them when it ends.
        with keep_connections():
            while not stop.is_set():
                try:
                    self._catch_up_and_follow(
                        projection, stop, catch_up_only, outage, progress_for
                    )
                    return
                except _DATABASE_AWAY as e:
                    # What the lost event changed was rolled back with its
                    # tracking, or committed with it: resuming from the
                    # tracked position applies every event once.
                    if outage.failing_since is None:
                        logger.warning(
                            "%s: lost the database (%s); resuming from the last "
                            "tracked event when it is back",
                            name,
                            e,
                        )
                    stop.wait(outage.failed())
                except BaseException as e:
                    logger.exception("%s: stopped by an error", name)
                    errors.append(e)
                    stop.set()
                    return

    def _catch_up_and_follow(
        self,
        projection: LoadedProjection,
        stop: threading.Event,
        catch_up_only: bool,
        outage: Backoff,
        progress_for: Callable[[str], Progress],
    ) -> None:
        name = projection.spec.name
        position = projection.position()
        lasted = outage.succeeded()
        if lasted is not None:
            logger.warning(
                "%s: the database is back after %.1f s; resuming from %d",
                name,
                lasted,
                position,
            )
        logger.info("%s: catching up from %d", name, position)
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
            applied_to = projection.position()
            for _, tracking in subscription:
                if tracking.notification_id <= applied_to:
                    continue  # applied by an earlier page
                # The subscription says there is news; apply all there is by
                # now in pages, so that a burst of writes is applied in a few
                # transactions rather than one per event.
                count = projection.catch_up(stop=stop)
                applied_to = projection.position()
                logger.debug("%s: processed %d, up to %d", name, count, applied_to)

    def _run_all_tenants(
        self, specs: list[ProjectionSpec], stop: threading.Event, options: Any
    ) -> None:
        from eventsourcing_django.tenant_worker import AllTenantsWorker, tenant_alias

        if len(specs) != 1 or options["catch_up_only"]:
            msg = (
                "--all-tenants runs one named projection and follows it; for a "
                "one-off catch-up use: manage.py all_tenants_command "
                "run_projections NAME --catch-up-only"
            )
            raise CommandError(msg)
        if options["threads"] < 1:
            msg = f"--threads must be 1 or more, got {options['threads']}"
            raise CommandError(msg)
        (spec,) = specs
        try:
            worker = AllTenantsWorker(spec, stop, threads=options["threads"])
            registration = WorkerRegistration(
                [(spec.name, tenant_alias())], interval=options["heartbeat"]
            )
            registration.claim(force=options["force"])
        except (WorkerAliveError, ImproperlyConfigured) as e:
            raise CommandError(str(e)) from e
        try:
            worker.start()
            worker.run_until_stopped(
                registration.beat, options["heartbeat"], options["max_outage"]
            )
        except _DATABASE_AWAY as e:
            msg = (
                f"The database has been unavailable for more than --max-outage "
                f"{options['max_outage']} s: stopping. Last error: {e}"
            )
            raise CommandError(msg) from e
        finally:
            worker.join()
            registration.release()
        if worker.errors:
            msg = f"The all-tenants worker failed: {worker.errors[0]!r}"
            raise CommandError(msg) from worker.errors[0]
        self.stdout.write(self.style.SUCCESS("Stopped."))

    def _install_signal_handlers(self, stop: threading.Event) -> None:
        def handler(signum: int, _: FrameType | None) -> None:
            logger.info("Received %s, stopping", signal.Signals(signum).name)
            stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
            signal.signal(signal.SIGTERM, handler)
