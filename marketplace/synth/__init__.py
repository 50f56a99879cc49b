"""Building blocks of the synthetic marketplace generator (see ``marketplace.generator``).

- ``config``: the knobs and their validation
- ``vocab``: brands, title and description pieces, review texts (compiled to Arrow arrays once)
- ``strings``: vectorised string building (ids, digits, hex, joining pieces)
- ``plan``: the shop-level plan for all shops at once (archetypes, timelines, investigations,
  re-registration lineage, identities, brushing); decided up front so that chunks can link
  across each other
- ``events``: one chunk of shops and their events, from ``shops`` (shop rows), ``listings``
  (listings and edits), ``orders`` and ``feedback`` (complaints and reviews); ``common`` holds the
  row-wise draws they share
"""
