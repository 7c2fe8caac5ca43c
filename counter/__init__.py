"""A counter of the hall: the clerk's keypad (Raspberry Pi, gpiozero) or console (terminal UI).

Layout: ``core`` decides (key → command, reply → what to show and light) and does no I/O; ``screen`` is the
console's pure input and layout logic; ``keypad`` and ``rating`` (gpiozero: the clerk's keys, the citizen's
rating buttons) and ``console`` (curses) are the adapters;
``service`` wires them to the broker through ``hallq.mqtt``; ``cli`` is ``python -m counter``.
Both front ends speak only contract v1; the counter's identity is the counter id in its topics.
"""
