"""Fetch what the interop tests start, once, so a CI run fails early and says which part is missing.

python -m tests.ecosystem fetch    # Apicurio Registry, a Kafka Connect worker, the stock clients' venv
"""

from __future__ import annotations

import sys

from tests.ecosystem import apicurio, clients, connect


def main(argv: list[str] | None = None) -> int:
	args = sys.argv[1:] if argv is None else argv
	if args != ["fetch"]:
		print(__doc__, file=sys.stderr)
		return 2
	print(f"Apicurio Registry: {apicurio.ensure_app()} (runs on {apicurio.java21()})")
	print(f"Kafka Connect {connect.CONNECT_VERSION}: {connect.jars()}")
	print(f"stock clients ({', '.join(clients.PACKAGES)}): {clients.python()}")
	return 0


if __name__ == "__main__":
	sys.exit(main())
