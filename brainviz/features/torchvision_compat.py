"""Make ``import torchvision`` work on machines whose torchvision ops library does not load.

On some installs (a CUDA build of torchvision next to a CPU build of torch) the
compiled ``torchvision._C`` extension cannot register its operators, and
``import torchvision`` dies with ``RuntimeError: operator torchvision::nms does
not exist`` while it registers fake (meta) kernels for them. Declaring the two
operator *schemas* it needs first lets the import finish; the operators then
exist but have no kernels, which is fine because BrainViz never runs NMS.

``open_clip`` imports torchvision, so call :func:`ensure_torchvision` before
importing ``open_clip``.
"""
from __future__ import annotations

import threading

_SCHEMAS = {
    "torchvision::nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "torchvision::qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LOCK = threading.Lock()
#: True once the schemas were declared by this module (diagnostics only).
SCHEMAS_DECLARED = False


def ensure_torchvision():
    """Import and return ``torchvision``, declaring missing op schemas only if needed.

    The plain import is tried first; only when it fails with the
    ``operator torchvision::nms does not exist`` error are the ``nms`` and
    ``qnms`` schemas declared with :func:`torch.library.define` and the import
    retried. Any other import error propagates unchanged.
    """
    global SCHEMAS_DECLARED
    with _LOCK:
        try:
            import torchvision

            return torchvision
        except RuntimeError as exc:
            if "torchvision::" not in str(exc) or "does not exist" not in str(exc):
                raise
        import torch

        for qualname, schema in _SCHEMAS.items():
            namespace, op = qualname.split("::")
            if not hasattr(getattr(torch.ops, namespace), op):
                torch.library.define(qualname, schema)
        SCHEMAS_DECLARED = True
        import torchvision

        return torchvision
