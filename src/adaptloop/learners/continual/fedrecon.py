"""Federated reconnaissance: clients learn new classes apart, the server merges their prototypes.

Hendryx, KC, Walls and Morrison, "Federated Reconnaissance: Efficient, Distributed,
Class-Incremental Learning", arXiv 2109.00150, 2021 (checked against the abstract: "online
averaging of prototype vectors"; section numbers not checked): a frozen embedding network is
shared; each client learns the classes it meets as prototypes (per-class mean embeddings with their
counts); the server merges the clients' prototypes by count-weighted averaging, so the merged
model recognises every class any client learned, without sending a sample or retraining.

Here the shared model is a :class:`~adaptloop.learners.continual.fsa.FirstSessionAdaptation`
whose first session (the server's base classes) adapted and froze the body. With
``shrinkage = 1`` its head is exactly the prototype classifier (identity covariance: the
nearest class mean in Euclidean distance, as the paper's prototypical network); with
``shrinkage < 1`` it is the LDA head. :func:`federated_reconnaissance` adds to the server's
statistics what each client added to its copy of them (per-class counts and sums, and the
second moment), which is the paper's count-weighted prototype average, exactly. Deviation:
the paper meta-trains the embedding on base classes (prototypical-network episodes); here
the body is trained with a soft-max head on the base classes (FSA's first session).

>>> import numpy as np
>>> from adaptloop.learners.models.mlp import MLPClassifier
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(4), 30)
>>> X = (np.eye(4, dtype=np.float32)[y] * 3 + rng.normal(0, 0.3, (120, 4))).astype(np.float32)
>>> server = FirstSessionAdaptation(MLPClassifier(n_classes=4, hidden=(8,), seed=0), 1.0)
>>> base = y < 2
>>> server.learn(X[base], y[base]); server.end_task(X[base], y[base])
>>> clients = [server.clone() for _ in range(2)]
>>> for client, c in zip(clients, (2, 3)):
...     client.load_state_dict(server.state_dict())
...     client.learn(X[y == c], y[y == c])
>>> merged = federated_reconnaissance(server, clients)
>>> float((merged.predict(X) == y).mean()) > 0.9, float((clients[0].predict(X) == y).mean()) < 0.8
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

from adaptloop.learners.base import states_equal
from adaptloop.learners.continual.fsa import FirstSessionAdaptation, StreamingLDA

__all__ = ["federated_reconnaissance"]


def federated_reconnaissance(
    server: FirstSessionAdaptation, clients: Sequence[FirstSessionAdaptation]
) -> FirstSessionAdaptation:
    """A new model: the server's, with every client's new prototypes merged (module doc).

    Each client must be a copy of ``server`` (same frozen body, its statistics at least the
    server's) that then learned its own classes; the inputs are not changed.
    """
    if server.lda_ is None:
        raise ValueError("server: its first session has not ended (no frozen body, no head)")
    if not clients:
        raise ValueError("clients must list at least one client")
    base = server.lda_.state()
    merged = {k: v.copy() for k, v in base.items()}
    body = server.model_.state_dict()
    for i, client in enumerate(clients):
        if client.lda_ is None or not states_equal(client.model_.state_dict(), body):
            raise ValueError(f"clients[{i}] is not a copy of the server's adapted model")
        own = client.lda_.state()
        if (own["counts"] < base["counts"]).any():
            raise ValueError(f"clients[{i}] holds fewer samples than the server it copied")
        for key in merged:
            merged[key] += own[key] - base[key]
    out = server.clone()
    out.load_state_dict(server.state_dict())
    out.lda_ = StreamingLDA.from_state(merged, server.shrinkage, server.uniform_prior)
    return out
