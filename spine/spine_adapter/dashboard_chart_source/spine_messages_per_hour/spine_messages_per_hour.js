frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["Spine Messages per Hour"] = {
	method: "spine.spine_adapter.dashboard.messages_per_hour",
	filters: [],
};
