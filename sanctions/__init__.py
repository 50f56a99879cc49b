"""The four-step sanction workflow: cases, compensation, publication, disclosure, appeals, audit.

Entry points: ``store.open_store(url)`` (engine, migrated), ``storefront.import_marketplace``,
``routing.route_scored`` / ``routing.detect_ban_evasion``, ``cases.decide`` and friends,
``campaigns``, ``disclosure``, ``public`` (read models), ``audit.verify_chain``. See
``docs/sanctions.md``.
"""
