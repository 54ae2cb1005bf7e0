"""The router stage: turns a filtered message into one Delivery per destination domain.

Pure parts (``addresses``, ``mx``, ``routes``, ``cache``) hold the rules; ``resolver`` does the DNS I/O
and ``planner`` combines them. The Kafka loop lives in the shared library and calls ``Planner.plan``.
"""
