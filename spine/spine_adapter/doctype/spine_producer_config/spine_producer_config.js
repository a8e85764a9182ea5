frappe.ui.form.on("Spine Producer Config", {
	refresh(frm) {
		frm.add_custom_button(__("Check connection"), () => spine_check_connection(frm));
	},
});

function spine_check_connection(frm) {
	const method = "spine.spine_adapter.connection.";
	frappe.xcall(method + "check_connection", { config: frm.doctype }).then((r) => {
		const rows = r.topics
			.map((t) => `<tr><td>${frappe.utils.escape_html(t.topic)}</td><td>${
				t.exists === null ? __("unknown") : t.exists ? __("exists ({0} partitions)", [t.partitions]) : __("missing")
			}</td></tr>`)
			.join("");
		const head = r.ok
			? __("The broker answers ({0} brokers).", [r.brokers])
			: __("The broker does not answer: {0}", [frappe.utils.escape_html(r.error || "")]);
		frappe.msgprint({
			title: __("Kafka connection"),
			indicator: r.ok ? "green" : "red",
			message: `<p>${head}</p><table class="table table-bordered"><tr><th>${__("Topic")}</th><th>${__("State")}</th></tr>${rows}</table>`,
		});
		const missing = r.topics.filter((t) => t.exists === false);
		if (r.ok && missing.length) {
			frappe.confirm(__("Create the {0} missing topics (3 partitions, replication 1)?", [missing.length]), () =>
				frappe.xcall(method + "create_missing_topics", { config: frm.doctype }).then((res) =>
					frappe.show_alert({ message: __("Created: {0}", [Object.keys(res).join(", ")]), indicator: "green" })
				)
			);
		}
	});
}
