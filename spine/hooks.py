app_name = "spine"
app_title = "Spine"
app_publisher = "Spine contributors"
app_description = "Connects Frappe and ERPNext sites through Apache Kafka"
app_email = "spine@example.com"
app_license = "MIT"

export_python_type_annotations = True

before_uninstall = "spine.spine_adapter.install.before_uninstall"

# --- producer (issue 3): doc_events ---

# Every minute, the safety net behind the after-commit kicks.
scheduler_events = {
	"cron": {
		"* * * * *": [
			# producer (issue 3): the relay entry goes here
			# consumer (issue 4): the processor entry goes here
		]
	}
}

# --- operations (issue 5) ---
