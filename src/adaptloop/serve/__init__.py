"""The HTTP service: predictions, delayed feedback, online adaptation, durable and safe.

Install with ``pip install -e ".[serve]"`` and start with ``adaptloop serve``. The parts:

- :mod:`adaptloop.serve.store`: SQLite (WAL) store of predictions, feedback, checkpoints and
  update-gate decisions, written by one thread with group commit;
- :mod:`adaptloop.serve.gate`: the MUSCLE-style update gate (accuracy and negative flip rate);
- :mod:`adaptloop.serve.worker`: the model state, the background adaptation worker, recovery;
- :mod:`adaptloop.serve.schemas`: request and response models;
- :mod:`adaptloop.serve.auth`: bearer tokens;
- :mod:`adaptloop.serve.app`: the FastAPI application.

Importing these modules starts nothing: threads start in ``Service.start()`` (the app's
lifespan), servers only in ``adaptloop serve``.

>>> import adaptloop.serve.app
>>> import threading
>>> [t.name for t in threading.enumerate() if t.name.startswith("adaptloop")]
[]
"""
