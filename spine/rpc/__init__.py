"""Request/reply over Kafka: ask another site or service and wait for its answer.

Owns the caller's side (``client``: ``spine.request`` and ``spine.request_all`` publish a request
with a correlation id, the site's reply topic and a deadline, then wait on a Redis key), the
delivery of replies to waiting callers (``replies``: the dispatcher pushes each reply to that key
the moment it reads it; the processor records it, or marks it late), and the responder's side
(``responder``: a Spine Consumer Config row's handler return value becomes the reply, an exception
an error reply, written to the outbox with the request's status). May import ``spine.producer``,
``spine.settings``, ``spine.compat`` and the plain-Python modules.
"""

REQUEST_DOCTYPE = "Spine Request"
REPLY_DOCTYPE = "Spine Reply"
