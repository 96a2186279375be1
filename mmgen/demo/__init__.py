"""`mmgen demo`: every task of the shipped ToyDance checkpoint on held-out clips, with metrics.

    run     run_demo / DemoSettings / write_report: the main job
    tasks   one function per task: generate on held-out clips, score against truth and a baseline
"""

from mmgen.core.lazy import lazy_exports

_EXPORTS = {
    "mmgen.demo.run": (
        "DemoSettings",
        "HELD_OUT_SEED",
        "default_pipeline_dir",
        "format_per_clip",
        "format_table",
        "load_demo_pipeline",
        "run_demo",
        "write_report",
    ),
}
__all__ = [
    "HELD_OUT_SEED",
    "DemoSettings",
    "default_pipeline_dir",
    "format_per_clip",
    "format_table",
    "load_demo_pipeline",
    "run_demo",
    "write_report",
]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
