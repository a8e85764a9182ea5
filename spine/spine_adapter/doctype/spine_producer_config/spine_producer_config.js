frappe.ui.form.on("Spine Producer Config", {
	refresh(frm) {
		frm.add_custom_button(__("Check connection"), () =>
			frappe.call("spine.desk.connection.show_connection", { config: frm.doctype })
		);
	},
});
