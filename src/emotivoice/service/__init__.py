"""The EmotiVoice service: a REST API over a Celery job queue with persistent storage.

One code path, two modes:

* **embedded** (default): ``emotivoice serve`` runs the API, a Celery worker over a SQLite-backed
  broker and a SQLite database under ``EMOTIVOICE_HOME``; no other software is needed.
* **scale-out**: point ``EMOTIVOICE_BROKER_URL`` at Redis and ``EMOTIVOICE_DATABASE_URL`` at
  PostgreSQL, and start ``emotivoice worker`` on as many hosts as needed.

The engine never imports this package; it needs the ``service`` extra
(``pip install 'emotivoice[service]'``).
"""
