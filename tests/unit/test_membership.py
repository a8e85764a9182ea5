"""Which group member a dispatcher is: a static id per process, stable across restarts."""

from __future__ import annotations

import re

from spine.config.membership import MAX_LENGTH, claim_slot, instance_id


def test_each_process_of_a_site_on_a_host_is_its_own_static_member():
	ids = {instance_id({}, site="a.example.com", host="app-1", slot=i) for i in range(3)}
	assert ids == {
		"spine-a.example.com-app-1-0",
		"spine-a.example.com-app-1-1",
		"spine-a.example.com-app-1-2",
	}


def test_the_same_process_gets_the_same_id_again():
	assert instance_id({}, site="s", host="h", slot=1) == instance_id({}, site="s", host="h", slot=1)


def test_sites_and_hosts_sharing_a_group_id_do_not_share_a_member():
	conf = {"group.id": "spine-client-withrun"}  # the seed block's group, shared by every site that copies it
	assert instance_id(conf, site="a", host="h", slot=0) != instance_id(conf, site="b", host="h", slot=0)
	assert instance_id(conf, site="a", host="h1", slot=0) != instance_id(conf, site="a", host="h2", slot=0)


def test_a_configured_id_is_a_prefix_per_process():
	assert instance_id({"group.instance.id": "static"}, site="s", host="h", slot=2) == "static-2"


def test_kip848_groups_stay_dynamic():
	"""A restarted static member of a KIP-848 group is refused with a fatal error while the old
	member's session lasts (measured on Kafka 4.4), so Spine makes none there."""
	assert instance_id({"group.protocol": "consumer"}, site="s", host="h", slot=0) is None
	assert instance_id({"group.protocol": "classic"}, site="s", host="h", slot=0) == "spine-s-h-0"


def test_ids_are_legal_for_kafka():
	made = instance_id({}, site="shop:8000/x y", host="h" * 300, slot=7)
	assert len(made) <= MAX_LENGTH and re.fullmatch(r"[A-Za-z0-9._-]+", made)
	assert made != instance_id({}, site="shop:8000/x y", host="h" * 299, slot=7)


def test_two_live_processes_get_different_slots_and_a_released_slot_is_taken_again(tmp_path):
	first, second = claim_slot(str(tmp_path), "d"), claim_slot(str(tmp_path), "d")
	assert (first.number, second.number) == (0, 1)
	first.release()  # what the kernel does when the process dies, SIGKILL included
	again = claim_slot(str(tmp_path), "d")
	assert again.number == 0, "the process started in its place is the same member"
	assert claim_slot(str(tmp_path), "other").number == 0, "slots are per name"
