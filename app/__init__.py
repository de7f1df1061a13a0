"""Real-time face landmarks and recognition.

Nothing is loaded at import time: every model is opened by the class that wraps it.
"""
