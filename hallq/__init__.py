"""hallq's shared contract: the MQTT topic scheme, the v1 wire payloads and the adapters every role uses.

Every role (hall controller, dispenser, counter, display) imports this package and nothing of the others',
so the wire contract lives in exactly one place: ``hallq.topics`` builds and parses every topic and
``hallq.wire`` encodes and decodes every payload. ``docs/mqtt-contract.md`` documents both; the tests check
that the two agree.
"""

__version__ = "0.1.0"
