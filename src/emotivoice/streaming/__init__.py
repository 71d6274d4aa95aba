"""Live analysis of an audio stream.

The modules, in the order audio flows through them: :mod:`~emotivoice.streaming.decoder` (bytes
of any size → 16 kHz samples), :mod:`~emotivoice.streaming.endpointer` (Silero VAD → utterance
turns), :mod:`~emotivoice.streaming.analyzer` (partial text, final segments through the batch
pipeline) and :mod:`~emotivoice.streaming.events` (what a client receives).
"""
