"""Applications declared once, in ``settings.EVENTSOURCING_APPLICATIONS``.

A Django project names each of its event-sourced applications, with the class and
the environment it runs with, in one place, as it names its databases and caches::

    EVENTSOURCING_APPLICATIONS = {
        "Universe": {
            "class": "myproject.domain:Universe",
            "env": {"COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"},
        },
    }

Views call :func:`get_application`, which gives the process's one instance, built
on first use. Management commands, projection workers, system runners and the
tenants' per-schema instances build from the same declaration, so every one of
them reads the events with the same mapper, compressor and cipher. Nothing here
touches a database at import or when Django starts: an application is built, and
its tables created if ``CREATE_TABLE`` says so, the first time it is asked for.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from eventsourcing.application import Application
from eventsourcing.system import System
from eventsourcing.utils import Environment, resolve_topic

# Defined with the package's other errors; importable from here as before.
from eventsourcing_django.errors import (
    ApplicationNotDeclaredError as ApplicationNotDeclaredError,
)

A = TypeVar("A", bound=Application[Any])

APPLICATIONS_SETTING = "EVENTSOURCING_APPLICATIONS"

#: The keys an entry of the setting may have.
ENTRY_KEYS = frozenset({"class", "env"})

#: Keys that choose how an application persists; without any of them a declared
#: application persists with this package.
PERSISTENCE_KEYS = ("PERSISTENCE_MODULE", "INFRASTRUCTURE_FACTORY", "FACTORY_TOPIC")


@dataclass(frozen=True)
class ApplicationDeclaration:
    """One entry of ``settings.EVENTSOURCING_APPLICATIONS``."""

    name: str
    topic: str
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_setting(cls, name: str, entry: Any) -> ApplicationDeclaration:
        """Read one entry; raise ``ImproperlyConfigured`` naming what is wrong."""
        where = f"settings.{APPLICATIONS_SETTING}[{name!r}]"
        if not isinstance(entry, Mapping):
            msg = (
                f"{where} must be a dict with a 'class' (and optionally an 'env'), "
                f"got {entry!r}"
            )
            raise ImproperlyConfigured(msg)
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            msg = (
                f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"the keys are {', '.join(map(repr, sorted(ENTRY_KEYS)))}"
            )
            raise ImproperlyConfigured(msg)
        topic = entry.get("class")
        if not isinstance(topic, str) or ":" not in topic:
            msg = (
                f"{where}['class'] must be the application class's topic, "
                f"'package.module:ClassName', got {topic!r}"
            )
            raise ImproperlyConfigured(msg)
        env = entry.get("env", {})
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool)
            for k, v in env.items()
        ):
            msg = (
                f"{where}['env'] must be a dict of environment keys to strings "
                f"(or numbers, or booleans), got {env!r}"
            )
            raise ImproperlyConfigured(msg)
        return cls(name=name, topic=topic, env={k: _text(v) for k, v in env.items()})

    def application_class(self) -> type[Application[Any]]:
        """The declared class, imported; refused if it is not this application."""
        where = f"settings.{APPLICATIONS_SETTING}[{self.name!r}]['class']"
        try:
            cls = resolve_topic(self.topic)
        except Exception as e:
            msg = f"{where} = {self.topic!r} cannot be imported: {e}"
            raise ImproperlyConfigured(msg) from e
        if not (isinstance(cls, type) and issubclass(cls, Application)):
            msg = f"{where} = {self.topic!r} is not an Application subclass"
            raise ImproperlyConfigured(msg)
        if cls.name != self.name:
            # The tables, the routers' settings and the prefixed env keys all go
            # by the class's name: a declaration under another name would split
            # the application in two.
            msg = (
                f"{where} = {self.topic!r} is the application named {cls.name!r}, "
                f"not {self.name!r}: declare it as {cls.name!r}, or set "
                f"name = {self.name!r} on the class"
            )
            raise ImproperlyConfigured(msg)
        return cls

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The env to construct the application with: the declared keys, over
        this package as persistence module unless the class, the process or the
        declaration chooses another, then ``extra``."""
        env: dict[str, str] = {}
        cls_env = getattr(self.application_class(), "env", {})
        sources: tuple[Mapping[str, Any], ...] = (self.env, cls_env, os.environ)
        prefixed = [f"{self.name.upper()}_{key}" for key in PERSISTENCE_KEYS]
        if not any(s.get(k) for s in sources for k in (*PERSISTENCE_KEYS, *prefixed)):
            env["PERSISTENCE_MODULE"] = "eventsourcing_django"
        env.update(self.env)
        env.update(extra or {})
        return env

    def effective_env(self) -> Environment:
        """The environment the application would see, without constructing it
        (the class's env, the process's, the declaration's), for checks."""
        cls = self.application_class()
        merged: dict[str, str] = dict(cls.env)
        merged.update(os.environ)
        merged.update(self.environment())
        return Environment(self.name, merged)

    def build(self, extra_env: Mapping[str, str] | None = None) -> Application[Any]:
        """A new instance of the application, as declared."""
        return self.application_class()(env=self.environment(extra_env))


def _text(value: str | float | bool) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


def _name_of(application: str | type[Application[Any]]) -> str:
    return application if isinstance(application, str) else application.name


def declarations() -> dict[str, ApplicationDeclaration]:
    """Every declared application, by name."""
    value = getattr(settings, APPLICATIONS_SETTING, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        msg = (
            f"settings.{APPLICATIONS_SETTING} must be a dict of application names "
            f"to declarations, got {value!r}"
        )
        raise ImproperlyConfigured(msg)
    return {
        name: ApplicationDeclaration.from_setting(name, entry)
        for name, entry in value.items()
    }


def declaration(application: str | type[Application[Any]]) -> ApplicationDeclaration:
    """The declaration of an application, given its name or its class."""
    name = _name_of(application)
    declared = declarations()
    try:
        return declared[name]
    except KeyError:
        pass
    known = ", ".join(map(repr, declared)) or "none"
    msg = (
        f"Application {name!r} is not declared in settings.{APPLICATIONS_SETTING} "
        f"(declared: {known}). Add it, e.g. {APPLICATIONS_SETTING} = "
        f"{{{name!r}: {{'class': 'myproject.domain:{name}'}}}}"
    )
    raise ApplicationNotDeclaredError(msg)


def is_declared(application: str | type[Application[Any]]) -> bool:
    name = _name_of(application)
    return name in declarations()


# The process's instances ---------------------------------------------------------

_instances: dict[str, Application[Any]] = {}
_lock = threading.Lock()
_atexit_registered = False


def get_application(application: str | type[A]) -> A:
    """The process's one instance of a declared application.

    Built from its declaration the first time it is asked for (in any thread;
    only one instance is ever built), and closed when the process exits. Pass
    the application's name, or its class for a typed result.
    """
    # Views call this on every request: a built instance is found by its name
    # alone, without reading the setting again (changing the setting forgets
    # the instances, see _on_setting_changed).
    name = _name_of(application)
    try:
        return cast("A", _instances[name])
    except KeyError:
        pass
    decl = declaration(application)
    global _atexit_registered
    with _lock:
        if decl.name not in _instances:
            _instances[decl.name] = decl.build()
            if not _atexit_registered:
                atexit.register(close_applications)
                _atexit_registered = True
        return cast("A", _instances[decl.name])


def close_applications() -> None:
    """Close and forget the instances :func:`get_application` built."""
    with _lock:
        while _instances:
            _, app = _instances.popitem()
            app.close()


def runner_env(system: System, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """An env for a system runner (``SingleThreadedRunner(system, env=...)``)
    that gives each declared application of the system its declared keys.

    A runner passes one env to every application; the library reads
    ``<NAME>_<KEY>`` before ``<KEY>``, so each declaration's keys are given with
    its application's prefix. Followers construct the mappers of their leaders
    from the same env, so they decode the leaders' events correctly.
    """
    result: dict[str, str] = {}
    declared = declarations()
    for name in system.nodes:
        decl = declared.get(name)
        if decl is None:
            continue
        for key, value in decl.environment().items():
            prefix = f"{name.upper()}_"
            result[key if key.startswith(prefix) else prefix + key] = value
    result.update(env or {})
    return result


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    # Tests that override the declarations must not get instances built from
    # the old ones.
    if setting == APPLICATIONS_SETTING:
        close_applications()


setting_changed.connect(_on_setting_changed, dispatch_uid="eventsourcing_django_apps")


__all__ = [
    "APPLICATIONS_SETTING",
    "ApplicationDeclaration",
    "ApplicationNotDeclaredError",
    "close_applications",
    "declaration",
    "declarations",
    "get_application",
    "is_declared",
    "runner_env",
]
