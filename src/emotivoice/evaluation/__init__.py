"""The benchmarks' library code: datasets, real-time factor, emotion and live-stream measurements.

The commands (``emotivoice bench``, ``benchmark-emotion``) and the scripts in ``benchmarks/``
are thin front ends over these modules; they may run the service, the engine never imports them.
"""
