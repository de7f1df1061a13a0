"""Archives: ``index`` many videos into appearances, ``who`` and ``relabel`` (issue 22).

* ``worker``: :class:`IndexWorker`, the per-file worker, a plain class (models once,
  one file per call: PTS-timed decoding, the app's pipeline, tracks into rows);
* ``pool``: the local backend, spawned worker processes; ``ray_backend``: the same
  worker as Ray actors (``--cluster ray``);
* ``appearances``: tracks into rows, the naming rule, ``who``'s joining of rows;
* ``folder``: the index folder (status per file, parts, appearances.parquet);
* ``run``: the driver (``index``); ``query``: ``who`` (by name or by photo, with
  thumbnails) and ``relabel``.

Nothing here is imported by the rest of the runtime; Ray and pyarrow load only when used.
"""
