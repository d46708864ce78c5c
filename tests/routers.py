"""Other projects' routers, to show ours composing with them."""

from __future__ import annotations

from typing import Any


class TenantLikeRouter:
    """Like django-tenants' TenantSyncRouter: everything on 'default' only."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "default"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool:
        return db == "default"


class WritesToDefaultRouter:
    """Sends every write to 'default', ours included: it shadows ours."""

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"


class ModestRouter:
    """Answers only for the test app's models: it does not shadow ours."""

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "default" if model._meta.app_label == "testapp" else None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        return db == "default" if app_label == "testapp" else None


# Known to the checks by its module and name, as django-tenants' own is; the
# package need not be installed for the check to know it.
TenantSyncRouter = type(
    "TenantSyncRouter",
    (TenantLikeRouter,),
    {"__module__": "django_tenants.routers", "__qualname__": "TenantSyncRouter"},
)
