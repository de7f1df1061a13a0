"""Real-time face landmarks and recognition.

Nothing is loaded at import time: every model is opened by the class that wraps it.
Native libraries' INFO logs are turned off before any of them loads (``app.logs``).
"""
from .logs import quiet_defaults

quiet_defaults()
