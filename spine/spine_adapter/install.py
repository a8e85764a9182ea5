"""Install and uninstall steps that Frappe's own app lifecycle does not do for Spine."""

from spine.spine_adapter import config_cache


def before_uninstall() -> None:
	"""Leave no Spine keys in the site's Redis cache; Frappe drops the tables itself."""
	config_cache.forget()
