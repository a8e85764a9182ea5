// Spine Sync Rule: try the rule on a stored message without saving anything, and ask the producing
// sites to publish what they already have (initial sync).
frappe.ui.form.on("Spine Sync Rule", {
	refresh(frm) {
		if (frm.is_new()) {
			return;
		}
		frm.add_custom_button(__("Preview with a message"), () => preview(frm));
		frm.add_custom_button(__("Initial sync"), () => initial_sync(frm));
	},
});

function preview(frm) {
	const dialog = new frappe.ui.Dialog({
		title: __("Preview with a message"),
		fields: [
			{
				fieldname: "message_log",
				fieldtype: "Link",
				options: "Message Log",
				label: __("Message Log entry"),
				reqd: 1,
				description: __("A message received on {0}; nothing is saved.", [frm.doc.topic]),
				get_query: () => ({
					filters: { direction: "Inbound", topic: frm.doc.topic, document_type: frm.doc.source_doctype },
				}),
			},
			{ fieldname: "result", fieldtype: "HTML" },
		],
		primary_action_label: __("Preview"),
		primary_action(values) {
			frm.call("preview", { message_log: values.message_log }).then((r) => {
				dialog.fields_dict.result.$wrapper.html(render_preview(r.message));
			});
		},
	});
	dialog.show();
}

function render_preview(plan) {
	const esc = frappe.utils.escape_html;
	if (plan.action === "skip" || plan.action === "wait") {
		const what = plan.action === "skip" ? __("Skip") : __("Wait");
		return `<p class="spine-preview-action"><b>${what}</b>: ${esc(plan.reason)}</p>`;
	}
	const target = `${esc(plan.local_doctype)} ${esc(plan.local_name || __("(new)"))}`;
	const rows = (plan.changes || [])
		.map(
			([field, before, after]) =>
				`<tr><td>${esc(field)}</td><td>${esc(String(before ?? ""))}</td><td>${esc(String(after ?? ""))}</td></tr>`
		)
		.join("");
	const table = rows
		? `<table class="table table-bordered table-sm"><thead><tr><th>${__("Field")}</th><th>${__(
				"Here now"
		  )}</th><th>${__("After")}</th></tr></thead><tbody>${rows}</tbody></table>`
		: `<p>${__("No field changes.")}</p>`;
	return `<p class="spine-preview-action"><b>${esc(plan.action)}</b> ${target}</p>${table}`;
}

function initial_sync(frm) {
	frappe.confirm(
		__(
			"Ask the sites that publish {0} on {1} to publish every {0} they have, so this site catches up?",
			[frm.doc.source_doctype, frm.doc.topic]
		),
		() => {
			frm.call({
				method: "request_initial_sync",
				doc: frm.doc,
				freeze: true,
				freeze_message: __("Asking the producing sites…"),
			}).then((r) => {
				frappe.msgprint({
					title: __("Initial sync"),
					message: frappe.utils.escape_html(r.message.message).replace(/\n/g, "<br>"),
					indicator: r.message.replies.length ? "green" : "orange",
				});
			});
		}
	);
}
