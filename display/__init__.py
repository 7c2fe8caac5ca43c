"""The hall display: a web page for the hall's TV screens, with a chime and a Vietnamese (and English) voice.

Layout: ``core`` turns the retained board and the live calls into the screen model, ``announcer`` decides what
is said and when, within its lag bound of the screen (both pure, no I/O); ``speech`` writes the words to say;
``audio`` makes them sound (espeak-ng, a generated chime, optional recorded clips); ``web`` serves the page and
pushes updates to it (aiohttp, Server-Sent Events); ``service`` wires MQTT, the core, audio and the web
together; ``cli`` is ``python -m display``. The page itself lives in ``display/static``."""
