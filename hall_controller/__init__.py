"""The hall controller: the one authority that numbers tickets and decides which ticket each counter gets.

``engine/`` is the pure core (commands and ``now`` in, events and refusals out); ``ledger.py`` stores the
events durably in SQLite; ``service.py`` is the shell that joins MQTT, the engine and the ledger.
"""
