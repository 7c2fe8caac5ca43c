"""The ticket dispenser: a kiosk's buttons become printed tickets numbered by the hall controller.

Layout: ``core`` (the pure state machine), ``ticket`` (drawing the ticket), ``printer`` (ESC/POS jobs and
printer adapters), ``hardware`` (gpiozero buttons and LEDs), ``config``, ``service`` (the shell that
wires them to the broker), ``simulate`` (keyboard presses on mock pins), ``escpos_cache`` (python-escpos's
printer database cache, set up by ``cli`` before python-escpos is imported) and ``cli``.

Importing this package (or ``dispenser.cli``) changes no environment variable and touches no file.
"""
