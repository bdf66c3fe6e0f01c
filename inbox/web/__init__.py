"""The web app factory: `create_app` reads as the web app's table of contents.

First the installation (configuration, connectors, migrated database), then one `init_app(app)`
per subsystem in the order their request hooks run, then every page area's blueprint in
`register_page_areas`. Adding a page area is one module with a blueprint named `bp` plus its line
there (tests/test_app_factory.py fails when a module's blueprint or `init_app` is left out).

The modules are imported inside the functions, as in Flask's tutorial: the page areas import
`get_store` and `mainland` from this package, and importing `inbox.web` (the command line does, for
`inbox.web.auth`) loads no page it does not ask for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask

from inbox.web.request_store import get_store, mainland

if TYPE_CHECKING:
    from connectors.base import Connector
    from inbox.config import Config

__all__ = ["create_app", "get_store", "mainland", "register_page_areas"]


def create_app(config: Config | Mapping[str, Any] | str | Path | None = None, *,
               connectors: Iterable[type[Connector]] = ()) -> Flask:
    """Build the web app from a `Config`, a mapping of config keys, or a config file path.

    With no `config` the file named by `$MAINLAND_CONFIG` is read (or defaults are used).
    `connectors` are connector classes of the embedding application, installed beside the built-in
    and entry-point ones under the same rules (a kind claimed twice is an error).
    """
    from inbox import i18n
    from inbox.web import (
        account,
        auth,
        converters,
        headers,
        installation,
        oidc,
        proxy,
        request_store,
        routing,
        security,
        settings_refresh,
        static_versions,
        templating,
        undo,
    )

    app = installation.new_app(config, connectors)  # configuration, connector registry, migrated database
    templating.init_app(app)        # compiled templates kept per process; every shown value cleaned
    i18n.init_app(app)              # English and Dutch
    converters.init_app(app)        # `<int:...>` ids the database can hold: before any blueprint
    proxy.init_app(app)             # the client's address behind trusted proxies
    request_store.init_app(app)     # one Store per request, from the app's pool of idle connections
    static_versions.init_app(app)   # static URLs carry their content hash and are cached a year
    headers.init_app(app)           # security headers on every response
    settings_refresh.init_app(app)  # settings changed in another process apply on the next request
    security.init_app(app)          # CSRF, rate limits, error pages: checked before the hooks below
    account.init_app(app)           # the second sign-in step where it is required
    auth.init_app(app)              # the signed-in agent, sessions' idle timeout, no caching of pages
    oidc.init_app(app)              # single sign-on, and password sign-in off when it says so
    routing.init_app(app)           # presence: each request marks the agent as active
    undo.init_app(app)              # the undo-send toast on every page
    register_page_areas(app)
    return app


def register_page_areas(app: Flask) -> None:
    """Every page area's blueprint, each followed by its own app-wide set-up (template helpers) if any."""
    from inbox.web import (
        account,
        admin,
        answers,
        api,
        api_v1,
        audit,
        auth,
        channels_admin,
        chat,
        checkins,
        conversations,
        customers,
        forms,
        health,
        helpcenter,
        introspect,
        live,
        media,
        oidc,
        outreach,
        palette,
        quarantine,
        queue,
        reports,
        review,
        routing,
        rules,
        service_admin,
        survey,
        tokens,
        triage,
        webhooks,
        webhooks_admin,
    )

    app.register_blueprint(account.bp)
    app.register_blueprint(admin.bp)
    admin.init_app(app)
    app.register_blueprint(answers.bp)
    app.register_blueprint(api.bp)
    api.init_app(app)
    app.register_blueprint(api_v1.bp)
    api_v1.init_app(app)
    app.register_blueprint(audit.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(channels_admin.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(checkins.bp)
    app.register_blueprint(conversations.bp)
    conversations.init_app(app)
    app.register_blueprint(customers.bp)
    customers.init_app(app)
    app.register_blueprint(forms.bp)
    app.register_blueprint(health.bp)
    health.init_app(app)
    app.register_blueprint(helpcenter.bp)
    helpcenter.init_app(app)
    app.register_blueprint(introspect.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(media.bp)
    media.init_app(app)
    app.register_blueprint(oidc.bp)
    app.register_blueprint(outreach.bp)
    outreach.init_app(app)
    app.register_blueprint(palette.bp)
    app.register_blueprint(quarantine.bp)
    app.register_blueprint(queue.bp)
    queue.init_app(app)
    app.register_blueprint(reports.bp)
    reports.init_app(app)
    app.register_blueprint(review.bp)
    review.init_app(app)
    app.register_blueprint(routing.bp)
    app.register_blueprint(rules.bp)
    app.register_blueprint(service_admin.bp)
    service_admin.init_app(app)
    app.register_blueprint(survey.bp)
    app.register_blueprint(tokens.bp)
    tokens.init_app(app)
    app.register_blueprint(triage.bp)
    triage.init_app(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(webhooks_admin.bp)
    webhooks_admin.init_app(app)
