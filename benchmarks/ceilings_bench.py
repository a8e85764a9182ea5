"""The ceilings Spine's throughput is judged against, measured on this machine in this run:

- plain confluent-kafka: idempotent produce with acks=all, and a plain consume of the same messages;
- the database: rows shaped like those the intake writes (same columns, the same message bodies) by a
  plain multi-row INSERT … COMMIT loop that runs no Spine code (the ingest ceiling), and a plain read-and-mark of outbox rows (SELECT a batch, one UPDATE,
  COMMIT: the relay's database ceiling);
- Frappe's own ``doc.insert()`` of the simple master the sync benchmark mirrors (the sync ceiling).

    SPINE_BENCH=/path/to/frappe-bench SPINE_SITE=test.local benchmarks/run.sh ceilings
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from common import connect_site, last_log_name, local_broker, write_results
from sites_bench import MASTER, ensure_master

from spine import envelope

PLAIN_COLUMNS = (
	"name, creation, modified, owner, modified_by, docstatus, idx, direction, attempts, status, message_id, "
	"document_type, document_name, event, topic, kafka_key, kafka_partition, kafka_offset, origin_site, message"
)
PLAIN_ROW = (
	"(NEXTVAL(`message_log_id_seq`), NOW(6), NOW(6), 'Administrator', 'Administrator', 0, 0, 'Inbound', 0, "
	+ ", ".join(["%s"] * 11)
	+ ")"
)


def _plain_row(record: dict) -> tuple:
	"""A Message Log row's values for a consumed record, read with the standard library only."""
	import json

	header = json.loads(record["value"])["Header"]
	return ("Pending", header["MessageId"], header["DocType"], header.get("DocName"), header["Event"],
		record["topic"], record["key"], record["partition"], record["offset"], header.get("OriginSite"),
		record["value"])  # fmt: skip


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--messages", type=int, default=50_000, help="messages produced and consumed")
	parser.add_argument("--rows", type=int, default=20_000, help="Message Log rows inserted, then marked")
	parser.add_argument("--documents", type=int, default=2000, help="masters inserted by doc.insert()")
	parser.add_argument("--out", default="benchmarks/results/ceilings.json")
	args = parser.parse_args()
	out = str((Path.cwd() / args.out).resolve())
	frappe = connect_site()
	from confluent_kafka import Consumer, Producer
	from confluent_kafka.admin import AdminClient, NewTopic

	from spine.kafka.poll_loop import to_record

	run = uuid.uuid4().hex[:6]
	topic = f"bench-ceiling-{run}"
	values = [
		envelope.build(
			doctype="Item",
			docname=f"C-{i % 500}",
			event="on_update",
			topic=topic,
			payload={"name": f"C-{i % 500}", "i": i},
			origin="bench",
			origin_site="bench.remote",
		)  # fmt: skip
		for i in range(args.messages)
	]
	try:
		with local_broker() as bootstrap:
			admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: its futures need the handle alive
			for f in admin.create_topics([NewTopic(topic, 3)]).values():
				f.result(15)
			producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
				"linger.ms": 5})  # fmt: skip
			encoded = [(envelope.encode(e), e.key) for e in values]
			start = time.perf_counter()
			for value, key in encoded:
				while True:
					try:
						producer.produce(topic, value, key=key)
						break
					except BufferError:
						producer.poll(0.01)
				producer.poll(0)
			assert producer.flush(120) == 0
			produce_rate = len(encoded) / (time.perf_counter() - start)

			consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ceiling-{run}",
				"auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
			consumer.subscribe([topic])
			got, started = [], None
			deadline = time.monotonic() + 120
			while len(got) < len(encoded) and time.monotonic() < deadline:
				batch = [m for m in consumer.consume(1000, 1.0) if m.error() is None]
				if batch and started is None:
					started = time.perf_counter()
				got += batch
			consume_rate = len(got) / (time.perf_counter() - started)
			consumer.close()
			records = [to_record(m) for m in got[: args.rows]]

		# rows shaped like the intake's (the same columns and values, the JSON body included), written by a
		# plain multi-row INSERT per 1,000 and a COMMIT: no Spine code runs, so Spine is never its own ceiling
		frappe.db.sql("DELETE FROM `tabMessage Log` WHERE topic = %s", topic)
		frappe.db.commit()
		before = last_log_name(frappe)
		rows_in = [_plain_row(r) for r in records]
		start = time.perf_counter()
		for i in range(0, len(rows_in), 1000):
			chunk = rows_in[i : i + 1000]
			frappe.db.sql(
				f"INSERT INTO `tabMessage Log` ({PLAIN_COLUMNS}) VALUES "
				+ ", ".join([PLAIN_ROW] * len(chunk)),
				[v for row in chunk for v in row],
			)
			frappe.db.commit()
		insert_rate = len(rows_in) / (time.perf_counter() - start)

		# read-and-mark: what a relay must at least do to the outbox, per 1,000 rows
		frappe.db.sql(
			"UPDATE `tabMessage Log` SET direction = 'Outbound', status = 'Pending' WHERE topic = %s", topic
		)
		frappe.db.commit()
		start = time.perf_counter()
		marked = 0
		while True:
			rows = frappe.db.sql(
				"SELECT name, message FROM `tabMessage Log` FORCE INDEX (direction_status_next_attempt_at_index) "
				"WHERE direction = 'Outbound' AND status = 'Pending' AND next_attempt_at IS NULL AND name > %s "
				"ORDER BY name LIMIT 1000",
				(before,),
			)  # the relay's own read, of this run's rows only
			if not rows:
				break
			frappe.db.sql(
				"UPDATE `tabMessage Log` SET status = 'Published' WHERE name IN %s",
				(tuple(r[0] for r in rows),),
			)
			frappe.db.commit()
			marked += len(rows)
		mark_rate = marked / (time.perf_counter() - start)
		frappe.db.sql("DELETE FROM `tabMessage Log` WHERE topic = %s", topic)
		frappe.db.commit()

		# Frappe's own insert of the sync benchmark's master, one process, one commit at the end
		ensure_master(frappe)
		start = time.perf_counter()
		for i in range(args.documents):
			frappe.get_doc({"doctype": MASTER, "name": f"CE{run}-{i}", "code": f"CE{run}-{i}",
				"title": f"ceiling {i}", "price": i}).insert()  # fmt: skip
		frappe.db.commit()
		doc_insert_rate = args.documents / (time.perf_counter() - start)
		frappe.db.delete(MASTER, {"name": ("like", f"CE{run}-%")})
		frappe.db.commit()
	finally:
		frappe.destroy()

	data = {
		"kafka_produce_per_second": produce_rate,
		"kafka_consume_per_second": consume_rate,
		"message_log_insert_rows_per_second": insert_rate,
		"outbox_read_and_mark_rows_per_second": mark_rate,
		"relay_ceiling_per_second": min(produce_rate, mark_rate),
		"frappe_doc_insert_per_second": doc_insert_rate,
	}
	rows = [
		("plain idempotent produce, acks=all (msg/s)", f"{produce_rate:,.0f}"),
		("plain consume (msg/s)", f"{consume_rate:,.0f}"),
		("Message Log rows, plain multi-row INSERT … COMMIT (rows/s)", f"{insert_rate:,.0f}"),
		("outbox read-and-mark: SELECT 1,000, one UPDATE, COMMIT (rows/s)", f"{mark_rate:,.0f}"),
		(
			"relay ceiling: the lower of produce and read-and-mark (msg/s)",
			f"{min(produce_rate, mark_rate):,.0f}",
		),
		(f"Frappe doc.insert() of {MASTER}, one process (docs/s)", f"{doc_insert_rate:,.0f}"),
	]
	write_results(out, "Ceilings on this machine", rows, data)


if __name__ == "__main__":
	main()
