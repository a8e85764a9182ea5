const SPINE_STATUS_COLOURS = {
	Pending: "orange",
	Publishing: "blue",
	Processing: "blue",
	Published: "green",
	Processed: "green",
	Waiting: "blue",
	Error: "red",
	Failed: "red",
	Skipped: "gray",
	Invalid: "purple",
};

frappe.listview_settings["Message Log"] = {
	add_fields: ["status", "direction"],
	get_indicator(doc) {
		return [__(doc.status), SPINE_STATUS_COLOURS[doc.status] || "gray", "status,=," + doc.status];
	},
	onload(listview) {
		const run = (action) => {
			const names = listview.get_checked_items(true);
			if (!names.length) {
				frappe.msgprint(__("Select entries first"));
				return;
			}
			frappe
				.xcall("spine.spine_adapter.doctype.message_log.message_log.bulk_action", { action, names })
				.then((r) => {
					frappe.show_alert({
						message: __("{0}: {1} changed, {2} not applicable", [__(action), r.changed, r.ignored]),
						indicator: "green",
					});
					// Frappe skips a refresh with the same arguments within 3 s of the last one, which
					// would leave the old statuses on screen
					listview.last_args = null;
					listview.refresh();
				});
		};
		listview.page.add_actions_menu_item(__("Retry"), () => run("retry"), false);
		listview.page.add_actions_menu_item(__("Replay"), () => run("replay"), false);
		listview.page.add_actions_menu_item(__("Republish"), () => run("republish"), false);
	},
};
