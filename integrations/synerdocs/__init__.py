"""Synerdocs (Directum's EDO operator): the SOAP client of its ExchangeService, typed results and errors.

``client.SynerdocsClient`` is the way in; ``model`` holds what it takes and returns, ``errors`` what
it raises. No Celery and no database here: callers pass a ``recorder`` for the exchange log.
"""
