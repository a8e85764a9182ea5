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
}
