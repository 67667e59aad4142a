"""Where the neural models train: the TRAINING_DEVICE setting as a torch device.

    resolve_device("cpu")   # torch.device("cpu"), the default and what CI runs
    resolve_device("auto")  # "cuda" when torch sees a GPU, else "cpu"
    resolve_device("cuda")  # the GPU; a clear ValueError when torch has no CUDA

LightGCN (cf/lightgcn.py) and the SASRec / GRU4Rec trainer (seq/trainer.py) keep their model and
batches on this device while training; what they hand back (numpy vectors, state_dicts, scores)
is on the CPU, so serving and artifacts do not depend on where a model was trained.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device = "cpu") -> torch.device:
    """The torch device for a TRAINING_DEVICE value: "auto", "cpu" or "cuda" ("cuda:N" too)."""
    if isinstance(name, torch.device):
        name = str(name)
    value = str(name).strip().lower()
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    if value == "cuda" or value.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ValueError(
                f"TRAINING_DEVICE={name!r} but CUDA is not available here (torch "
                f"{torch.__version__}, {build}, no visible GPU); set TRAINING_DEVICE to 'cpu' or "
                "'auto', or install a CUDA build of torch on a machine with a GPU"
            )
        try:
            device = torch.device(value)
        except RuntimeError as error:
            raise ValueError(f"TRAINING_DEVICE={name!r} is not a device: {error}") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"TRAINING_DEVICE={name!r} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        return device
    raise ValueError(f"TRAINING_DEVICE must be one of {', '.join(DEVICE_CHOICES)} (got {name!r})")
