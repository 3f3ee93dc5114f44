"""Camunda 7's REST API over a ``ProcessEngine`` (``spillway serve``, ``ProcessEngine.asgi_app``).

One module per concern: ``app`` (the app factory), ``rest_deploy`` / ``rest_process`` /
``rest_external`` / ``rest_task`` / ``rest_jobs`` (the endpoints), ``variables`` (typed values),
``dates``, ``errors`` (Camunda error bodies), ``auth``, ``limits`` (body caps), ``longpoll``
(fetchAndLock wake-ups), ``openapi`` (the served document). Needs the ``http`` extra.
The app factory is ``engine.http.app.create_app``.
"""
