"""The soak: Spine's guarantees under concurrency, on a real bench with two sites, Apache Kafka, MariaDB
and Redis, with traffic both ways and faults drawn from a seed (``schedule``), checked at the end
from the databases and the broker (``check``), reported per fault kind (``report``).

``python -m tests.soak --seed N --minutes M [--nodes 3]`` (or ``benchmarks/run.sh soak ...``) runs
one; the same seed replays the same schedule.
"""
