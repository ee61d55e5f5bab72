# The C fast path of @step (xray/sdk/_speedups.c); optional, see xray.sdk._step.
from collections.abc import Callable
from typing import Any

INTERFACE: int

class StepFields:
    _args: tuple[Any, ...]
    _id: int
    _in: int | None
    _kwargs: dict[str, Any] | None
    _out: Any
    _result: Any
    _spec: Any
    _status: str
    _t0: int
    _t1: int
    _x: Any
    parent: Any
    run: Any
    seq: int

class StepWrapper:
    def __init__(
        self, fn: Callable[..., Any], spec: Any, slow: Callable[..., Any], arg_index: int
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

def perf_counter_ns() -> int: ...
def configure(
    *,
    step_type: type,
    run_type: type,
    runtime_type: type,
    buffer_type: type,
    frame: Any,
    runtime: Any,
    auto: object,
    cut: object,
    running: str,
    success: str,
    count: Callable[[Any], int | None],
    internal_error: Callable[[BaseException], None],
    preview_items: int,
) -> None: ...
def set_id_prefix(prefix: int, /) -> None: ...
