"""The operator console: web pages over one engine, served by ``spillway serve`` at ``/``.

``site.routes(engine)`` are the console's routes (``engine.http.app.create_app`` mounts them
beside ``/engine-rest``; the app's authentication covers them as it covers the API). Pages
(``pages``) read through ``queries``; actions (``actions``) call the engine's verbs, CSRF
checked (``security``); ``views`` renders the Jinja templates of ``templates/``; ``static/``
holds the page script and style, and the vendored bpmn-js viewer (``engine/assets/bpmn-js``)
draws the diagrams. See docs/console.md.
"""
