"""The lab: measurement, plots and the demo, built on the runtime in ``app``.

Arrows run one way: ``app.cli`` -> ``app.lab`` -> the runtime stages -> ``app.types`` /
``app.config``. Nothing in the runtime imports the lab; the model toolchain (``models``)
may use both.
"""
