"""The emotion recipe (``emotivoice train-emotion``): clips and encoder states, augmentation,
fitting, soups and calibration, speaker-disjoint and cross-corpus evaluation. Needs the ``torch``
extra. Inference (:mod:`emotivoice.emotion`) never imports this package."""
