"""The lab: what reproduces and judges the course's results. Runners that write result files
(``experiments`` for CIFAR-10, ``toy`` for the toy world, ``movie`` for margin movies), their
readers and tables (``results``, ``report``, ``search``, ``scales``), the verdicts on the
paper's claims at every scale (``verdicts``, with ``rules`` and ``stats``) and where a number came from
(``provenance``). Only the lab and the notebooks import it."""
