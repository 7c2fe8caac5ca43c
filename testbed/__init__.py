"""hallq's roles run on one machine, for the test suite, the benchmarks and the simulated hall: a private
Mosquitto from the project's own broker config (``broker``), a role as a child process bound to its parent
(``children``), the controller and the display as such processes, and a headless Chromium looking at the
display (``controller``, ``display``).

None of this is installed on a hall's Pis: the package is not part of hallq's distribution, and is imported
from a checkout (the tests, ``python -m bench.…`` and ``./run hall`` run from the repository's root).
"""
