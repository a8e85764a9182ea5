"""Frappe's declarations for Spine: document events of every DocType to the capture hook, the per-minute scheduler jobs, install/uninstall and migrate hooks, Desk assets and log clearing."""

app_name = "spine"
app_title = "Spine"
app_publisher = "Spine contributors"
app_description = "Connects Frappe and ERPNext sites through Apache Kafka"
app_email = "spine@example.com"
app_license = "MIT"

export_python_type_annotations = True

after_install = "spine.install.after_install"
after_migrate = "spine.install.after_migrate"

# Desk: one script for both config forms (broker shown, Check connection)
doctype_js = {
	"Spine Producer Config": "public/js/config_form.js",
	"Spine Consumer Config": "public/js/config_form.js",
}
before_uninstall = "spine.install.before_uninstall"

# --- producer: doc_events ---
# Every save of every document passes here; unconfigured DocTypes cost one dict lookup.
_capture = "spine.producer.capture.on_event"
doc_events = {
	"*": {
		event: _capture
		for event in (
			"after_insert",
			"on_update",
			"on_update_after_submit",
			"on_submit",
			"on_cancel",
			"on_trash",
			"after_rename",
		)  # fmt: skip
	}
}

# --- scheduler: every minute, the safety net behind the after-commit kicks ---
scheduler_events = {
	"cron": {
		"* * * * *": [
			"spine.producer.relay.drain_scheduled",
			"spine.consumer.processor.process_scheduled",
		]
	},
	"daily": ["spine.desk.retention.purge_daily"],
}
