import datetime

import pytest

from spine.config.topics import topic_name_problem
from spine.errors import HandlerConfigError
from spine.handlers import resolve, split_paths
from spine.retry import RetryPolicy


def test_split_paths():
	assert split_paths(" a.b.c, ,d.e ,") == ["a.b.c", "d.e"]
	assert split_paths(None) == []


def test_resolve_accepts_callables_of_installed_apps():
	assert resolve("spine.handlers.split_paths", {"spine"}) is split_paths


@pytest.mark.parametrize(
	"path, apps, message",
	[
		("nodots", {"spine"}, "not a dotted Python path"),
		("spine.handlers.split paths", {"spine"}, "not a dotted Python path"),
		("os.system", {"spine"}, "not inside an installed app"),
		("spine.nope.func", {"spine"}, "does not exist"),
		("spine.handlers.nothing_here", {"spine"}, "has no attribute"),
		("spine.handlers._DOTTED", {"spine"}, "not a function"),
	],
)
def test_resolve_refuses_with_a_reason(path, apps, message):
	with pytest.raises(HandlerConfigError, match=message):
		resolve(path, apps)


@pytest.mark.parametrize(
	"name, problem",
	[
		("items", None),
		("erp.sales-invoice_v2", None),
		("", "required"),
		(" a", "spaces"),
		("a b", "contains ' '"),
		("a/b", "contains '/'"),
		("..", "reserved"),
		("x" * 250, "at most 249"),
	],
)
def test_topic_names(name, problem):
	got = topic_name_problem(name)
	assert (got is None) if problem is None else (problem in got)


def test_retry_policy_backs_off_exponentially_and_caps():
	p = RetryPolicy(max_attempts=4, base_seconds=10, max_seconds=60)
	assert [p.delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 100)] == [10, 20, 40, 60, 60, 60]
	assert [p.should_retry(n) for n in (1, 3, 4)] == [True, True, False]
	now = datetime.datetime(2026, 1, 1)
	assert p.next_attempt_at(2, now) == now + datetime.timedelta(seconds=20)


@pytest.mark.parametrize(
	"kw", [dict(max_attempts=0), dict(base_seconds=-1), dict(base_seconds=10, max_seconds=5)]
)
def test_retry_policy_refuses_nonsense(kw):
	with pytest.raises(ValueError):
		RetryPolicy(**kw)
