"""Spine and a schema registry (Confluent's REST API, which Confluent Schema Registry, Apicurio Registry
under ``/apis/ccompat/v7`` and Karapace serve): a small client, the Confluent wire framing, and the
JSON Schema check Spine's own schema gate uses too. Plain Python: never imports Frappe.

``client`` (register, look up, compatibility), ``framing`` (magic byte, schema id, payload), ``decode``
(a registry-framed value of any producer into the payload a handler gets).
"""
