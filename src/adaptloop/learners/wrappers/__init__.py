"""The wrappers: learners around a learner (``base``), one level below :class:`Wrapper`.

``WindowRetrain`` (re-fit on a sliding window), ``DriftReset`` (re-fit when a drift detector
fires), ``Static`` (learn the first samples only), ``ErrorMemory`` (correct predictions from
remembered errors, keyed by the base's hidden representation).
"""
