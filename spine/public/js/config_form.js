// Spine Producer Config and Spine Consumer Config: which broker the site talks to, and Check connection.
// Loaded for both forms through hooks.doctype_js; registers once however often it is loaded.
if (!window.spine_config_form_registered) {
	window.spine_config_form_registered = true;
	for (const doctype of ["Spine Producer Config", "Spine Consumer Config"]) {
		frappe.ui.form.on(doctype, {
			refresh(frm) {
				const broker = (frm.doc.__onload || {}).broker;
				if (broker) {
					frm.set_intro(__("Kafka broker of this site: {0} (site_config.json)", [broker]), "blue");
				}
				frm.add_custom_button(__("Check connection"), () =>
					frappe.call("spine.desk.connection.show_connection", { config: frm.doctype })
				);
			},
		});
	}
	frappe.ui.form.on("Spine Producer Handler Mapping", {
		show_schema(frm, cdt, cdn) {
			const row = locals[cdt][cdn];
			frappe
				.xcall("spine.desk.schemas.show", {
					document_type: row.document_type,
					topic: row.topic,
					published_fields: row.published_fields,
				})
				.then((r) =>
					frappe.msgprint({
						title: __("Schema {0} of {1} on {2}", [r.version, row.document_type, row.topic]),
						message: `<pre style="max-height: 60vh; overflow: auto">${frappe.utils.escape_html(
							JSON.stringify(r.schema, null, 2)
						)}</pre>`,
						wide: true,
					})
				);
		},
	});
}
