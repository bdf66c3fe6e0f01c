"""Translations: every user-facing string goes through gettext; English and Dutch ship complete.

Strings live in `inbox/translations/<lang>/LC_MESSAGES/messages.po`; `scripts/translations.sh`
extracts and compiles them. The language is the signed-in agent's choice, else the browser's
best match, else the configured default.
"""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import Babel, get_locale, gettext, lazy_gettext, ngettext

__all__ = ["LANGUAGES", "gettext", "lazy_gettext", "ngettext", "init_app"]

#: Languages the UI ships in, with their names in their own language.
LANGUAGES = {"en": "English", "nl": "Nederlands"}


def select_locale() -> str:
    agent = getattr(g, "agent", None)
    if agent and agent.get("locale") in LANGUAGES:
        return agent["locale"]
    from flask import current_app

    default = current_app.config["MAINLAND"].default_language
    return request.accept_languages.best_match(list(LANGUAGES), default=default) if request else default


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories="translations")
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["get_locale"] = get_locale
