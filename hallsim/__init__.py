"""The simulated hall (``./run hall``): a whole hall on one machine, every role real.

A private Mosquitto from the project's broker config, the hall controller, two kiosks running the real
dispenser in ``--simulate`` mode (gpiozero mock pins, preview printers writing PNG tickets) and the hall
display (page, chime, Vietnamese voice). Simulated citizens press the kiosks' buttons; simulated clerks
work the counters over the MQTT contract. The terminal shows each printed ticket, call and announcement.
"""
