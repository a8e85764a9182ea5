"""Installing Spine, or its test requirements, never changes a dependency Frappe pins (bench get-app
runs pip install -e; tests/README tells users to install requirements-test.txt into the bench env)."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]

# The versions each supported Frappe release pins (its pyproject.toml), lowest and highest allowed.
FRAPPE_PINS = {
	"v14 (14.81.x)": {
		"redis": ["3.5.3"],
		"rq": ["1.14.1", "1.14.9"],
		"click": ["7.1.2"],
		"cryptography": ["43.0.1", "43.0.3"],
		"urllib3": ["1.26.4", "1.26.20"],
	},
	"v15 (15.44.x)": {
		"redis": ["4.5.5", "4.5.9"],
		"rq": ["1.15.1", "1.15.9"],
		"click": ["8.1.7", "8.1.8"],
		"cryptography": ["43.0.1", "43.0.3"],
		"typing_extensions": ["4.6.1", "4.15.0"],
	},
	"develop (16.0.0-dev)": {
		"redis": ["5.0.1", "5.0.8"],
		"rq": ["1.16.2"],
		"click": ["8.1.7", "8.1.8"],
		"cryptography": ["43.0.1", "43.0.3"],
		"typing_extensions": ["4.6.1", "4.15.0"],
	},
}

# Versions of a test requirement whose own requirements leave a version Frappe pins (read from their
# wheels' METADATA): pip would take the newest one a range allows and replace Frappe's pinned package
# with it (seen: selenium 4.51 replaced Frappe 14's urllib3 1.26.20 with 2.8, breaking botocore).
# From this version on, every newer one asks the same or more.
PIN_BREAKERS = {
	"selenium": ("4.33.0", "urllib3", "~=2.4.0"),
}


def requirements(name: str = "requirements.txt") -> dict[str, Requirement]:
	lines = (ROOT / name).read_text().splitlines()
	reqs = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
	return {r.name.lower(): r for r in reqs}


def test_frappe_is_never_a_requirement():
	assert "frappe" not in requirements()


def _normal(name: str) -> str:
	return name.lower().replace("_", "-")


def test_every_pinned_version_of_every_supported_frappe_satisfies_spine():
	reqs = {_normal(k): v for k, v in {**requirements(), **requirements("requirements-test.txt")}.items()}
	pins = {frappe: {_normal(p): v for p, v in pinned.items()} for frappe, pinned in FRAPPE_PINS.items()}
	refused = [
		f"{frappe}: {package} {version} is outside {reqs[package].specifier}"
		for frappe, pinned in pins.items()
		for package, versions in pinned.items()
		for version in versions
		if package in reqs and not reqs[package].specifier.contains(version)
	]
	assert not refused


def test_no_test_requirement_reaches_a_version_that_replaces_a_frappe_pin():
	"""A range that allows a version of a test requirement whose own requirements leave a Frappe pin
	makes pip take that version, and replace the pinned package, in the bench's env."""
	reqs = {_normal(k): v for k, v in requirements("requirements-test.txt").items()}
	allowed = []
	for package, (first_bad, needs, spec) in PIN_BREAKERS.items():
		if package in reqs and reqs[package].specifier.contains(first_bad):
			frappes = [
				f for f, pinned in FRAPPE_PINS.items() if _normal(needs) in {_normal(p) for p in pinned}
			]
			allowed.append(
				f"{package} {reqs[package].specifier} allows {first_bad}, which needs {needs}{spec} ({frappes} pin it)"
			)
	assert not allowed
