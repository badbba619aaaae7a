"""The web console: its files (``static/``, Preact and htm vendored under ``static/vendor``
from the lock ``vendor.json``), served at ``/`` for a browser and under ``/console/``."""
