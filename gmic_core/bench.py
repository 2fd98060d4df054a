"""Efficiency of GMIC against single-network baselines: the efficiency columns of the paper's
table 1 (parameters, GFLOPs, memory, time) for the machine it runs on, plus that machine's measured
matrix-multiply peak so that every speed can be read as a fraction of it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gmic_core.config import GMICConfig
from gmic_core.inference import (
    Precision,
    autocast,
    device_description,
    freezing,
    prepare_for_inference,
    resolve_precision,
)
from gmic_core.model import GMIC
from gmic_core.model.heads import TopTPooling
from gmic_core.model.local_network import LocalNetwork

VIEWS_PER_EXAM = 4


class ResNet34Baseline(nn.Module):
    """The paper's ResNet-34 baselines on the whole image (table 1): a torchvision-layout ResNet-34
    with either a global-average-pool + fc head, or GMIC's 1x1 conv saliency head with top-t pooling.
    ``[N, 1, H, W] -> [N, classes]`` probabilities."""

    def __init__(self, config: GMICConfig, head: str) -> None:
        super().__init__()
        self.backbone = LocalNetwork(config.replace(local_backbone="resnet34"))
        self.head = head
        features = config.local_feature_size
        if head == "fc":
            self.classifier = nn.Linear(features, config.num_classes)
        elif head == "top_t":
            self.classifier = nn.Conv2d(features, config.num_classes, 1, bias=False)
            self.pooling = TopTPooling(config.top_t)
        else:
            raise ValueError(f"unknown head {head!r}: 'fc' or 'top_t'")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(image)
        if self.head == "fc":
            return torch.sigmoid(self.classifier(features.mean(dim=(2, 3))))
        return self.pooling(torch.sigmoid(self.classifier(features)))


@dataclass(frozen=True)
class ModelBenchmark:
    name: str
    precision: str
    device: str
    params: int
    gflops_per_image: float
    peak_memory_mb: float
    forward_ms_per_exam: float
    forward_backward_ms_per_exam: float | None

    def fraction_of_peak(self, peak_gflops: float) -> float:
        """Achieved forward GFLOP/s over a four-view exam, as a fraction of the matmul peak."""
        return VIEWS_PER_EXAM * self.gflops_per_image / (self.forward_ms_per_exam / 1000) / peak_gflops


def benchmark_models(quick: bool) -> dict[str, Callable[[], nn.Module]]:
    config = GMICConfig()
    models: dict[str, Callable[[], nn.Module]] = {
        "GMIC-ResNet-18": lambda: GMIC(config),
        "ResNet-34 (fc head)": lambda: ResNet34Baseline(config, "fc"),
    }
    if not quick:
        models["GMIC-ResNet-34"] = lambda: GMIC(config.replace(local_backbone="resnet34"))
        models["GMIC-ResNet-50"] = lambda: GMIC(config.replace(local_backbone="resnet50"))
        models["ResNet-34 (1x1 conv + top-t head)"] = lambda: ResNet34Baseline(config, "top_t")
    return models


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """Measured multiply-add rate of one large square matrix product (2 FLOPs per multiply-add)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds, _ = median_time(lambda: a @ b, repeats, warmup=2, device=device)
    return 2 * size**3 / seconds / 1e9


def measure(
    name: str,
    build: Callable[[], nn.Module],
    device: torch.device,
    precision: Precision,
    repeats: int,
    backward: bool,
    compile: bool = False,
) -> ModelBenchmark:
    """Forward timings of the model as the Predictor runs it (batch norms folded, channels-last,
    compiled if asked); forward+backward of the trainable model, uncompiled."""
    trainable = build().to(device, memory_format=torch.channels_last)
    model = prepare_for_inference(trainable.eval(), device, compile)
    config = GMICConfig()
    exam = torch.randn(VIEWS_PER_EXAM, 1, config.input_height, config.input_width, device=device)
    exam = exam.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        trainable(exam[:1])
    gflops = counter.get_total_flops() / 1e9

    def forward() -> None:
        with torch.inference_mode(), autocast(device, precision), freezing(compile):
            model(exam)

    with peak_memory(device) as peak:
        forward_s, _ = median_time(forward, repeats, device=device)
    backward_s = None
    if backward:
        trainable.train()

        def forward_backward() -> None:
            # one view at a time with accumulated gradients, as training at full size does: a batch
            # of four full-size views would not fit in memory for the ResNet-34 baselines
            for view in exam.split(1):
                with autocast(device, precision):
                    out = trainable(view)
                _loss(out).backward()
            trainable.zero_grad(set_to_none=True)

        backward_s, _ = median_time(forward_backward, repeats, device=device)
    result = ModelBenchmark(
        name=f"{name} (compiled)" if compile else name,
        precision=precision,
        device=device_description(device),
        params=sum(p.numel() for p in trainable.parameters()),
        gflops_per_image=gflops,
        peak_memory_mb=peak(),
        forward_ms_per_exam=forward_s * 1000,
        forward_backward_ms_per_exam=None if backward_s is None else backward_s * 1000,
    )
    return result


def _loss(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output.float().sum()
    return output.y_fusion.float().sum() + output.y_local.float().sum() + output.y_global.float().sum()


def _synchronize(device: torch.device | None) -> None:
    if device is None:
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_time(
    function: Callable[[], object], repeats: int, warmup: int = 1, device: torch.device | None = None
) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` calls after ``warmup`` untimed ones, waiting for the device
    to finish each; and every timing."""
    for _ in range(warmup):
        function()
    _synchronize(device)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        _synchronize(device)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings), timings


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[Callable[[], float]]:
    """Peak memory (MB) used by the block above what was in use when it started: the CUDA
    allocator's peak on a GPU, the process's peak resident set (Linux VmHWM, reset first) on a CPU."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        peak = [0.0]
        yield lambda: peak[0]
        peak[0] = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    status = Path("/proc/self/status")
    clear_refs = Path("/proc/self/clear_refs")
    if not (status.exists() and clear_refs.exists()):
        yield lambda: float("nan")
        return
    clear_refs.write_text("5")  # resets the peak resident set size to the current one
    start = proc_status_kb(status, "VmRSS")
    peak = [0.0]
    yield lambda: peak[0]
    peak[0] = (proc_status_kb(status, "VmHWM") - start) / 1024


def proc_status_kb(status: Path, key: str) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def run_benchmarks(
    device: torch.device,
    precisions: list[Precision],
    quick: bool,
    repeats: int,
    backward: bool,
    log: Callable[[str], None],
    compile: bool = False,
) -> dict:
    """All measurements of one run: the matmul peak per precision, then every model (eager, and
    compiled too when ``compile``)."""
    peaks = {}
    for precision in precisions:
        resolve_precision(device, precision)  # a precision the device lacks is refused
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        peaks[precision] = matmul_peak_gflops(device, dtype)
        log(f"matmul peak {precision}: {peaks[precision]:.0f} GFLOP/s")
    results = []
    for precision in precisions:
        for name, build in benchmark_models(quick).items():
            for compiled in (False, True) if compile else (False,):
                result = measure(name, build, device, precision, repeats, backward and not compiled, compiled)
                log(
                    f"{result.name} {precision}: {result.forward_ms_per_exam:.0f} ms/exam forward, "
                    f"{result.fraction_of_peak(peaks[precision]):.0%} of peak"
                )
                results.append(result)
    return {"peak_gflops": peaks, "models": [asdict(r) for r in results]}


def format_table(report: dict) -> str:
    """A Markdown table of a :func:`run_benchmarks` report."""
    lines = [
        "| model | precision | params | GFLOPs/image | peak memory (MB) | forward ms/exam | % of matmul peak "
        "| forward+backward ms/exam |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model in report["models"]:
        fraction = ModelBenchmark(**model).fraction_of_peak(report["peak_gflops"][model["precision"]])
        backward = model["forward_backward_ms_per_exam"]
        lines.append(
            f"| {model['name']} | {model['precision']} | {model['params']:,} | {model['gflops_per_image']:.1f} "
            f"| {model['peak_memory_mb']:.0f} | {model['forward_ms_per_exam']:.0f} | {fraction:.0%} "
            f"| {'-' if backward is None else f'{backward:.0f}'} |"
        )
    return "\n".join(lines)
