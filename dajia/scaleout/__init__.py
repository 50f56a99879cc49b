"""Scale-out: the same jobs (features, training, batch scoring) on a Dask cluster, or streamed locally.

A marketplace is split by shop (``partition``): a shop's row in every table lands in partition
``hash(shop_id) % n``, together with the small global tables each partition needs (brands, verdicts
and the shop rows of verdict shops, which the linkage features read). Each partition is then an
ordinary validated :class:`~marketplace.tables.Marketplace` that the one fitted feature pipeline
transforms exactly as it would transform the whole marketplace (the pipeline is partition-safe).

- :mod:`dajia.scaleout.cluster` — connecting to the scheduler (``--scheduler`` or settings)
- :mod:`dajia.scaleout.storage` — reading marketplace tables from any fsspec path
- :mod:`dajia.scaleout.partition` — the streamed hash-partitioning pre-pass and partition loading
- :mod:`dajia.scaleout.sweep` — batch scoring partition by partition (local stream or cluster) and routing
- :mod:`dajia.scaleout.features` — ``dajia features`` on the cluster
- :mod:`dajia.scaleout.training` — ``dajia train`` with ``lightgbm.dask``

See ``docs/scale-out.md``.
"""
