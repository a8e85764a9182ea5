app_name = "spine"
app_title = "Spine"
app_publisher = "Spine contributors"
app_description = "Connects Frappe and ERPNext sites through Apache Kafka"
app_email = "spine@example.com"
app_license = "MIT"

export_python_type_annotations = True

before_uninstall = "spine.spine_adapter.install.before_uninstall"

# --- producer (issue 3): doc_events ---
# Every save of every document passes here; unconfigured DocTypes cost one dict lookup.
_capture = "spine.spine_adapter.capture.on_event"
doc_events = {
	"*": {
		event: _capture
		for event in ("after_insert", "on_update", "on_submit", "on_cancel", "on_trash", "after_rename")
	}
}

# Every minute, the safety net behind the after-commit kicks.
scheduler_events = {
	"cron": {
		"* * * * *": [
			"spine.spine_adapter.relay.drain_scheduled",
			"spine.spine_adapter.processor.process_scheduled",
		]
	},
	"daily": ["spine.spine_adapter.retention.purge_daily"],
}

# --- operations (issue 5) ---
