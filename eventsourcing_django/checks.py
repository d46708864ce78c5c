"""System checks of the settings that place applications' tables (and of the
settings that say how long calls wait for a lost database).

They run with ``manage.py check`` (and before ``migrate`` and ``runserver``), so a
mistake in ``EVENTSOURCING_DATABASES``, ``EVENTSOURCING_SCHEMAS`` or
``DATABASE_ROUTERS`` is reported before an application writes its first event to
the wrong database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router
from eventsourcing.utils import Environment, resolve_topic

from eventsourcing_django.builder import APP_LABEL, build_model
from eventsourcing_django.conf import (
    DATABASES_SETTING,
    SCHEMAS_SETTING,
    application_setting,
)
from eventsourcing_django.retry import (
    RETRIES_SETTING,
    RETRY_DELAY_SETTING,
    InvalidRetrySettingError,
    RetryPolicy,
)
from eventsourcing_django.routers import (
    APPLICATION_HINT,
    EventSourcingRouter,
    alias_for_application,
)
from eventsourcing_django.tables import (
    ApplicationTables,
    InvalidApplicationNameError,
    InvalidSchemaNameError,
    check_schema_name,
)

if TYPE_CHECKING:
    from eventsourcing_django.applications import ApplicationDeclaration
    from eventsourcing_django.projections import ProjectionSpec

#: ``manage.py check --tag eventsourcing`` runs only these checks.
TAG = "eventsourcing"

ROUTER_PATH = "eventsourcing_django.routers.EventSourcingRouter"

# django-tenants' router refuses to migrate anything on an alias other than the
# tenants' one, whatever the model, so before ours it keeps tables off other
# aliases. Known by name: django-tenants need not be installed.
_TENANT_SYNC_ROUTER = ("django_tenants.routers", "TenantSyncRouter")


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Check EVENTSOURCING_DATABASES, EVENTSOURCING_SCHEMAS and the routers."""
    if app_configs is not None and not any(c.name == APP_LABEL for c in app_configs):
        return []
    errors: list[checks.CheckMessage] = []
    databases = _read_setting(DATABASES_SETTING, errors)
    schemas = _read_setting(SCHEMAS_SETTING, errors)
    valid_names = _check_application_names(databases, schemas, errors)
    _check_aliases(databases, errors)
    _check_same_place_for_same_tables(databases, DATABASES_SETTING, errors)
    _check_same_place_for_same_tables(schemas, SCHEMAS_SETTING, errors)
    _check_routers(databases, valid_names, schemas, errors)
    _check_schemas(schemas, valid_names, errors)
    _check_retry_settings(errors)
    _check_batch_settings(errors)
    return errors


def _check_batch_settings(errors: list[checks.CheckMessage]) -> None:
    # Read when a worker starts: a mistake should show at deploy time.
    from eventsourcing_django.projections import (
        BATCH_SECONDS_SETTING,
        BATCH_SIZE_SETTING,
        BatchPolicy,
    )

    try:
        BatchPolicy.from_settings()
    except ImproperlyConfigured as e:
        errors.append(
            checks.Error(
                str(e),
                hint=(
                    f"For example: {BATCH_SIZE_SETTING} = 500, "
                    f"{BATCH_SECONDS_SETTING} = 1.0 (seconds)."
                ),
                id="eventsourcing_django.E016",
            )
        )


def _check_retry_settings(errors: list[checks.CheckMessage]) -> None:
    # Read only when a connection is lost: a mistake must show before that.
    try:
        RetryPolicy.from_settings()
    except InvalidRetrySettingError as e:
        errors.append(
            checks.Error(
                str(e),
                hint=(
                    f"For example: {RETRIES_SETTING} = 5, "
                    f"{RETRY_DELAY_SETTING} = 0.1 (seconds)."
                ),
                id="eventsourcing_django.E015",
            )
        )


def _read_setting(setting: str, errors: list[checks.CheckMessage]) -> Mapping[str, str]:
    try:
        return application_setting(setting)
    except ImproperlyConfigured as e:
        errors.append(
            checks.Error(
                str(e),
                hint=f'For example: {setting} = {{"Universe": "..."}}',
                id="eventsourcing_django.E005",
            )
        )
        return {}


def _check_application_names(
    databases: Mapping[str, str],
    schemas: Mapping[str, str],
    errors: list[checks.CheckMessage],
) -> set[str]:
    valid: set[str] = set()
    for setting, mapping in (
        (DATABASES_SETTING, databases),
        (SCHEMAS_SETTING, schemas),
    ):
        for name in mapping:
            try:
                ApplicationTables.for_application(name)
            except InvalidApplicationNameError as e:
                errors.append(
                    checks.Error(
                        f"settings.{setting} names application {name!r}, whose "
                        f"tables cannot be named: {e}",
                        hint=(
                            "Use the application's name (its class attribute "
                            "'name', by default the class name)."
                        ),
                        id="eventsourcing_django.E003",
                    )
                )
            else:
                valid.add(name)
    return valid


def _check_aliases(
    databases: Mapping[str, str], errors: list[checks.CheckMessage]
) -> None:
    for name, alias in databases.items():
        if alias not in settings.DATABASES:
            errors.append(
                checks.Error(
                    f"settings.{DATABASES_SETTING} sends application {name!r} to "
                    f"database {alias!r}, which is not in settings.DATABASES.",
                    hint=f"Use one of: {', '.join(map(repr, settings.DATABASES))}.",
                    id="eventsourcing_django.E002",
                )
            )


def _check_same_place_for_same_tables(
    mapping: Mapping[str, str], setting: str, errors: list[checks.CheckMessage]
) -> None:
    # Names that differ only in case share their tables.
    seen: dict[str, str] = {}
    for name, value in mapping.items():
        first = seen.setdefault(name.lower(), name)
        if first != name and mapping[first] != value:
            errors.append(
                checks.Error(
                    f"settings.{setting} names {first!r} and {name!r}, which "
                    f"share the tables {name.lower()}_*, with different values "
                    f"({mapping[first]!r} and {value!r}).",
                    hint="Keep one of the two names.",
                    id="eventsourcing_django.E008",
                )
            )


def _check_routers(
    databases: Mapping[str, str],
    valid_names: set[str],
    schemas: Mapping[str, str],
    errors: list[checks.CheckMessage],
) -> None:
    routers: list[Any] = list(router.routers)
    position = next(
        (i for i, r in enumerate(routers) if isinstance(r, EventSourcingRouter)), None
    )
    if position is None:
        if databases:
            errors.append(
                checks.Error(
                    f"settings.{DATABASES_SETTING} is set but the router that reads "
                    "it is not in settings.DATABASE_ROUTERS, so every application "
                    "stays on the 'default' database.",
                    hint=(
                        f"Add {ROUTER_PATH!r} to DATABASE_ROUTERS (before "
                        "django-tenants' TenantSyncRouter, if you use it)."
                    ),
                    id="eventsourcing_django.E001",
                )
            )
        return
    probes = [
        (name, alias, _probe_model(name, schemas))
        for name, alias in databases.items()
        if name in valid_names and alias in settings.DATABASES
    ]
    for earlier in routers[:position]:
        reason = _shadowing(earlier, probes)
        if reason is not None:
            errors.append(
                checks.Error(
                    f"{_path(earlier)} comes before {ROUTER_PATH} in "
                    f"settings.DATABASE_ROUTERS and {reason}, so the applications "
                    f"in settings.{DATABASES_SETTING} are not placed as it says.",
                    hint=f"Put {ROUTER_PATH!r} before it in DATABASE_ROUTERS.",
                    id="eventsourcing_django.E004",
                )
            )


def _probe_model(name: str, schemas: Mapping[str, str]) -> type[models.Model]:
    tables = ApplicationTables.for_application(name)
    schema = schemas.get(name)
    try:
        schema = None if schema is None else check_schema_name(schema)
    except InvalidSchemaNameError:
        schema = None  # Reported by _check_schemas; the routers' answer is the same.
    return build_model("events", tables.events, application_name=name, schema=schema)


def _shadowing(
    earlier: Any, probes: list[tuple[str, str, type[models.Model]]]
) -> str | None:
    """Why ``earlier`` keeps our router from deciding, or None."""
    if any(
        (c.__module__, c.__qualname__) == _TENANT_SYNC_ROUTER
        for c in type(earlier).__mro__
    ):
        return "refuses to migrate any table on an alias other than the tenants'"
    for name, alias, model in probes:
        for method in ("db_for_read", "db_for_write"):
            answer = _ask(earlier, method, model)
            if answer is not None and answer != alias:
                return f"{method} sends {name!r} to {answer!r}, not {alias!r}"
        for db in settings.DATABASES:
            answer = _ask(
                earlier,
                "allow_migrate",
                db,
                APP_LABEL,
                model_name=model._meta.model_name,
                model=model,
                **{APPLICATION_HINT: name},
            )
            if answer is not None and bool(answer) != (db == alias):
                allowed = "allows" if answer else "refuses"
                return f"allow_migrate {allowed} the tables of {name!r} on {db!r}"
    return None


def _ask(earlier: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    function: Callable[..., Any] | None = getattr(earlier, method, None)
    if function is None:
        return None
    try:
        return function(*args, **kwargs)
    except Exception:
        # A router that cannot answer outside a request (it needs a tenant, a
        # thread-local user...) cannot be probed here; it is not reported.
        return None


def _path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _supports_schemas(vendor: str) -> bool:
    from eventsourcing_django.dialects import DIALECTS

    dialect = DIALECTS.get(vendor)
    return dialect is not None and dialect.supports_schemas


def _check_schemas(
    schemas: Mapping[str, str],
    valid_names: set[str],
    errors: list[checks.CheckMessage],
) -> None:
    for name, schema in schemas.items():
        try:
            check_schema_name(schema)
        except InvalidSchemaNameError as e:
            errors.append(
                checks.Error(
                    f"settings.{SCHEMAS_SETTING} pins application {name!r} to an "
                    f"unusable schema: {e}",
                    hint="Use a plain identifier, such as 'events'.",
                    id="eventsourcing_django.E006",
                )
            )
            continue
        if name not in valid_names:
            continue
        try:
            alias = alias_for_application(name, schema=schema)
        except Exception:
            continue  # A router that cannot answer here; see _ask().
        if alias in connections and not _supports_schemas(connections[alias].vendor):
            errors.append(
                checks.Error(
                    f"settings.{SCHEMAS_SETTING} pins application {name!r} to "
                    f"schema {schema!r}, but its tables are on database {alias!r} "
                    f"({connections[alias].vendor}), which has no schemas.",
                    hint=(
                        f"Remove {name!r} from {SCHEMAS_SETTING}, or send it to a "
                        f"PostgreSQL database in {DATABASES_SETTING}."
                    ),
                    id="eventsourcing_django.E007",
                )
            )


# Declared applications and projections ------------------------------------------


def check_declarations(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Check EVENTSOURCING_APPLICATIONS and EVENTSOURCING_PROJECTIONS, without
    touching a database: topics import and are the right kinds of class, env
    keys are valid, projections name declared applications and keep their
    view's models on the view's alias."""
    if app_configs is not None and not any(c.name == APP_LABEL for c in app_configs):
        return []
    errors: list[checks.CheckMessage] = []
    declared = _check_applications(errors)
    value = getattr(settings, "EVENTSOURCING_APPLICATIONS", None)
    # Names whose declaration is broken were reported already: projections of
    # them are not reported again.
    if value is not None and not isinstance(value, Mapping):
        return errors
    broken = set(value or ()) - set(declared)
    _check_projections(declared, broken, errors)
    return errors


def _check_applications(
    errors: list[checks.CheckMessage],
) -> dict[str, ApplicationDeclaration]:
    from eventsourcing_django.applications import (
        APPLICATIONS_SETTING,
        ApplicationDeclaration,
    )

    value = getattr(settings, APPLICATIONS_SETTING, None)
    if value is None:
        return {}
    example = (
        f"{APPLICATIONS_SETTING} = {{'Universe': {{'class': "
        "'myproject.domain:Universe', 'env': {...}}}"
    )
    if not isinstance(value, Mapping):
        errors.append(
            checks.Error(
                f"settings.{APPLICATIONS_SETTING} must be a dict of application "
                f"names to declarations, got {value!r}.",
                hint=f"For example: {example}",
                id="eventsourcing_django.E009",
            )
        )
        return {}
    declared: dict[str, ApplicationDeclaration] = {}
    for name, entry in value.items():
        try:
            decl = ApplicationDeclaration.from_setting(str(name), entry)
        except ImproperlyConfigured as e:
            errors.append(
                checks.Error(
                    str(e),
                    hint=f"For example: {example}",
                    id="eventsourcing_django.E009",
                )
            )
            continue
        try:
            decl.application_class()
        except ImproperlyConfigured as e:
            errors.append(
                checks.Error(
                    str(e),
                    hint="Give the topic of an Application subclass, "
                    "'package.module:ClassName', under the class's name.",
                    id="eventsourcing_django.E010",
                )
            )
            continue
        declared[decl.name] = decl
        problem = _env_problem(decl)
        if problem is not None:
            message, hint = problem
            errors.append(
                checks.Error(
                    f"settings.{APPLICATIONS_SETTING}[{decl.name!r}]: {message}",
                    hint=hint,
                    id="eventsourcing_django.E011",
                )
            )
    return declared


def _env_problem(decl: ApplicationDeclaration) -> tuple[str, str] | None:
    """What is wrong with the environment the application would run with."""
    from eventsourcing_django.factory import Factory

    env = decl.effective_env()
    cipher_topic = env.get("CIPHER_TOPIC")
    if cipher_topic and not env.get("CIPHER_KEY"):
        return (
            f"CIPHER_TOPIC is {cipher_topic!r} but no CIPHER_KEY is set, so the "
            "application cannot encrypt or decrypt its events.",
            "Set CIPHER_KEY in its 'env' (or the process environment), e.g. "
            "from AESCipher.create_key(16).",
        )
    alias = env.get("DJANGO_DB_ALIAS")
    if alias and alias not in settings.DATABASES:
        return (
            f"DJANGO_DB_ALIAS {alias!r} is not in settings.DATABASES.",
            f"Use one of: {', '.join(map(repr, settings.DATABASES))}.",
        )
    try:
        factory_class = _factory_class(env)
        if not (isinstance(factory_class, type) and issubclass(factory_class, Factory)):
            # Another persistence module: constructing its factory may connect.
            return None
        # Constructing our factory and the mapper's parts checks every key they
        # read (lock timeout, ID type, schema, compressor, cipher and its key,
        # transcoder) and opens no connection.
        factory = factory_class(env)
        factory.compressor()
        factory.cipher()
        factory.transcoder()
        for key in (
            "APPLICATION_RECORDER_TOPIC",
            "PROCESS_RECORDER_TOPIC",
            "TRACKING_RECORDER_TOPIC",
            "MAPPER_TOPIC",
        ):
            if env.get(key):
                resolve_topic(env.get(key) or "")
    except Exception as e:
        return (
            f"its env is not usable: {type(e).__name__}: {e}",
            "Fix the key the message names in its 'env' (or in the process "
            "environment).",
        )
    return None


def _factory_class(env: Environment) -> type[Any] | ModuleType:
    """What the library would construct the factory from, by the same keys."""
    topic = (
        env.get("PERSISTENCE_MODULE")
        or env.get("INFRASTRUCTURE_FACTORY")
        or env.get("FACTORY_TOPIC")
        or "eventsourcing.popo"
    )
    resolved = resolve_topic(topic)
    if isinstance(resolved, ModuleType):
        found = getattr(resolved, "Factory", None)
        return found if isinstance(found, type) else resolved
    return cast("type[Any]", resolved)


def _check_projections(
    declared: Mapping[str, ApplicationDeclaration],
    broken: set[str],
    errors: list[checks.CheckMessage],
) -> None:
    from eventsourcing_django.applications import APPLICATIONS_SETTING
    from eventsourcing_django.projections import PROJECTIONS_SETTING, ProjectionSpec

    value = getattr(settings, PROJECTIONS_SETTING, None)
    if value is None:
        return
    if not isinstance(value, Mapping):
        errors.append(
            checks.Error(
                f"settings.{PROJECTIONS_SETTING} must be a dict of projection names "
                f"to declarations, got {value!r}.",
                id="eventsourcing_django.E012",
            )
        )
        return
    for name, entry in value.items():
        try:
            spec = ProjectionSpec.from_setting(str(name), entry)
        except ImproperlyConfigured as e:
            errors.append(
                checks.Error(
                    str(e),
                    hint="Give 'application' (a declared name), 'projection' and, "
                    "for a Projection, 'view' as 'package.module:ClassName'.",
                    id="eventsourcing_django.E012",
                )
            )
            continue
        where = f"settings.{PROJECTIONS_SETTING}[{spec.name!r}]['application']"
        if spec.is_topic:
            try:
                cls_name = spec.application_class().name
            except ImproperlyConfigured as e:
                errors.append(checks.Error(str(e), id="eventsourcing_django.E012"))
                continue
            if cls_name not in declared and cls_name not in broken:
                errors.append(
                    checks.Warning(
                        f"{where} = {spec.application!r} is a class, not a declared "
                        "application: commands build it from the projection's env, "
                        "and read its events with another mapper than your views "
                        "if the two envs differ.",
                        hint=(
                            f"Declare it in settings.{APPLICATIONS_SETTING} as "
                            f"{cls_name!r} and name it here."
                        ),
                        id="eventsourcing_django.W001",
                    )
                )
        elif spec.application not in declared and spec.application not in broken:
            known = ", ".join(map(repr, declared)) or "none"
            errors.append(
                checks.Error(
                    f"{where} = {spec.application!r} is not declared in "
                    f"settings.{APPLICATIONS_SETTING} (declared: {known}).",
                    hint=f"Declare {spec.application!r} there, or fix the name.",
                    id="eventsourcing_django.E013",
                )
            )
        _check_view_models(spec, errors)


def _check_view_models(spec: ProjectionSpec, errors: list[checks.CheckMessage]) -> None:
    """A view's models must be on the view's alias: they commit with its tracking."""
    models_ = getattr(spec.view_class, "models", ())
    if not models_:
        return
    view_alias = spec.env.get("DJANGO_DB_ALIAS") or spec.env.get(
        f"{spec.projection_class.name.upper()}_DJANGO_DB_ALIAS"
    )
    try:
        view_alias = view_alias or alias_for_application(spec.projection_class.name)
    except Exception:
        return  # A router that cannot answer here; see _ask().
    for model in models_:
        try:
            model_alias = router.db_for_write(model) or "default"
        except Exception:
            continue
        if model_alias != view_alias:
            errors.append(
                checks.Error(
                    f"Projection {spec.name!r}: its view keeps its tracking on "
                    f"database {view_alias!r}, but the routers send its model "
                    f"{model._meta.label} to {model_alias!r}, so the two cannot "
                    "commit together.",
                    hint=(
                        f"Route {model._meta.label} to {view_alias!r}, or the "
                        f"projection {spec.projection_class.name!r} to "
                        f"{model_alias!r} (EVENTSOURCING_DATABASES, or "
                        "DJANGO_DB_ALIAS in the projection's 'env')."
                    ),
                    id="eventsourcing_django.E014",
                )
            )


# SQLite's journal mode ---------------------------------------------------------


def check_sqlite_journal(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Warn about an events alias on a SQLite file that is not in WAL mode.

    The journal mode is read from the file's header: no connection is made.
    A file that does not exist yet is created and switched on first use; with
    ``EVENTSOURCING_SQLITE_WAL = False`` the journal mode is the project's.
    """
    from eventsourcing_django.dialects.sqlite import (
        WAL_SETTING,
        is_in_memory,
        journal_mode_of_file,
        wal_wanted,
    )

    if app_configs is not None and not any(c.name == APP_LABEL for c in app_configs):
        return []
    if not wal_wanted():
        return []
    warnings: list[checks.CheckMessage] = []
    for alias in sorted(_events_aliases()):
        database = settings.DATABASES.get(alias)
        if not database or not _is_sqlite(str(database.get("ENGINE", ""))):
            continue
        name = database.get("NAME")
        if is_in_memory(name) or journal_mode_of_file(name) != "rollback":
            continue
        warnings.append(
            checks.Warning(
                f"Database {alias!r} keeps events in SQLite file {str(name)!r}, "
                "which is in rollback-journal mode, not WAL: every commit costs "
                "more, and readers and writers wait for each other.",
                hint=(
                    "eventsourcing_django switches it to WAL when it first "
                    "connects to it; if this warning stays, that failed (see the "
                    "log): run 'PRAGMA journal_mode=WAL' on it while nothing else "
                    f"uses it, or set {WAL_SETTING} = False to keep its journal "
                    "mode."
                ),
                id="eventsourcing_django.W002",
            )
        )
    return warnings


# The server behind an alias (a database check) ----------------------------------


def check_database_servers(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """E017: an alias that holds events is on a server that cannot keep them
    (MySQL, or MariaDB before 10.6).

    A database check: Django runs it in ``migrate`` and ``check --database``,
    on those aliases only, since it asks the server.
    """
    from django.db import DatabaseError, connections
    from eventsourcing.persistence import NotSupportedError

    from eventsourcing_django.dialects import dialect_for

    if not databases:
        return []
    if app_configs is not None and not any(c.name == APP_LABEL for c in app_configs):
        return []
    errors: list[checks.CheckMessage] = []
    for alias in sorted(set(databases) & _events_aliases()):
        connection = connections[alias]
        try:
            problem = dialect_for(connection, schema=None).server_problem(connection)
        except NotSupportedError:
            continue  # a vendor we have no dialect for: the recorder says so
        except DatabaseError:
            continue  # cannot connect: Django's own checks and commands say so
        if problem is not None:
            errors.append(
                checks.Error(
                    problem,
                    hint=(
                        "Route the applications on this alias to a database "
                        "eventsourcing_django supports (EVENTSOURCING_DATABASES "
                        "or the application's DJANGO_DB_ALIAS)."
                    ),
                    id="eventsourcing_django.E017",
                )
            )
    return errors


def _is_sqlite(engine: str) -> bool:
    """Whether Django's backend ``engine`` is SQLite's (or built on it)."""
    from importlib import import_module

    try:
        wrapper = import_module(f"{engine}.base").DatabaseWrapper
    except (ImportError, AttributeError):
        return False
    return getattr(wrapper, "vendor", None) == "sqlite"


def _events_aliases() -> set[str]:
    """The aliases that hold applications' events, as far as the settings tell:
    ``EVENTSOURCING_DATABASES``, the declared applications' (their env, then
    the routers), or ``default`` when neither names any."""
    from eventsourcing_django.applications import declarations

    aliases: set[str] = set()
    with contextlib.suppress(ImproperlyConfigured):  # else E005
        aliases.update(application_setting(DATABASES_SETTING).values())
    try:
        declared = declarations()
    except ImproperlyConfigured:
        declared = {}  # E009
    for name, decl in declared.items():
        try:
            alias = decl.effective_env().get("DJANGO_DB_ALIAS")
            aliases.add(alias or alias_for_application(name))
        except Exception:  # E010, E011 say what is wrong
            continue
    return aliases or {"default"}
