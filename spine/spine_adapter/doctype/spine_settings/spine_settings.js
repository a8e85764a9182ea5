frappe.ui.form.on("Spine Settings", {
	refresh(frm) {
		frm.add_custom_button(
			__("Rotate signing key"),
			() =>
				frappe.confirm(
					__("Make a new signing key? Sites that trust the current key trust the new one when it arrives."),
					() =>
						frm.call("rotate_signing_key").then((r) => {
							frappe.show_alert({ message: __("New signing key {0}", [r.message]), indicator: "green" });
							frm.reload_doc();
						})
				),
			__("Signing")
		);
		frm.add_custom_button(
			__("Publish key again"),
			() =>
				frm.call("publish_signing_key").then(() =>
					frappe.show_alert({ message: __("Public key written to spine.keys"), indicator: "green" })
				),
			__("Signing")
		);
	},
});
