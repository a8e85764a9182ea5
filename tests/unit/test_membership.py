"""Which group member a dispatcher is: a static id per process, stable across restarts."""

from __future__ import annotations

import re

from spine.config.membership import MAX_LENGTH, instance_id


def test_each_process_of_a_site_on_a_host_is_its_own_static_member():
	ids = {instance_id({}, site="a.example.com", host="app-1", index=i) for i in range(3)}
	assert ids == {"spine-a.example.com-app-1-0", "spine-a.example.com-app-1-1", "spine-a.example.com-app-1-2"}


def test_the_same_process_gets_the_same_id_again():
	assert instance_id({}, site="s", host="h", index=1) == instance_id({}, site="s", host="h", index=1)


def test_sites_and_hosts_sharing_a_group_id_do_not_share_a_member():
	conf = {"group.id": "spine-client-withrun"}  # the seed block's group, shared by every site that copies it
	assert instance_id(conf, site="a", host="h", index=0) != instance_id(conf, site="b", host="h", index=0)
	assert instance_id(conf, site="a", host="h1", index=0) != instance_id(conf, site="a", host="h2", index=0)


def test_a_configured_id_is_a_prefix_per_process():
	assert instance_id({"group.instance.id": "static"}, site="s", host="h", index=2) == "static-2"


def test_kip848_groups_stay_dynamic():
	"""A restarted static member of a KIP-848 group is refused with a fatal error while the old
	member's session lasts (measured on Kafka 4.4), so Spine makes none there."""
	assert instance_id({"group.protocol": "consumer"}, site="s", host="h", index=0) is None
	assert instance_id({"group.protocol": "classic"}, site="s", host="h", index=0) == "spine-s-h-0"


def test_ids_are_legal_for_kafka():
	made = instance_id({}, site="shop:8000/x y", host="h" * 300, index=7)
	assert len(made) <= MAX_LENGTH and re.fullmatch(r"[A-Za-z0-9._-]+", made)
	assert made != instance_id({}, site="shop:8000/x y", host="h" * 299, index=7)
