frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["Spine Messages per Hour"] = {
	method: "spine.desk.dashboard.messages_per_hour",
	filters: [],
};
