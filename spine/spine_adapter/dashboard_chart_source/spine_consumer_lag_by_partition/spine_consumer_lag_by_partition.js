frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["Spine Consumer Lag by Partition"] = {
	method: "spine.desk.dashboard.consumer_lag_by_partition",
	filters: [],
};
