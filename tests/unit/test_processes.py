from spine.config.procfile import add_to_procfile, procfile_lines, supervisor_conf


def test_procfile_lines_use_matching_queues():
	lines = procfile_lines("erp.example.com", "kafka_events", 2)
	assert lines == [
		"spine_relay_erp_example_com: bench --site erp.example.com spine-relay",
		"spine_dispatcher_erp_example_com: bench --site erp.example.com eventdispatcher --queue kafka_events --numworkers 2",
		"spine_worker_erp_example_com: bench --site erp.example.com jsonworker --queue kafka_events --numworkers 2",
	]


def test_supervisor_conf_stops_with_quit():
	conf = supervisor_conf("s.local", "q", 1, "/home/frappe/bench", "frappe")
	assert conf.count("[program:spine-") == 3 and conf.count("stopsignal=QUIT") == 3
	assert "directory=/home/frappe/bench" in conf and "user=frappe" in conf


def test_add_to_procfile_is_idempotent(tmp_path):
	procfile = tmp_path / "Procfile"
	procfile.write_text("web: bench serve\nworker: bench worker")
	lines = procfile_lines("s.local", "q", 1)
	assert add_to_procfile(procfile, lines) == lines
	assert add_to_procfile(procfile, lines) == []
	assert procfile.read_text().splitlines() == ["web: bench serve", "worker: bench worker", *lines]
