frappe.ui.form.on("Message Log", {
	refresh(frm) {
		// a log: read-only for everyone, Administrator included; the actions below change what happens next
		frm.disable_save();
		frm.set_read_only();
		const actions = {
			Inbound: { Error: "retry", Waiting: "retry", Failed: "retry", Processed: "replay", Skipped: "replay" },
			Outbound: { Failed: "republish", Published: "republish" },
		};
		const action = (actions[frm.doc.direction] || {})[frm.doc.status];
		if (action) {
			frm.add_custom_button(__(action.charAt(0).toUpperCase() + action.slice(1)), () =>
				frm.call("run_action", { action }).then(() => frm.reload_doc())
			);
		}
		frm.add_custom_button(__("Readable JSON"), () => {
			let text = frm.doc.message || "";
			try {
				text = JSON.stringify(JSON.parse(text), null, 2);
			} catch (e) {
				// not JSON (an Invalid entry): show it as stored
			}
			frappe.msgprint({
				title: __("Message {0}", [frm.doc.message_id]),
				message: `<pre style="max-height: 60vh; overflow: auto">${frappe.utils.escape_html(text)}</pre>`,
				wide: true,
			});
		});
	},
});
