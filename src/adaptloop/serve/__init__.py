"""The HTTP service: predictions, delayed feedback, online adaptation, durable and safe.

Install with ``pip install -e ".[serve]"`` and start with ``adaptloop serve``. The parts, one
concern each:

- :mod:`adaptloop.serve.app`: the HTTP transport (FastAPI): requests to service calls, domain
  errors to statuses, the edge fast path, Prometheus metrics; no SQL, no model logic;
- :mod:`adaptloop.serve.service`: the service: the served model and its candidate, feedback
  intake, the adaptation worker, versions, snapshot, rollback, recovery;
- :mod:`adaptloop.serve.gate`: the MUSCLE-style update gate (accuracy and negative flip rate);
- :mod:`adaptloop.serve.store`: all SQL: the store of predictions, feedback, checkpoints,
  update-gate decisions and the trainer lease, written by one thread with group commit; SQLite
  (WAL; :mod:`adaptloop.serve.wal` checkpoints its log off that thread) by default,
  PostgreSQL (:mod:`adaptloop.serve.postgres`) for a trainer and many predictors;
- :mod:`adaptloop.serve.lease`: the trainer lease (one trainer per database, standbys);
- :mod:`adaptloop.serve.rayserve`: predictor replicas and the trainer on Ray Serve;
- :mod:`adaptloop.serve.localpg`: a throwaway local PostgreSQL server (trying out, tests);
- :mod:`adaptloop.serve.checkpoint`: checkpoint files and the one export (used by ``GET
  /v1/model/checkpoint`` and ``adaptloop checkpoint export``);
- :mod:`adaptloop.serve.errors`: the domain errors, a type per refusal, each naming its field;
- :mod:`adaptloop.serve.schemas`: request and response models, records to arrays;
- :mod:`adaptloop.serve.auth`: bearer tokens.

Importing these modules starts nothing: threads start in ``Service.start()`` (the app's
lifespan), servers only in ``adaptloop serve``.

>>> import adaptloop.serve.app
>>> import threading
>>> [t.name for t in threading.enumerate() if t.name.startswith("adaptloop")]
[]
"""
