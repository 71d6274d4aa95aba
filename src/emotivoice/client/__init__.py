"""Clients of a running EmotiVoice service: REST (:mod:`~emotivoice.client.rest`) and live
WebSocket streaming (:mod:`~emotivoice.client.stream`). They speak the wire protocols only."""
