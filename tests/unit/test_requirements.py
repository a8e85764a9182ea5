"""Installing Spine never changes a dependency Frappe pins (bench get-app runs pip install -e)."""

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
	},
	"v15 (15.44.x)": {
		"redis": ["4.5.5", "4.5.9"],
		"rq": ["1.15.1", "1.15.9"],
		"click": ["8.1.7", "8.1.8"],
		"cryptography": ["43.0.1", "43.0.3"],
	},
	"develop (16.0.0-dev)": {
		"redis": ["5.0.1", "5.0.8"],
		"rq": ["1.16.2"],
		"click": ["8.1.7", "8.1.8"],
		"cryptography": ["43.0.1", "43.0.3"],
	},
}


def requirements() -> dict[str, Requirement]:
	lines = (ROOT / "requirements.txt").read_text().splitlines()
	reqs = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
	return {r.name.lower(): r for r in reqs}


def test_frappe_is_never_a_requirement():
	assert "frappe" not in requirements()


def test_every_pinned_version_of_every_supported_frappe_satisfies_spine():
	reqs = requirements()
	refused = [
		f"{frappe}: {package} {version} is outside {reqs[package].specifier}"
		for frappe, pins in FRAPPE_PINS.items()
		for package, versions in pins.items()
		for version in versions
		if package in reqs and not reqs[package].specifier.contains(version)
	]
	assert not refused
