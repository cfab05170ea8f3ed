"""Who runs smart commits and up to which age, as the admin API reads and writes them
(parse_settings, merged_features, smart_commits_by): "jira" needs the Development panel."""

from __future__ import annotations

from typing import Any

import pytest

from connect_app.hosts.base import ProviderId
from connect_app.hosts.registry import provider_info
from connect_app.models import Integration, SmartCommitMode
from connect_app.services.admin_input import FieldError, Fields, parse_create, parse_settings
from connect_app.services.integration_settings import merged_features, smart_commit_max_age_days, smart_commits_by

GITHUB = provider_info(ProviderId.GITHUB)


def _parse(settings: dict[str, Any]) -> dict[str, Any]:
    return parse_settings(Fields(settings, "settings"), GITHUB)


def _integration(**features: Any) -> Integration:
    return Integration(provider="github", features=features)


def test_the_choice_and_the_age_are_stored_beside_the_switches() -> None:
    assert _parse({"smart_commits_by": "app", "smart_commits_max_age_days": 30}) == {
        "features": {"smart_commits_by": "app", "smart_commits_max_age_days": 30}
    }
    assert _parse({"features": {"smart_commits": True}, "smart_commits_by": "jira"}) == {
        "features": {"smart_commits": True, "smart_commits_by": "jira"}
    }
    assert _parse({"require_user_pat": True}) == {"require_user_pat": True}
    body = {"provider": "github", "auth": {"type": "pat", "token": "t"}, "settings": {"smart_commits_by": "app"}}
    assert parse_create(body).settings == {"features": {"smart_commits_by": "app"}}


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        ({"smart_commits_by": "both"}, "settings.smart_commits_by", 'must be "app"'),
        ({"smart_commits_by": True}, "settings.smart_commits_by", 'must be "app"'),
        ({"smart_commits_max_age_days": 0}, "settings.smart_commits_max_age_days", "between 1 and 365"),
        ({"smart_commits_max_age_days": 366}, "settings.smart_commits_max_age_days", "between 1 and 365"),
        ({"smart_commits_max_age_days": "14"}, "settings.smart_commits_max_age_days", "whole number of days"),
        ({"smart_commits_max_age_days": 1.5}, "settings.smart_commits_max_age_days", "whole number of days"),
        ({"smart_commits_max_age_days": True}, "settings.smart_commits_max_age_days", "whole number of days"),
        (
            {"smart_commits_by": "jira", "features": {"development_panel": False}},
            "settings.smart_commits_by",
            "Development panel",
        ),
    ],
)
def test_bad_values_are_refused_in_words(settings: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(FieldError) as info:
        _parse(settings)
    assert info.value.field == field and words in info.value.message


def test_jira_with_the_panel_off_in_the_stored_settings_is_refused_when_merged() -> None:
    off = _integration(development_panel=False)
    with pytest.raises(FieldError) as info:
        merged_features(off, {"smart_commits_by": "jira"})
    assert info.value.code == "smart_commits_need_development_panel"
    assert info.value.field == "settings.smart_commits_by"
    assert merged_features(off, {"smart_commits_by": "jira", "development_panel": True})["smart_commits_by"] == "jira"
    assert merged_features(off, {"smart_commits_by": "app"})["smart_commits_by"] == "app"
    # Switching the panel off with "jira" stored is allowed: the app runs them from then on.
    on = _integration(smart_commits_by="jira")
    assert smart_commits_by(_integration(**merged_features(on, {"development_panel": False}))) is SmartCommitMode.APP


def test_what_the_admin_reads() -> None:
    assert smart_commits_by(_integration()) is SmartCommitMode.JIRA  # the default while the panel is on
    assert smart_commits_by(_integration(development_panel=False)) is SmartCommitMode.APP
    assert smart_commits_by(_integration(smart_commits_by="app")) is SmartCommitMode.APP
    assert smart_commit_max_age_days(_integration()) == 14
    assert smart_commit_max_age_days(_integration(smart_commits_max_age_days=90)) == 90
    assert smart_commit_max_age_days(_integration(smart_commits_max_age_days=0)) == 14  # stored junk: the default
