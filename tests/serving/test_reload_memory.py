"""Reloading the model does not keep the old ones alive: a swapped-out runtime is collected, and the
frozen heap (objects the cyclic GC no longer scans, see ``serving.app``) does not grow with each reload.

Run in a fresh interpreter: the suite's other in-process servers share the GC state of the test process,
and a collection there would finalise their leftovers inside this test. The holder follows an alias of
its own, so the session's API server (which follows ``champion``) never reloads because of this test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.serving.conftest import Registry

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys, weakref
    from pathlib import Path

    from serving.config import ServeOptions
    from serving.metrics import Metrics
    from serving.model_holder import ModelHolder
    from serving.runtime import ModelRuntime
    from tests.serving.conftest import home_settings

    home, alias, cache = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    settings = home_settings(home)
    options = ServeOptions(alias=alias, poll_seconds=3600, cache_dir=cache)
    holder = ModelHolder(settings, options, lambda p, n, v: ModelRuntime.from_dir(p, n, v), Metrics())
    client = holder._client()

    async def main() -> None:
        client.set_registered_model_alias(settings.model_name, alias, "1")
        await holder.start()
        gc.collect()
        gc.freeze()  # as serving.app does once the service has started
        refs, frozen = [], []
        for i in range(6):
            refs.append(weakref.ref(holder.current.runtime))
            client.set_registered_model_alias(settings.model_name, alias, "2" if i % 2 == 0 else "1")
            assert await holder.poll_once(), f"reload {i} did not swap"
            gc.collect()
            frozen.append(gc.get_freeze_count())
        await holder.stop()
        client.delete_registered_model_alias(settings.model_name, alias)
        # the first runtime was frozen with the start-up heap; every later one must be collectable
        alive = [i for i, r in enumerate(refs) if i > 0 and r() is not None]
        print(json.dumps({"frozen": frozen, "alive": alive}))

    asyncio.run(main())
    """
)


def test_reloads_release_old_models_and_do_not_grow_the_frozen_heap(registry: Registry, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(registry.home), "reload-memory-test", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["alive"] == [], f"old runtimes still alive after their swap: {result}"
    frozen = result["frozen"]
    # six reloads: the frozen heap does not grow past its size after the first (it grew ~350 objects a
    # reload when the swap froze the heap while the old model and the loading's garbage were still there;
    # it may shrink as frozen start-up objects are freed)
    assert max(frozen) - frozen[0] <= 50, frozen
