"""An integration's admin settings beyond its columns: feature switches, the branch name
template and who runs smart commits (and up to which age), kept in ``Integration.features``
(a JSON object).

Read them through :func:`feature_enabled`, :func:`branch_name_template`,
:func:`smart_commits_by` and :func:`smart_commit_max_age_days`; the admin API
(:mod:`connect_app.services.admin_input`) is the only writer. ``features`` also holds keys
written by ``connect_app.indexing.webhook_setup`` (``webhook_manual``...): writers here
merge, never replace the whole object.

Smart commits run exactly once, by one side (see :mod:`connect_app.jira.smart_commits`):
``smart_commits_by`` is ``"jira"`` (Jira runs them from the commits sent to its Development
panel; the default while that feature is on) or ``"app"``. Jira can only run them when it
sees the commits, so with the Development panel off the app runs them whatever is stored,
and the admin API refuses to *set* ``"jira"`` then (:func:`merged_features`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from connect_app.hosts.base import Capability, ProviderInfo
from connect_app.hosts.registry import provider_info
from connect_app.models import Integration, SmartCommitMode


class Feature(StrEnum):
    CREATE_BRANCH = "create_branch"
    CREATE_PULL_REQUEST = "create_pull_request"
    SMART_COMMITS = "smart_commits"
    DEVELOPMENT_PANEL = "development_panel"  # send to Jira's Development panel (devinfo)
    WEBHOOKS = "webhooks"  # index on the host's push / pull request webhooks


# What the host must be able to do for a feature to be switched on.
FEATURE_NEEDS: dict[Feature, Capability] = {
    Feature.CREATE_BRANCH: Capability.CREATE_BRANCH,
    Feature.CREATE_PULL_REQUEST: Capability.CREATE_PULL_REQUEST,
    Feature.WEBHOOKS: Capability.WEBHOOKS,
}
FEATURE_LABELS: dict[Feature, str] = {
    Feature.CREATE_BRANCH: "create branches",
    Feature.CREATE_PULL_REQUEST: "create pull requests",
    Feature.SMART_COMMITS: "run smart commits",
    Feature.DEVELOPMENT_PANEL: "send to Jira's Development panel",
    Feature.WEBHOOKS: "index on webhooks",
}

SMART_COMMITS_BY_KEY = "smart_commits_by"  # "app" | "jira"
SMART_COMMITS_MAX_AGE_KEY = "smart_commits_max_age_days"
DEFAULT_SMART_COMMIT_MAX_AGE_DAYS = 14
SMART_COMMIT_MAX_AGE_DAYS_MIN = 1
SMART_COMMIT_MAX_AGE_DAYS_MAX = 365
JIRA_NEEDS_PANEL = (
    "Jira can run smart commits only from the commits sent to its Development panel: switch on "
    '"send to Jira\'s Development panel" (features.development_panel), or let Git Connect run them ("app")'
)

BRANCH_TEMPLATE_KEY = "branch_name_template"
DEFAULT_BRANCH_TEMPLATE = "${issuekey}-${summary}"
BRANCH_TEMPLATE_VARIABLES = ("issuekey", "summary", "issuetype", "projectkey")
BRANCH_NAME_MAX_LENGTH = 250

# Jira project keys: a letter, then letters, digits or "_" (Atlassian's widest key format;
# the same rule as connect_app.indexing.issue_keys).
PROJECT_KEY = re.compile(r"[A-Z][A-Z0-9_]+", re.ASCII)
PROJECT_KEY_MAX_LENGTH = 255
MAX_PROJECT_KEYS = 500

REINDEX_MINUTES_MIN = 5
REINDEX_MINUTES_MAX = 7 * 24 * 60

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# Characters git refuses in a branch name (git check-ref-format), outside the variables.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def supports(info: ProviderInfo, feature: Feature) -> bool:
    need = FEATURE_NEEDS.get(feature)
    return need is None or need in info.capabilities


def default_features(info: ProviderInfo) -> dict[str, bool]:
    """Every feature the host supports is on until the admin switches it off."""
    return {f.value: supports(info, f) for f in Feature}


def _switches(info: ProviderInfo, stored: Mapping[str, Any]) -> dict[str, bool]:
    result = default_features(info)
    for f in Feature:
        value = stored.get(f.value)
        if isinstance(value, bool):
            result[f.value] = value and supports(info, f)
    return result


def features_of(integration: Integration) -> dict[str, bool]:
    """The feature switches as the admin sees them (defaults filled in, unsupported ones off)."""
    return _switches(provider_info(integration.provider), integration.features or {})


def feature_enabled(integration: Integration, feature: Feature) -> bool:
    return features_of(integration)[Feature(feature).value]


def _runner(info: ProviderInfo, stored: Mapping[str, Any]) -> SmartCommitMode:
    if stored.get(SMART_COMMITS_BY_KEY) == SmartCommitMode.APP.value:
        return SmartCommitMode.APP
    # "jira" or unset: Jira runs them -- when it sees the commits at all.
    if _switches(info, stored)[Feature.DEVELOPMENT_PANEL.value]:
        return SmartCommitMode.JIRA
    return SmartCommitMode.APP


def smart_commits_by(integration: Integration) -> SmartCommitMode:
    """Who runs the integration's smart commits when the smart-commits feature is on."""
    return _runner(provider_info(integration.provider), integration.features or {})


def smart_commit_max_age_days(integration: Integration) -> int:
    """Commands of commits older than this many days are never run (by either side)."""
    value = (integration.features or {}).get(SMART_COMMITS_MAX_AGE_KEY)
    if isinstance(value, int) and not isinstance(value, bool):
        if SMART_COMMIT_MAX_AGE_DAYS_MIN <= value <= SMART_COMMIT_MAX_AGE_DAYS_MAX:
            return value
    return DEFAULT_SMART_COMMIT_MAX_AGE_DAYS


def branch_name_template(integration: Integration) -> str:
    value = (integration.features or {}).get(BRANCH_TEMPLATE_KEY)
    return value if isinstance(value, str) and value else DEFAULT_BRANCH_TEMPLATE


def merged_features(integration: Integration, changes: Mapping[str, Any]) -> dict[str, Any]:
    """A new ``features`` object (SQLAlchemy notices JSON changes only on assignment).

    Refuses (a 400 naming ``settings.smart_commits_by``) to set ``smart_commits_by: "jira"``
    when the Development panel is, or is being switched, off: Jira would never see the commits."""
    features = dict(integration.features or {})
    features.update(changes)
    if changes.get(SMART_COMMITS_BY_KEY) == SmartCommitMode.JIRA.value:
        if _runner(provider_info(integration.provider), features) is not SmartCommitMode.JIRA:
            from connect_app.services.admin_input import FieldError  # admin_input imports this module

            where = f"settings.{SMART_COMMITS_BY_KEY}"
            raise FieldError(where, f"{where}: {JIRA_NEEDS_PANEL}", code="smart_commits_need_development_panel")
    return features


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot make branch names, or None when it can."""
    if not template.strip():
        return "must not be empty"
    if len(template) > BRANCH_NAME_MAX_LENGTH:
        return f"must be at most {BRANCH_NAME_MAX_LENGTH} characters"
    names = _VARIABLE.findall(template)
    unknown = sorted({n for n in names if n not in BRANCH_TEMPLATE_VARIABLES})
    if unknown:
        allowed = ", ".join(f"${{{v}}}" for v in BRANCH_TEMPLATE_VARIABLES)
        return f"uses unknown variable(s) {', '.join(unknown)}; the variables are {allowed}"
    if "issuekey" not in names:
        return "must contain ${issuekey}, or the branches it names would not link to their issue"
    literal = _VARIABLE.sub("", template)
    if "${" in literal:
        return "has a '${' that is not closed with '}'"
    if _REF_FORBIDDEN.search(literal) or ".." in literal or "@{" in literal:
        return "contains characters git does not allow in branch names (spaces, ~ ^ : ? * [ \\ or '..')"
    if template.startswith(("-", "/", ".")) or template.endswith(("/", ".", ".lock")):
        return "must not start with '-', '/' or '.', nor end with '/', '.' or '.lock'"
    return None


def project_key_problem(key: str) -> str | None:
    if len(key) > PROJECT_KEY_MAX_LENGTH:
        return f"is longer than {PROJECT_KEY_MAX_LENGTH} characters"
    if not PROJECT_KEY.fullmatch(key):
        return "is not a Jira project key (a letter, then letters, digits or '_', e.g. ABC)"
    return None
